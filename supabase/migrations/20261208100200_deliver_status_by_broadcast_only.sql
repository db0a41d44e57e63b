-- Purpose: status changes reach clients by Broadcast only; test_assessment and result_test leave the
-- publication supabase_realtime, so postgres_changes carries nothing of them. Realtime sends a DELETE to
-- every subscriber of a table without an RLS check (it cannot run one on a row that is gone), and with
-- the default replica identity the event carries the primary key: every signed-in user could watch other
-- users' assessments and results disappear. The private Broadcast topics (assessment:<id>, user:<id>,
-- RLS on realtime.messages) already carry every transition to its owner. docs/decisions/0012.
-- Applies whether or not the tables are members (a project may have removed them in the Dashboard).
-- Touches: publication supabase_realtime.

do $$
declare
  name text;
begin
  foreach name in array array['test_assessment', 'result_test'] loop
    if exists (select from pg_catalog.pg_publication_tables
               where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = name) then
      execute format('alter publication supabase_realtime drop table public.%I', name);
    end if;
  end loop;
end
$$;
