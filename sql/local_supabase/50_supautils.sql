-- Local stand-in for a Supabase project (5 of 5): the few things supautils (Supabase's extension that
-- lets the non-superuser postgres do some superuser-only work) does for this project's migrations and
-- tests, each modelled narrowly and named after the supautils setting it stands in for. Nothing else
-- supautils allows is granted here, so a migration that needs more fails locally as it would there.
-- Everything lives in schema supautils_standin, owned by supabase_admin; no other role can use it.

create schema if not exists supautils_standin authorization supabase_admin;
revoke all on schema supautils_standin from public;

-- supautils.privileged_role_allowed_configs includes session_replication_role: postgres may set it
-- (restores and bulk loads that skip triggers). PostgreSQL 15+ can grant exactly that.
grant set on parameter session_replication_role to postgres;

-- supautils.policy_grants = {"postgres": [..., "realtime.messages", ...]}: postgres may create, alter
-- and drop policies on realtime.messages although supabase_realtime_admin owns it. supautils runs the
-- statement as the superuser when the current role is exactly postgres. Here, for the duration of one
-- CREATE/ALTER/DROP POLICY statement run by postgres that names realtime.messages, the table is owned by
-- postgres; when the statement ends its owner and grants are restored (a failed statement rolls the
-- change back with it).
create or replace function supautils_standin.effective_role()
returns text
language sql
stable
set search_path = ''
as $$
  -- Inside a SECURITY DEFINER function current_user is the definer; the `role` setting still holds the
  -- role the caller switched to, and session_user the one it logged in as.
  select case when current_setting('role') = 'none' then session_user::text else current_setting('role') end
$$;

create or replace function supautils_standin.policy_grants_start()
returns event_trigger
language plpgsql
security definer  -- must change the owner of realtime.messages, which only a superuser may
set search_path = ''
as $$
begin
  -- Only the ddl_command_end trigger sees which table a statement touched; here its text has to do.
  if supautils_standin.effective_role() = 'postgres' and to_regclass('realtime.messages') is not null
     and pg_catalog.current_query() ~* '\mrealtime"?\s*\.\s*"?messages\M' then
    alter table realtime.messages owner to postgres;
  end if;
end;
$$;

create or replace function supautils_standin.policy_grants_end()
returns event_trigger
language plpgsql
security definer  -- as above
set search_path = ''
as $$
begin
  if to_regclass('realtime.messages') is not null
     and (select relowner::regrole::text from pg_catalog.pg_class where oid = 'realtime.messages'::regclass) = 'postgres'
  then
    alter table realtime.messages owner to supabase_realtime_admin;
    -- A change of owner rewrites the grants: give back the ones 40_realtime.sql gives.
    grant all on table realtime.messages to postgres, dashboard_user;
  end if;
end;
$$;

-- supautils.privileged_extensions with pgmq in it (Supabase's 2024 configuration; newer ones create pgmq
-- as the caller, which the same migrations handle too): CREATE EXTENSION pgmq runs as the superuser, so
-- a pgmq schema that does not exist yet is created, and owned, by supabase_admin; then supautils runs
-- Supabase's extension-custom-scripts/pgmq/after-create.sql, which makes postgres the owner of the
-- extension and of every object in it, but not of the schema. devkit/localdb.py installs pgmq's control
-- file as trusted (its script runs as the superuser); these two triggers do the rest.
create table if not exists supautils_standin.pgmq_schema_absent (xid xid8 primary key);

create or replace function supautils_standin.privileged_extensions_start()
returns event_trigger
language plpgsql
security definer  -- writes supautils_standin, which no caller may touch
set search_path = ''
as $$
begin
  if to_regnamespace('pgmq') is null then
    insert into supautils_standin.pgmq_schema_absent values (pg_catalog.pg_current_xact_id()) on conflict do nothing;
  end if;
end;
$$;

create or replace function supautils_standin.privileged_extensions_end()
returns event_trigger
language plpgsql
security definer  -- changes owners, as the superuser supautils switches to does
set search_path = ''
as $$
declare
  schema_was_absent boolean;
  member record;
begin
  delete from supautils_standin.pgmq_schema_absent where xid = pg_catalog.pg_current_xact_id()
  returning true into schema_was_absent;
  if not exists (select from pg_catalog.pg_event_trigger_ddl_commands() c
                 where c.object_type = 'extension' and c.object_identity = 'pgmq') then
    return;
  end if;
  if schema_was_absent then
    alter schema pgmq owner to supabase_admin;
  end if;
  -- after-create.sql: postgres owns the extension and its member objects.
  update pg_catalog.pg_extension set extowner = 'postgres'::regrole where extname = 'pgmq';
  for member in
    select d.classid, d.objid from pg_catalog.pg_depend d
    where d.refclassid = 'pg_catalog.pg_extension'::regclass
      and d.refobjid = (select oid from pg_catalog.pg_extension where extname = 'pgmq') and d.deptype = 'e'
  loop
    if member.classid = 'pg_catalog.pg_proc'::regclass then
      execute format('alter routine %s owner to postgres', member.objid::regprocedure);
    elsif member.classid = 'pg_catalog.pg_class'::regclass then
      execute format('alter table %s owner to postgres', member.objid::regclass);
    elsif member.classid = 'pg_catalog.pg_type'::regclass and not exists (
            -- a table's row type and an array type change owner with their table or element type
            select from pg_catalog.pg_type t left join pg_catalog.pg_class c on c.oid = t.typrelid
            where t.oid = member.objid and (t.typcategory = 'A' or c.relkind <> 'c')) then
      execute format('alter type %s owner to postgres', member.objid::regtype);
    end if;
  end loop;
end;
$$;

revoke all on all functions in schema supautils_standin from public;

drop event trigger if exists supautils_standin_policy_grants_start;
drop event trigger if exists supautils_standin_policy_grants_end;
drop event trigger if exists supautils_standin_privileged_extensions_start;
drop event trigger if exists supautils_standin_privileged_extensions_end;
create event trigger supautils_standin_policy_grants_start on ddl_command_start
  when tag in ('CREATE POLICY', 'ALTER POLICY', 'DROP POLICY')
  execute function supautils_standin.policy_grants_start();
create event trigger supautils_standin_policy_grants_end on ddl_command_end
  when tag in ('CREATE POLICY', 'ALTER POLICY', 'DROP POLICY')
  execute function supautils_standin.policy_grants_end();
create event trigger supautils_standin_privileged_extensions_start on ddl_command_start
  when tag in ('CREATE EXTENSION') execute function supautils_standin.privileged_extensions_start();
create event trigger supautils_standin_privileged_extensions_end on ddl_command_end
  when tag in ('CREATE EXTENSION') execute function supautils_standin.privileged_extensions_end();
