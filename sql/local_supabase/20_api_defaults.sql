-- Local stand-in for a Supabase project (2 of 5): the default privileges the API roles get on what
-- postgres creates in public. Two kinds of project exist, and devkit/localdb.py picks one (session
-- setting localdb.secure_defaults, on or off):
--   * projects created before 2026-05-30: every new table, function and sequence is granted to anon,
--     authenticated and service_role; Row Level Security is the only guard;
--   * newer projects ("secure by default"): select/insert/update/delete on tables, usage/select on
--     sequences and execute on functions are revoked from them by default; migrations grant what they need.
-- The migrations here grant and revoke explicitly, so they must behave the same on both.

alter default privileges for role postgres in schema public grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on sequences to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public grant all on sequences to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema extensions grant all on tables to postgres with grant option;
alter default privileges for role postgres in schema extensions grant all on sequences to postgres with grant option;
alter default privileges for role postgres in schema extensions grant all on functions to postgres with grant option;

do $$
begin
  if current_setting('localdb.secure_defaults')::boolean then
    alter default privileges for role postgres in schema public
      revoke select, insert, update, delete on tables from anon, authenticated, service_role;
    alter default privileges for role postgres in schema public
      revoke usage, select on sequences from anon, authenticated, service_role;
    alter default privileges for role postgres in schema public
      revoke execute on functions from anon, authenticated, service_role;
  end if;
end
$$;
