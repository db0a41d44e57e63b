-- Purpose: the transactional outbox. Every inserted assessment puts exactly one versioned
-- assessment_submitted event on the pgmq queue in the inserting transaction, so an assessment and its
-- job commit or roll back together; NOTIFY only wakes the worker early.
-- Touches: private.enqueue_assessment(), trigger on public.test_assessment.

create function private.enqueue_assessment()
returns trigger
language plpgsql
security definer  -- clients have no rights on pgmq; the queue is written only through this trigger
set search_path = ''
as $$
begin
  perform pgmq.send(
    'assessment_submitted',
    jsonb_build_object(
      'type', 'assessment_submitted',
      'version', 1,
      'assessment_id', new.id,
      'user_id', new.user_id,
      'submitted_at', new.created_at));
  -- A hint, never the payload: identical notifications in one transaction fold into one.
  perform pg_notify('assessment_submitted', '');
  return null;
end;
$$;
comment on function private.enqueue_assessment() is
  'After insert on test_assessment: sends the assessment_submitted event to pgmq and notifies listening workers.';
revoke execute on function private.enqueue_assessment() from public, anon, authenticated;

create trigger a30_enqueue_assessment
  after insert on public.test_assessment
  for each row execute function private.enqueue_assessment();
