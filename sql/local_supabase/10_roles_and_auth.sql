-- Local Supabase-compatible bootstrap: what a Supabase database already provides and our migrations
-- rely on. Applied by scripts/localdb to databases that are NOT Supabase; never part of a migration.
-- Idempotent: scripts/localdb runs it on every `up`.
-- Touches: roles anon, authenticated, service_role, authenticator; schemas auth, extensions;
-- auth.users, auth.uid(), auth.role(), auth.jwt(); publication supabase_realtime; default privileges.

-- Roles, as Supabase creates them. service_role bypasses RLS; authenticator is what PostgREST logs in
-- as before it switches to the request's role.
do $$
begin
  if not exists (select from pg_catalog.pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_catalog.pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_catalog.pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select from pg_catalog.pg_roles where rolname = 'authenticator') then
    create role authenticator nologin noinherit;
  end if;
end
$$;

grant anon, authenticated, service_role to authenticator;

-- Supabase's default privileges: every API role gets every right on new objects in public, so Row
-- Level Security (and explicit revokes) are the only guard. A missing policy leaks here as it would
-- in production.
grant usage on schema public to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on sequences to postgres, anon, authenticated, service_role;

create schema if not exists extensions;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema extensions grant execute on functions to public;

-- Supabase puts extensions on the search path of its roles.
alter role postgres set search_path = "$user", public, extensions;

-- Auth: the parts of GoTrue's schema that application migrations reference.
create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

create table if not exists auth.users (
  instance_id uuid,
  id uuid not null primary key,
  aud varchar(255),
  role varchar(255),
  email varchar(255),
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  is_anonymous boolean not null default false,
  created_at timestamptz default now(),
  updated_at timestamptz default now()
);
comment on table auth.users is 'Local stand-in for Supabase Auth users (GoTrue). Only the columns application code uses.';
alter table auth.users enable row level security;  -- no API role has rights on it; RLS as everywhere

-- auth.uid(), auth.role(), auth.jwt(): Supabase's definitions, reading the claims PostgREST sets per
-- request (request.jwt.claims, with the legacy request.jwt.claim.* settings first).
create or replace function auth.uid()
returns uuid
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create or replace function auth.role()
returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

create or replace function auth.jwt()
returns jsonb
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

grant execute on function auth.uid(), auth.role(), auth.jwt() to anon, authenticated, service_role;

-- Realtime's publication for postgres_changes; tables are added by the migrations.
do $$
begin
  if not exists (select from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;
