-- Local stand-in for a Supabase project (3 of 5): the parts of Supabase Auth's schema that the
-- migrations and tests use, owned as on Supabase: schema auth by supabase_admin, its tables and the
-- auth.* functions by supabase_auth_admin. postgres may read and write auth.users (a foreign key needs
-- REFERENCES) but may not create objects in auth or alter its tables.

create schema if not exists auth authorization supabase_admin;
grant usage on schema auth to anon, authenticated, service_role, postgres, dashboard_user;
grant all on schema auth to supabase_auth_admin;

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
alter table auth.users owner to supabase_auth_admin;
alter table auth.users enable row level security;  -- no policies: the API roles have no rights on it
grant select on auth.users to postgres with grant option;
grant insert, update, delete, truncate, references, trigger on auth.users to postgres, dashboard_user;
grant select on auth.users to dashboard_user;

-- Supabase Auth's definitions: the claims PostgREST publishes per request (request.jwt.claims, with the
-- legacy request.jwt.claim.* settings first). SECURITY INVOKER; EXECUTE stays granted to PUBLIC.
create or replace function auth.uid() returns uuid language sql stable as $$
  select coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid
$$;
create or replace function auth.role() returns text language sql stable as $$
  select coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'))::text
$$;
create or replace function auth.email() returns text language sql stable as $$
  select coalesce(nullif(current_setting('request.jwt.claim.email', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email'))::text
$$;
create or replace function auth.jwt() returns jsonb language sql stable as $$
  select coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                  nullif(current_setting('request.jwt.claims', true), ''))::jsonb
$$;
alter function auth.uid() owner to supabase_auth_admin;
alter function auth.role() owner to supabase_auth_admin;
alter function auth.email() owner to supabase_auth_admin;
alter function auth.jwt() owner to supabase_auth_admin;
