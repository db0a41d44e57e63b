-- Purpose: stream recommendations to their owner as the model writes them (issue 19, decision 0015).
-- The worker sends each recommendation the moment the model has finished writing it and it passed its
-- schema, as the Broadcast event recommendation_streamed (worker/events.py RecommendationStreamed) on
-- the private topic assessment:<id> only: a list page (user:<id>) needs no drafts, and every message
-- counts against Realtime's quotas. Drafts are never stored: result_test stays the one truth, and
-- recommendation_completed supersedes them.
-- Sent here, not by the worker itself: the worker has no rights on schema realtime, and this function
-- reads the owner and the attempt from the database, never from the caller. Fenced by the job's lease
-- like every write of a lease holder (docs/decisions/0011): a worker whose message was delivered again,
-- or whose assessment is no longer processing, sends nothing. It takes no lock, so a user's statement
-- can never hold it up.
-- Touches: private.broadcast_recommendation_drafts() and its grant to assessment_worker.

create function private.broadcast_recommendation_drafts(
  p_msg_id bigint,
  p_read_ct integer,
  p_drafts jsonb
)
returns integer
language plpgsql
security definer  -- reads the job's lease in pgmq and calls realtime.send, neither of which the worker may touch
set search_path = ''
as $$
declare
  job record;
  draft jsonb;
  sent integer := 0;
begin
  -- A batch holds at most one answer's recommendations (1-10), each an {index, recommendation} pair of a
  -- bounded size: the worker validated them, and this bounds what a compromised worker could send.
  if jsonb_typeof(p_drafts) is distinct from 'array' or jsonb_array_length(p_drafts) > 10 then
    raise exception 'drafts must be a JSON array of at most 10 {index, recommendation} objects'
      using errcode = '22023';
  end if;
  for draft in select value from jsonb_array_elements(p_drafts) loop
    if jsonb_typeof(draft -> 'index') is distinct from 'number'
       or (draft ->> 'index') !~ '^[0-9]$'
       or jsonb_typeof(draft -> 'recommendation') is distinct from 'object'
       or octet_length((draft -> 'recommendation')::text) > 16384 then
      raise exception 'each draft must be {"index": 0-9, "recommendation": an object of at most 16384 bytes}'
        using errcode = '22023';
    end if;
  end loop;

  select a.id, a.user_id, a.attempts into job
  from pgmq.q_assessment_submitted q
  join public.test_assessment a on a.id = (q.message ->> 'assessment_id')::uuid
  where q.msg_id = p_msg_id and q.read_ct = p_read_ct and a.status = 'processing';
  if not found then
    return 0;  -- the lease was lost, or the assessment was completed, failed or deleted meanwhile
  end if;

  for draft in select value from jsonb_array_elements(p_drafts) loop
    -- The owner's view of one draft: ids, the attempt and the recommendation, never the answers.
    perform realtime.send(
      jsonb_build_object(
        'type', 'recommendation_streamed',
        'version', 1,
        'assessment_id', job.id,
        'user_id', job.user_id,
        'attempt', job.attempts,
        'index', (draft ->> 'index')::integer,
        'recommendation', draft -> 'recommendation',
        'occurred_at', now()),
      'recommendation_streamed', 'assessment:' || job.id::text, true);
    sent := sent + 1;
  end loop;
  return sent;
end;
$$;
comment on function private.broadcast_recommendation_drafts(bigint, integer, jsonb) is
  'Broadcasts recommendation_streamed drafts to assessment:<id> for the job holding lease (p_msg_id, p_read_ct) while its assessment is processing; returns how many were sent (0: lease lost or no longer processing). worker/drafts.py is its only caller.';

revoke execute on function private.broadcast_recommendation_drafts(bigint, integer, jsonb)
  from public, anon, authenticated, service_role;
grant execute on function private.broadcast_recommendation_drafts(bigint, integer, jsonb) to assessment_worker;
