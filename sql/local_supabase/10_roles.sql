-- Local stand-in for a Supabase project (1 of 5): roles, memberships, schemas public and extensions,
-- publication supabase_realtime. Run by devkit/localdb.py as the cluster's bootstrap superuser
-- supabase_admin, as on Supabase; never part of a migration and never run against Supabase.
-- Idempotent: it runs on every `scripts/localdb up`, and for each scratch database a test creates.
--
-- What it reproduces (Supabase's supabase/postgres init scripts and migrations): postgres is NOT a
-- superuser (NOSUPERUSER CREATEROLE CREATEDB REPLICATION BYPASSRLS), owns the database, the public and
-- extensions schemas and the publication; the API roles inherit; postgres is a member of them (with
-- ADMIN OPTION on 16+) and of pg_monitor, pg_read_all_data and pg_signal_backend, and of no service admin
-- role (supabase_auth_admin, supabase_realtime_admin).

do $$
declare
  name text;
begin
  foreach name in array array['postgres', 'anon', 'authenticated', 'service_role', 'authenticator',
                              'supabase_auth_admin', 'supabase_realtime_admin', 'dashboard_user']
  loop
    if not exists (select from pg_catalog.pg_roles where rolname = name) then
      execute format('create role %I', name);
    end if;
  end loop;
end
$$;

alter role postgres login nosuperuser inherit createrole createdb replication bypassrls;
alter role anon nologin inherit nobypassrls;
alter role authenticated nologin inherit nobypassrls;
alter role service_role nologin inherit bypassrls;
alter role authenticator login noinherit nobypassrls;   -- PostgREST logs in as this and switches role
alter role supabase_auth_admin login noinherit createrole;  -- Supabase Auth (GoTrue) owns schema auth's tables
alter role supabase_realtime_admin nologin noinherit createrole replication;  -- owns Realtime's tables
alter role dashboard_user nologin createrole createdb replication;

grant anon, authenticated, service_role to authenticator;
grant pg_monitor, pg_read_all_data, pg_signal_backend to postgres;
do $$
begin
  -- On 16+ a role needs ADMIN OPTION to grant membership; Supabase gives postgres exactly that.
  if current_setting('server_version_num')::int >= 160000 then
    execute 'grant anon, authenticated, service_role to postgres with admin option';
  else
    execute 'grant anon, authenticated, service_role to postgres';
  end if;
end
$$;

-- Supabase's role settings at project creation. Set only where the role has none of that name yet: this
-- file runs on every `scripts/localdb up`, and a migration may have changed one since (as a project may).
do $$
declare
  wanted record;
begin
  for wanted in
    select * from (values ('anon', 'statement_timeout', '3s'), ('authenticated', 'statement_timeout', '8s'),
                          ('authenticator', 'statement_timeout', '8s'), ('authenticator', 'lock_timeout', '8s'),
                          ('postgres', 'search_path', '"$user", public, extensions')) as w(role, name, value)
  loop
    if not exists (select from pg_catalog.pg_db_role_setting s, unnest(s.setconfig) as c(setting)
                   where s.setrole = wanted.role::regrole and s.setdatabase = 0
                     and c.setting like wanted.name || '=%') then
      execute format('alter role %I set %s = %s', wanted.role, wanted.name,
                     case when wanted.name = 'search_path' then wanted.value else quote_literal(wanted.value) end);
    end if;
  end loop;
end
$$;

-- The database and its public schema belong to postgres (on 15+ public is owned by pg_database_owner).
do $$
begin
  execute format('alter database %I owner to postgres', current_database());
end
$$;
grant usage on schema public to postgres, anon, authenticated, service_role;

create schema if not exists extensions authorization postgres;
grant usage on schema extensions to anon, authenticated, service_role, dashboard_user;

-- Realtime's publication for postgres_changes, owned by postgres; tables are added by the migrations.
do $$
begin
  if not exists (select from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;
alter publication supabase_realtime owner to postgres;
