-- Purpose: the role grants operators and tests rely on, made explicit so they hold on every Supabase
-- project, old or new.
--   * postgres (what migrations, the SQL editor and `supabase test db` connect as) may act as the worker
--     with `set role assessment_worker`. On PostgreSQL 16+ a role that creates a role gets only ADMIN on
--     it, not membership, so this grant is needed there; on 15 it is needed too.
--   * service_role (the project's secret key) gets the same table rights whatever the project's default
--     privileges are: before 2026-05-30 new tables were granted to it in full, since then not at all.
--     It may read both tables, submit and withdraw assessments (the database validates them as it does
--     a user's), and delete results; writing results and statuses stays the worker's.
-- Touches: membership of assessment_worker; privileges of service_role on public.test_assessment and
-- public.result_test.

grant assessment_worker to postgres;

revoke all on table public.test_assessment, public.result_test from service_role;
grant select, delete on table public.test_assessment to service_role;
grant insert (user_id, assessment_type, answers, context, client_request_id) on table public.test_assessment
  to service_role;
grant select, delete on table public.result_test to service_role;
