-- Purpose: tell the owner the moment an assessment's status changes, above all when its
-- recommendations are ready. Two Realtime paths:
--   * Broadcast from Database (recommended): every transition to processing, completed or failed sends
--     one assessment_status_changed event (worker/events.py AssessmentStatusChanged; the Broadcast event
--     name is its `type`) to the private topics assessment:<id> and user:<user_id>. Only the owner may
--     join them (RLS on realtime.messages); users cannot broadcast on them.
--   * postgres_changes: public.test_assessment and public.result_test join publication
--     supabase_realtime (RLS on those tables decides who receives which row).
-- Touches: private.broadcast_assessment_status(), trigger on public.test_assessment, policy on
-- realtime.messages, publication supabase_realtime.
-- Runs unchanged on Supabase (realtime.* is Supabase's) and locally (sql/bootstrap/30_realtime_standin.sql).

create function private.broadcast_assessment_status()
returns trigger
language plpgsql
security definer  -- the writer (the worker) has no rights on schema realtime; only this trigger broadcasts
set search_path = ''
as $$
declare
  event_type text;
  result_source public.recommendation_source;
  result_id uuid;
  payload jsonb;
begin
  event_type := case new.status
    when 'processing' then 'assessment_processing'
    when 'completed' then 'recommendation_completed'
    when 'failed' then 'assessment_failed'
  end;
  if event_type is null then
    return null;
  end if;

  -- The worker writes result_test before it marks the assessment completed, in one transaction.
  if new.status = 'completed' then
    select r.source, r.id into result_source, result_id
    from public.result_test r
    where r.assessment_id = new.id;
  end if;

  -- The owner's view of the transition: ids, status and timing, never the answers.
  payload := jsonb_build_object(
    'type', event_type,
    'version', 1,
    'assessment_id', new.id,
    'user_id', new.user_id,
    'status', new.status,
    'attempts', new.attempts,
    'source', result_source,
    'result_id', result_id,
    'created_at', new.created_at,
    'started_at', new.started_at,
    'completed_at', new.completed_at,
    'occurred_at', now());

  -- realtime.send turns its own failures into warnings: a broadcast never undoes a status change.
  perform realtime.send(payload, event_type, 'assessment:' || new.id::text, true);
  perform realtime.send(payload, event_type, 'user:' || new.user_id::text, true);
  return null;
end;
$$;
comment on function private.broadcast_assessment_status() is
  'After a status change (or a retry) on test_assessment: broadcasts assessment_processing, recommendation_completed or assessment_failed to the private topics assessment:<id> and user:<user_id>.';
revoke execute on function private.broadcast_assessment_status() from public, anon, authenticated;

-- A retry is processing -> processing with one more attempt: the owner hears about it too.
create trigger a40_broadcast_assessment_status
  after update of status, attempts on public.test_assessment
  for each row
  when ((old.status is distinct from new.status and new.status in ('processing', 'completed', 'failed'))
        or (new.status = 'processing' and new.attempts > old.attempts))
  execute function private.broadcast_assessment_status();

-- Realtime Authorization: when a client joins a private channel, Realtime sets realtime.topic() and
-- the caller's role and claims, and lets the join through only if this policy shows them the topic's
-- messages. Rows are visible only on the topic being joined, so one granted topic never opens
-- another. assessment:<id> topics are matched without casting malformed text to uuid (a cast error
-- would fail the join with a database error instead of a plain denial).
create policy "Users can receive their own assessment broadcasts"
  on realtime.messages for select to authenticated
  using (
    extension = 'broadcast'
    and topic = (select realtime.topic())
    and (
      (select realtime.topic()) = 'user:' || (select auth.uid())::text
      or exists (
        select 1
        from public.test_assessment a
        where a.user_id = (select auth.uid())
          and a.id = (
            select case
              when realtime.topic() ~ '^assessment:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
              then substr(realtime.topic(), length('assessment:') + 1)::uuid
            end)
      )
    )
  );
-- No insert policy: users cannot broadcast (or track presence) on these topics; only the trigger does.

-- postgres_changes. Replica identity stays DEFAULT (the primary key): the filters clients use,
-- id=eq.<id> on test_assessment updates and assessment_id=eq.<id> on result_test inserts, match the
-- new row, which an update or insert always carries in full. FULL would only add old values (which
-- Realtime withholds under RLS anyway) and write every old row, answers included, to the WAL.
alter publication supabase_realtime add table public.test_assessment, public.result_test;
