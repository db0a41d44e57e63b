-- Purpose: the transactional outbox. Every inserted assessment puts exactly one versioned
-- assessment_submitted event on the pgmq queue in the inserting transaction, so an assessment and its
-- job commit or roll back together; NOTIFY only wakes an idle worker early.
-- Touches: private.enqueue_assessment(), trigger on public.test_assessment.

create function private.enqueue_assessment()
returns trigger
language plpgsql
security definer  -- clients have no rights on pgmq; the queue is written only through this trigger
set search_path = ''
as $$
declare
  sent_msg_id bigint;
begin
  select pgmq.send(
    'assessment_submitted',
    jsonb_build_object(
      'type', 'assessment_submitted',
      'version', 1,
      'assessment_id', new.id,
      'user_id', new.user_id,
      'submitted_at', new.created_at))
  into sent_msg_id;

  -- NOTIFY is a hint, never the payload, and it is not free: every notifying transaction takes one
  -- database-wide lock at commit, which serialises commits. So only wake workers when no older job is
  -- waiting; if one is, workers are busy or about to read, and they read until the queue is empty.
  -- (A job that became visible again by its lease running out wakes nobody; polling covers it.)
  if not exists (
    select from pgmq.q_assessment_submitted q
    where q.msg_id < sent_msg_id and q.vt <= clock_timestamp()
  ) then
    perform pg_notify('assessment_submitted', '');
  end if;
  return null;
end;
$$;
comment on function private.enqueue_assessment() is
  'After insert on test_assessment: sends the assessment_submitted event to pgmq; notifies listening workers when no older job is waiting.';
revoke execute on function private.enqueue_assessment() from public, anon, authenticated;

create trigger a30_enqueue_assessment
  after insert on public.test_assessment
  for each row execute function private.enqueue_assessment();
