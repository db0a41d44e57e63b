-- Purpose: the job queue between the database and the AI worker, the internal schema, and the
-- worker's least-privilege role.
-- Touches: extension pgmq; schema private; queues assessment_submitted and assessment_submitted_dlq;
-- role assessment_worker.

create extension if not exists pgmq;

-- Internal functions and settings. PostgREST exposes only the schemas listed in [api].schemas
-- (public, graphql_public), so nothing here is reachable through the API.
create schema if not exists private;
comment on schema private is
  'Internal functions and settings of the assessment pipeline. Not exposed by the API.';
revoke all on schema private from public;

select pgmq.create('assessment_submitted');
select pgmq.create('assessment_submitted_dlq');

-- Clients never touch the queue: the enqueue trigger (security definer) is the only producer.
revoke all on schema pgmq from public, anon, authenticated;
revoke all on all tables in schema pgmq from public, anon, authenticated;

-- The AI worker connects as this role (enable LOGIN and set a password at deployment; see
-- docs/deployment.md). It can read and lease jobs, write results and statuses, and nothing else.
do $$
begin
  if not exists (select from pg_catalog.pg_roles where rolname = 'assessment_worker') then
    create role assessment_worker nologin;
  end if;
end
$$;
comment on role assessment_worker is
  'The AI worker: consumes pgmq queue assessment_submitted, writes result_test and statuses.';

grant usage on schema pgmq to assessment_worker;
grant execute on all functions in schema pgmq to assessment_worker;
grant select on pgmq.meta to assessment_worker;
grant select, insert, update, delete on
  pgmq.q_assessment_submitted, pgmq.a_assessment_submitted,
  pgmq.q_assessment_submitted_dlq, pgmq.a_assessment_submitted_dlq
  to assessment_worker;
grant usage, select on all sequences in schema pgmq to assessment_worker;
