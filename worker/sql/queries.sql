-- The worker's named queries, loaded once by worker/db.py; package data, so the wheel carries them.
-- Each block starts with `-- name: <name>`.
-- Parameters are psycopg named placeholders; no runtime value is ever interpolated into this text.
-- Queue names are fixed here: assessment_submitted (jobs) and assessment_submitted_dlq (dead letters).

-- name: take_jobs
-- Lease up to qty visible messages for vt seconds and, in the same statement, mark processing the
-- assessments that startable messages name: one round trip and one commit from a notification to
-- prepared jobs. The lease is what pgmq.read does (oldest visible messages first, FOR UPDATE SKIP LOCKED,
-- vt moved, read_ct counted) written out on the queue table, because pgmq.read runs its own query with a
-- newer snapshot than this statement's: it could lease a message whose assessment, committed with it, this
-- statement cannot see yet. Written here, the message and its assessment are seen together or not at all
-- (and the statement is planned once, not on every call; docs/decisions/0010).
-- A message is startable when it is well formed (the shape the enqueue trigger writes: canonical ids, an
-- ISO 8601 submitted_at, the five keys), has been read at most max_reads times, and is not in flight in
-- this worker already. The worker validates the whole contract too and dead-letters a message that fails
-- either check; one that passed this check only (a date such as February 30) has started its assessment,
-- which then fails.
-- Returns every leased message with well_formed, with busy when the assessment it names is queued or
-- processing (as of this statement's snapshot) but was not started here (another transaction held it, or
-- the message was not startable),
-- and with its assessment when it was started by this statement or is completed or failed. Nothing here
-- waits for a lock, so this statement cannot deadlock with the ones that lock assessments first.
with visible as materialized (  -- run once: a re-run of SKIP LOCKED could pick further rows
  select msg_id
  from pgmq.q_assessment_submitted
  where vt <= clock_timestamp()
  order by msg_id
  limit %(qty)s
  for update skip locked
), leased as (
  update pgmq.q_assessment_submitted q
  set vt = clock_timestamp() + make_interval(secs => %(vt)s), read_ct = q.read_ct + 1
  from visible
  where q.msg_id = visible.msg_id
  returning q.msg_id, q.read_ct, q.enqueued_at, q.message
), named as (
  select l.*,
         case when jsonb_typeof(l.message) = 'object'
                   and l.message ->> 'type' = 'assessment_submitted' and l.message -> 'version' = '1'
                   and l.message ->> 'assessment_id' ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                   and l.message ->> 'user_id' ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                   and l.message ->> 'submitted_at' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?([+-]\d\d:\d\d|Z)$'
                   and (select count(*) from jsonb_object_keys(l.message)) = 5
              then (l.message ->> 'assessment_id')::uuid end as assessment_id
  from leased l
), startable as (
  -- SKIP LOCKED: an assessment locked now is being committed, failed or deleted by someone else. Waiting
  -- for it while holding its message could deadlock with a commit, which locks assessments first. (NO KEY:
  -- the lock the update takes anyway, so result inserts' foreign-key checks do not make it busy.)
  select a.id
  from public.test_assessment a
  where a.id in (select n.assessment_id from named n
                 where n.read_ct <= %(max_reads)s and n.msg_id <> all(%(in_flight)s::bigint[]))
    and a.status in ('queued', 'processing')
  for no key update skip locked
), started as (
  update public.test_assessment a
  set status = 'processing', attempts = attempts + 1, started_at = now()
  from startable s
  where a.id = s.id
  returning a.id, a.user_id, a.assessment_type, a.answers, a.context, a.status, a.attempts, a.created_at
), finished as (
  select a.id, a.user_id, a.assessment_type, a.answers, a.context, a.status, a.attempts, a.created_at
  from public.test_assessment a
  where a.id in (select assessment_id from named) and a.status in ('completed', 'failed')
)
select n.msg_id, n.read_ct, n.enqueued_at, n.message, n.assessment_id is not null as well_formed,
       (j.id is null and exists (select from public.test_assessment a
                                 where a.id = n.assessment_id and a.status in ('queued', 'processing'))) as busy,
       j.id, j.user_id, j.assessment_type, j.answers, j.context, j.status, j.attempts, j.created_at
from named n
left join (select * from started union all select * from finished) j on j.id = n.assessment_id
order by n.msg_id;

-- name: set_leases
-- Make in-flight messages visible again vt seconds from now: extends their leases, or with vt = 0
-- releases them at once (graceful shutdown). set_vt returns a set, so it runs once per id in FROM.
select count(*)
from unnest(%(msg_ids)s::bigint[]) as msg_id,
     pgmq.set_vt('assessment_submitted', msg_id, %(vt)s);

-- name: find_cached
-- For each cache key, the newest AI result for the same prompt and model younger than ttl seconds.
select distinct on (cache_key) cache_key, summary, recommendations, model
from public.result_test
where cache_key = any(%(cache_keys)s::text[]) and source = 'ai'
  and created_at > now() - make_interval(secs => %(ttl)s)
order by cache_key, created_at desc;

-- name: complete_jobs
-- ONE statement for a batch of finished jobs: insert each result, mark its assessment completed and
-- archive its message. An assessment that is no longer processing (completed by another delivery,
-- failed, or deleted) gets no result, but its message is still archived.
with input as (
  select *
  from jsonb_to_recordset(%(jobs)s::jsonb) as j(
    msg_id bigint, assessment_id uuid, summary text, recommendations jsonb,
    source public.recommendation_source, fallback_reason text, model text, prompt_version text,
    cache_key text, prompt_tokens integer, completion_tokens integer, latency_ms integer)
), locked as (
  select a.id, a.user_id
  from public.test_assessment a
  join input i on i.assessment_id = a.id
  where a.status = 'processing'
  order by a.id  -- a fixed lock order: two workers completing overlapping batches cannot deadlock
  for update of a
), inserted as (
  insert into public.result_test (
    assessment_id, user_id, summary, recommendations, source, fallback_reason, model,
    prompt_version, cache_key, prompt_tokens, completion_tokens, latency_ms)
  select i.assessment_id, l.user_id, i.summary, i.recommendations, i.source, i.fallback_reason, i.model,
         i.prompt_version, i.cache_key, i.prompt_tokens, i.completion_tokens, i.latency_ms
  from input i
  join locked l on l.id = i.assessment_id
  on conflict (assessment_id) do nothing
  returning assessment_id
), completed as (
  update public.test_assessment a
  set status = 'completed', completed_at = now(), last_error = null
  from inserted
  where a.id = inserted.assessment_id
  returning a.id
), archived as (
  -- One call for the batch: pgmq runs a new dynamic query on every call.
  select count(*) as messages
  from pgmq.archive('assessment_submitted', array(select msg_id from input))
)
-- Two messages for one assessment in a batch: only the first counts as the one that completed it.
select i.assessment_id, i.msg_id,
       (c.id is not null and i.msg_id = min(i.msg_id) over (partition by i.assessment_id)) as completed
from input i
cross join archived
left join completed c on c.id = i.assessment_id;

-- name: acknowledge
-- Archive messages that need no work (assessment deleted, already completed or failed).
select pgmq.archive('assessment_submitted', %(msg_ids)s::bigint[]);

-- name: record_failure
-- A failed attempt: tell the owner (a short message, never the technical error), and make the message
-- visible again after delay seconds.
with noted as (
  update public.test_assessment
  set last_error = %(error)s
  where id = %(assessment_id)s and status = 'processing'
  returning id
)
select (select count(*) from noted) as noted,
       (select msg_id from pgmq.set_vt('assessment_submitted', %(msg_id)s, %(delay)s)) as msg_id;

-- name: dead_letter
-- Give up on a message: copy it to the dead-letter queue with the reason (operators read it), archive it,
-- and mark its assessment failed with a message for its owner (if given and not finished): one transaction.
with moved as (
  select pgmq.send('assessment_submitted_dlq', jsonb_build_object(
    'event', %(message)s::jsonb,
    'reason', %(reason)s::text,
    'source_msg_id', %(msg_id)s::bigint,
    'read_ct', %(read_ct)s::integer,
    'failed_at', now())) as dlq_msg_id
), failed as (
  update public.test_assessment
  set status = 'failed', last_error = %(user_message)s, completed_at = now()
  where id = %(assessment_id)s and status in ('queued', 'processing')
  returning id
)
select (select dlq_msg_id from moved) as dlq_msg_id,
       (select count(*) from failed) as failed,
       pgmq.archive('assessment_submitted', %(msg_id)s) as archived;

-- name: dlq_list
select msg_id, enqueued_at, message
from pgmq.q_assessment_submitted_dlq
order by msg_id
limit %(limit)s;

-- name: dlq_requeue
-- Put a dead-lettered event back on the job queue and its assessment back to queued, one transaction.
with dead as (
  select msg_id, message from pgmq.q_assessment_submitted_dlq where msg_id = %(msg_id)s for update
), requeued as (
  update public.test_assessment a
  set status = 'queued', last_error = null, completed_at = null
  from dead
  -- compared as text: a dead letter may hold an invalid event whose assessment_id is no uuid
  where a.id::text = dead.message -> 'event' ->> 'assessment_id' and a.status = 'failed'
  returning a.id
), sent as (
  select pgmq.send('assessment_submitted', dead.message -> 'event') as new_msg_id from dead
)
select (select new_msg_id from sent) as new_msg_id,
       (select count(*) from requeued) as requeued,
       (select count(pgmq.delete('assessment_submitted_dlq', msg_id)) from dead) as removed;

-- name: dlq_ids
select msg_id from pgmq.q_assessment_submitted_dlq order by msg_id;

-- name: queue_metrics
select queue_name, queue_length, oldest_msg_age_sec
from pgmq.metrics('assessment_submitted')
union all
select queue_name, queue_length, oldest_msg_age_sec
from pgmq.metrics('assessment_submitted_dlq');

-- name: status_counts
select status::text, count(*) as count
from public.test_assessment
group by status
order by status;
