-- The security rules, checked over the whole catalog rather than object by object, so a table or
-- function added later is held to them too: RLS on every table, search_path = '' on every definer
-- function, nothing in our schemas executable by the API roles, and no API role in the private schemas.
begin;
\ir helpers.psql
select plan(5);

select is_empty($$
  select c.oid::regclass::text
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname in ('public', 'private') and c.relkind in ('r', 'p') and not c.relrowsecurity
$$, 'Every table in public and private has row level security enabled.');

select is_empty($$
  select c.oid::regclass::text
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = 'public' and c.relkind in ('v', 'm')
    and not exists (select from unnest(c.reloptions) o
                    where o ~* '^security_invoker=(t|tr|tru|true|on|1|y|ye|yes)$')  -- as written
$$, 'No view in public bypasses row level security (views must be security_invoker).');

select is_empty($$
  select p.oid::regprocedure::text
  from pg_proc p join pg_namespace n on n.oid = p.pronamespace
  where n.nspname in ('public', 'private') and p.prosecdef
    and not coalesce('search_path=""' = any(p.proconfig), false)
$$, 'Every security definer function in public and private sets search_path to the empty string.');

select is_empty($$
  select p.oid::regprocedure::text || ' by ' || r.rolname
  from pg_proc p join pg_namespace n on n.oid = p.pronamespace
  cross join (values ('anon'), ('authenticated'), ('public')) as r(rolname)
  where n.nspname in ('public', 'private')
    -- an extension's own functions are its business (Supabase installs extensions in extensions)
    and not exists (select from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid
                                               and d.deptype = 'e')
    and case when r.rolname = 'public'
             then exists (select from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                          where a.grantee = 0 and a.privilege_type = 'EXECUTE')
             else has_function_privilege(r.rolname, p.oid, 'EXECUTE') end
$$, 'No function in public or private is executable by anon, authenticated or PUBLIC.');

select is_empty($$
  select s.name || ' to ' || r.rolname
  from (values ('private'), ('pgmq')) as s(name) cross join (values ('anon'), ('authenticated')) as r(rolname)
  where has_schema_privilege(r.rolname, s.name, 'USAGE')  -- raises if a schema is missing: never vacuous
$$, 'The API roles have no usage on the private and pgmq schemas.');

select * from finish();
rollback;
