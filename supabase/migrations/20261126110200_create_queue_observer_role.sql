-- Purpose: a role that can see how deep the job queues are and nothing else, for an autoscaler (KEDA's
-- PostgreSQL scaler, deploy/kubernetes/) or any other watcher. It can count the queues' messages with
-- pgmq.metrics; it cannot read or change assessments or results, and cannot send, lease or delete
-- messages (leasing needs UPDATE). Like assessment_worker it is created without LOGIN: an operator
-- enables it and sets its password on the project (docs/deployment.md).
-- Touches: role queue_observer; grants on schema pgmq and the two job queues.

do $$
begin
  if not exists (select from pg_catalog.pg_roles where rolname = 'queue_observer') then
    create role queue_observer nologin;
  end if;
end
$$;
comment on role queue_observer is
  'Reads the depth of pgmq queues assessment_submitted and assessment_submitted_dlq (pgmq.metrics); nothing else.';

grant usage on schema pgmq to queue_observer;
grant execute on function pgmq.metrics(text) to queue_observer;
-- pgmq.metrics is SECURITY INVOKER: it counts the queue table and reads its msg_id sequence.
grant select on pgmq.q_assessment_submitted, pgmq.q_assessment_submitted_dlq to queue_observer;
grant select on sequence pgmq.q_assessment_submitted_msg_id_seq, pgmq.q_assessment_submitted_dlq_msg_id_seq
  to queue_observer;
