-- Purpose: queue_observer sees how many jobs there are, and no longer the jobs themselves. With SELECT on
-- the queue tables (20261126110200) it could read every queued message and dead letter (user and
-- assessment ids, the reasons jobs were given up on); pgmq.metrics needed those rights because it runs as
-- its caller. Now it calls one function that counts the job queue as its owner, and nothing else.
-- Touches: private.assessment_queue_length(); the grants of role queue_observer.

create function private.assessment_queue_length()
returns bigint
language sql
stable
security definer  -- counts a table queue_observer cannot read
set search_path = ''
as $$
  select pg_catalog.count(*) from pgmq.q_assessment_submitted
$$;
comment on function private.assessment_queue_length() is
  'Jobs in pgmq queue assessment_submitted, waiting or in flight (what pgmq.metrics calls queue_length). For autoscalers: KEDA''s query in deploy/kubernetes/keda.yaml.';
revoke execute on function private.assessment_queue_length() from public, anon, authenticated;
grant usage on schema private to queue_observer;
grant execute on function private.assessment_queue_length() to queue_observer;

revoke select on pgmq.q_assessment_submitted, pgmq.q_assessment_submitted_dlq from queue_observer;
revoke select on sequence pgmq.q_assessment_submitted_msg_id_seq, pgmq.q_assessment_submitted_dlq_msg_id_seq
  from queue_observer;
revoke execute on function pgmq.metrics(text) from queue_observer;
revoke usage on schema pgmq from queue_observer;
comment on role queue_observer is
  'Counts the jobs in pgmq queue assessment_submitted (private.assessment_queue_length()); nothing else.';
