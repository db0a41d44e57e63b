-- The worker's named queries, loaded once by worker/db.py; package data, so the wheel carries them.
-- Each block starts with `-- name: <name>`.
-- Parameters are psycopg named placeholders; no runtime value is ever interpolated into this text.
-- Queue names are fixed here: assessment_submitted (jobs) and assessment_submitted_dlq (dead letters).

-- name: take_jobs
-- Lease up to qty visible messages for vt seconds and, in the same statement, start (mark processing)
-- the assessments that startable messages name: one round trip and one commit from a notification to
-- prepared jobs. The lease is what pgmq.read does (oldest visible messages first, FOR UPDATE SKIP LOCKED,
-- vt moved, read_ct counted) written out on the queue table, because pgmq.read runs its own query with a
-- newer snapshot than this statement's: it could lease a message whose assessment, committed with it, this
-- statement cannot see yet. Written here, the message and its assessment are seen together or not at all
-- (and the statement is planned once, not on every call; docs/decisions/0010). Messages this worker has in
-- flight are never leased again by it: their lease is the lease keeper's to extend.
-- A message is startable when it is well formed, has been read at most max_reads times, and its
-- assessment is queued or processing with fewer than max_attempts starts: a job whose attempts are used
-- up is dead-lettered without being started again.
-- Well formed is the shape the enqueue trigger writes (type and version, canonical lowercase ids, an ISO
-- 8601 submitted_at, exactly five keys). It is checked here, in SQL, only so that nothing that is not an
-- event can start an assessment; worker/events.py is the contract and the worker validates every message
-- against it too (a date such as February 30 passes this check and fails that one).
-- Returns every leased message with its state:
--   invalid   not well formed; no assessment was touched
--   started   its assessment was started by this statement (the row is returned)
--   done      its assessment is completed, failed or deleted: nothing to do
--   overread  read more than max_reads times without starting (something fails before processing)
--   exhausted its assessment has used its max_attempts starts (the row is returned, not started)
--   busy      its assessment is queued or processing but another transaction holds it, or another
--             message of this batch started it: left leased
-- Nothing here waits for a lock (SKIP LOCKED throughout), so it cannot deadlock with anything.
with visible as materialized (  -- run once: a re-run of SKIP LOCKED could pick further rows
  select msg_id
  from pgmq.q_assessment_submitted
  where vt <= clock_timestamp() and msg_id <> all(%(in_flight)s::bigint[])
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
), firsts as (
  -- Two messages of one batch naming one assessment (a duplicate event): only the first starts it.
  select n.assessment_id, min(n.msg_id) as msg_id
  from named n
  where n.assessment_id is not null and n.read_ct <= %(max_reads)s
  group by n.assessment_id
), startable as (
  -- SKIP LOCKED: an assessment locked now is being committed, failed or deleted by someone else. (NO KEY:
  -- the lock the update takes anyway, so result inserts' foreign-key checks do not make it busy.)
  select a.id
  from public.test_assessment a
  where a.id in (select n.assessment_id from named n where n.read_ct <= %(max_reads)s)
    and a.status in ('queued', 'processing') and a.attempts < %(max_attempts)s
  for no key update skip locked
), started as (
  update public.test_assessment a
  set status = 'processing', attempts = attempts + 1, started_at = now()
  from startable s
  where a.id = s.id
  returning a.id, a.user_id, a.assessment_type, a.answers, a.context, a.status, a.attempts, a.created_at
), snapshot as (
  -- As of this statement's snapshot (before `started`): what the other states are decided on.
  select a.id, a.user_id, a.assessment_type, a.answers, a.context, a.status, a.attempts, a.created_at
  from public.test_assessment a
  where a.id in (select assessment_id from named)
)
select n.msg_id, n.read_ct, n.enqueued_at, n.message,
       case when n.assessment_id is null then 'invalid'
            when s.id is not null and n.msg_id = (select f.msg_id from firsts f where f.assessment_id = n.assessment_id)
              then 'started'
            when s.id is not null then 'busy'  -- started by the batch's first message for it
            when c.id is null or c.status in ('completed', 'failed') then 'done'
            when n.read_ct > %(max_reads)s then 'overread'
            when c.attempts >= %(max_attempts)s then 'exhausted'
            else 'busy' end as state,
       coalesce(s.id, c.id) as id, coalesce(s.user_id, c.user_id) as user_id,
       coalesce(s.assessment_type, c.assessment_type) as assessment_type,
       coalesce(s.answers, c.answers) as answers, coalesce(s.context, c.context) as context,
       coalesce(s.status, c.status) as status, coalesce(s.attempts, c.attempts) as attempts,
       coalesce(s.created_at, c.created_at) as created_at
from named n
left join started s on s.id = n.assessment_id
left join snapshot c on c.id = n.assessment_id
order by n.msg_id;

-- Lock order. Every statement that waits for locks takes the queue's rows first, in msg_id order, and
-- assessments after them; take_jobs and the users' own statements never wait for a queue row. So no two
-- of them can wait for each other in a cycle (no deadlock).

-- Fencing. A lease is (msg_id, read_ct): read_ct counts deliveries, so a message read again by anyone
-- has a new one. Every write a lease holder makes checks it, and changes nothing (returns held = false)
-- when the message has been delivered again since: the new holder owns the job now.

-- name: extend_leases
-- Make held messages visible again vt seconds from now; returns the msg_ids still held.
with held as (
  select q.msg_id
  from pgmq.q_assessment_submitted q
  join unnest(%(msg_ids)s::bigint[], %(read_cts)s::integer[]) as l(msg_id, read_ct)
    on q.msg_id = l.msg_id and q.read_ct = l.read_ct
  order by q.msg_id
  for update of q
)
update pgmq.q_assessment_submitted q
set vt = clock_timestamp() + make_interval(secs => %(vt)s)
from held
where q.msg_id = held.msg_id
returning q.msg_id;

-- name: release_leases
-- Make held messages visible now (graceful shutdown); returns the msg_ids still held.
with held as (
  select q.msg_id
  from pgmq.q_assessment_submitted q
  join unnest(%(msg_ids)s::bigint[], %(read_cts)s::integer[]) as l(msg_id, read_ct)
    on q.msg_id = l.msg_id and q.read_ct = l.read_ct
  order by q.msg_id
  for update of q
)
update pgmq.q_assessment_submitted q
set vt = clock_timestamp()
from held
where q.msg_id = held.msg_id
returning q.msg_id;

-- name: broadcast_drafts
-- Send a job's streamed drafts to its owner (recommendation_streamed, worker/drafts.py); returns how many
-- were sent: 0 when the message was delivered again since or the assessment is no longer processing.
select private.broadcast_recommendation_drafts(%(msg_id)s::bigint, %(read_ct)s::integer, %(drafts)s::jsonb) as sent;

-- name: find_cached
-- For each cache key, the newest AI result for the same prompt and model younger than ttl seconds.
select distinct on (cache_key) cache_key, summary, recommendations, model
from public.result_test
where cache_key = any(%(cache_keys)s::text[]) and source = 'ai'
  and created_at > now() - make_interval(secs => %(ttl)s)
order by cache_key, created_at desc;

-- name: complete_jobs
-- ONE statement for a batch of finished jobs: for each job whose lease still holds, insert its result,
-- mark its assessment completed and archive its message. Returns each job's outcome:
--   completed   this job's result completed the assessment
--   finished    the assessment was no longer processing (completed by another delivery, failed, deleted):
--               no result, the message archived
--   busy        another transaction holds the assessment (its owner deleting it, say): nothing written,
--               the message stays leased; commit again shortly
--   lease_lost  the message was delivered again since this job's lease (fencing): nothing written
with input as (
  select *
  from jsonb_to_recordset(%(jobs)s::jsonb) as j(
    msg_id bigint, read_ct integer, assessment_id uuid, summary text, recommendations jsonb,
    source public.recommendation_source, fallback_reason text, model text, prompt_version text,
    cache_key text, prompt_tokens integer, completion_tokens integer, latency_ms integer)
), held as materialized (
  select q.msg_id
  from pgmq.q_assessment_submitted q
  join input i on i.msg_id = q.msg_id and i.read_ct = q.read_ct
  order by q.msg_id
  for update of q
), locked as materialized (
  -- SKIP LOCKED: no user statement (a DELETE that runs for seconds) can hold up a commit.
  select a.id, a.user_id
  from public.test_assessment a
  where a.id in (select i.assessment_id from input i join held h on h.msg_id = i.msg_id)
    and a.status = 'processing'
  order by a.id
  for no key update of a skip locked
), busy as (
  -- Processing as of this statement's snapshot but not lockable: someone else holds it right now.
  select a.id
  from public.test_assessment a
  where a.id in (select i.assessment_id from input i join held h on h.msg_id = i.msg_id)
    and a.status = 'processing' and a.id not in (select id from locked)
), inserted as (
  insert into public.result_test (
    assessment_id, user_id, summary, recommendations, source, fallback_reason, model,
    prompt_version, cache_key, prompt_tokens, completion_tokens, latency_ms)
  -- Two held messages for one assessment: the first one's result, the one the outcome below names.
  select distinct on (i.assessment_id)
         i.assessment_id, l.user_id, i.summary, i.recommendations, i.source, i.fallback_reason, i.model,
         i.prompt_version, i.cache_key, i.prompt_tokens, i.completion_tokens, i.latency_ms
  from input i
  join held h on h.msg_id = i.msg_id
  join locked l on l.id = i.assessment_id
  order by i.assessment_id, i.msg_id
  on conflict (assessment_id) do nothing
  returning assessment_id
), completed as (
  update public.test_assessment a
  set status = 'completed', completed_at = now(), last_error = null
  from inserted
  where a.id = inserted.assessment_id
  returning a.id
), archived as (
  -- One call for the batch (pgmq runs a new dynamic query on every call); rows already locked above.
  select count(*) as messages
  from pgmq.archive('assessment_submitted', array(
    select i.msg_id from input i join held h on h.msg_id = i.msg_id
    where i.assessment_id not in (select id from busy)))
)
-- Two messages for one assessment in a batch: only the first held one counts as the one that completed it.
select i.msg_id,
       case when h.msg_id is null then 'lease_lost'
            when b.id is not null then 'busy'
            when c.id is not null and i.msg_id = min(h.msg_id) over (partition by i.assessment_id) then 'completed'
            else 'finished' end as outcome
from input i
cross join archived
left join held h on h.msg_id = i.msg_id
left join busy b on b.id = i.assessment_id
left join completed c on c.id = i.assessment_id;

-- name: acknowledge
-- Archive held messages that need no work (assessment deleted, already completed or failed); returns
-- the msg_ids archived.
with held as (
  select q.msg_id
  from pgmq.q_assessment_submitted q
  join unnest(%(msg_ids)s::bigint[], %(read_cts)s::integer[]) as l(msg_id, read_ct)
    on q.msg_id = l.msg_id and q.read_ct = l.read_ct
  order by q.msg_id
  for update of q
)
select msg_id
from held
where pgmq.archive('assessment_submitted', msg_id);

-- name: record_failure
-- A failed attempt of a held message: make the message visible again after delay seconds, and tell the
-- owner (a short message, never the technical error) unless another transaction holds the assessment
-- right now (SKIP LOCKED: never wait for a user's statement). Returns held = false and changes nothing
-- when the message was delivered again since.
with held as materialized (
  select msg_id
  from pgmq.q_assessment_submitted
  where msg_id = %(msg_id)s and read_ct = %(read_ct)s
  for update
), delayed as (
  update pgmq.q_assessment_submitted q
  set vt = clock_timestamp() + make_interval(secs => %(delay)s)
  from held
  where q.msg_id = held.msg_id
  returning q.msg_id
), target as materialized (
  select a.id
  from public.test_assessment a
  where a.id = %(assessment_id)s and a.status = 'processing' and exists (select from delayed)
  for no key update skip locked
), noted as (
  update public.test_assessment a
  set last_error = %(error)s
  from target
  where a.id = target.id
  returning a.id
)
select exists (select from delayed) as held, (select count(*) from noted) as noted;

-- name: dead_letter
-- Give up on a held message: copy it to the dead-letter queue with the reason (operators read it), archive
-- it, and mark its assessment failed with a message for its owner (if given and not finished): one
-- transaction. Changes nothing and returns held = false when the message was delivered again since, or
-- busy = true when another transaction holds the assessment right now (SKIP LOCKED: a user's statement
-- never makes the worker wait; the message comes back when its lease ends and is triaged again).
with held as materialized (
  select msg_id
  from pgmq.q_assessment_submitted
  where msg_id = %(msg_id)s and read_ct = %(read_ct)s
  for update
), target as materialized (
  select a.id
  from public.test_assessment a
  where a.id = %(assessment_id)s and a.status in ('queued', 'processing') and exists (select from held)
  for no key update skip locked
), busy as materialized (
  select exists (select from public.test_assessment a
                 where a.id = %(assessment_id)s and a.status in ('queued', 'processing'))
         and not exists (select from target) as busy
), moved as (
  select pgmq.send('assessment_submitted_dlq', jsonb_build_object(
    'event', %(message)s::jsonb,
    'reason', %(reason)s::text,
    'source_msg_id', held.msg_id,
    'read_ct', %(read_ct)s::integer,
    'failed_at', now())) as dlq_msg_id
  from held
  where not (select busy from busy)
), failed as (
  update public.test_assessment a
  set status = 'failed', last_error = %(user_message)s, completed_at = now()
  from target
  where a.id = target.id and exists (select from moved)
  returning a.id
), archived as (
  select pgmq.archive('assessment_submitted', held.msg_id) as archived
  from held
  where exists (select from moved)
)
select exists (select from held) as held, (select busy from busy) as busy,
       (select dlq_msg_id from moved) as dlq_msg_id, (select count(*) from failed) as failed,
       (select archived from archived) as archived;

-- name: dlq_list
select msg_id, enqueued_at, message
from pgmq.q_assessment_submitted_dlq
order by msg_id
limit %(limit)s;

-- name: dlq_requeue
-- Put a dead-lettered event back on the job queue and its assessment back to queued with a full set of
-- attempts (an operator requeues once the cause is fixed), one transaction. Only a dead letter whose
-- assessment is failed is requeued: for one that is queued, processing or completed, a second event would
-- start a second job for it; one whose event names no assessment has nothing to requeue. Those stay in
-- the dead-letter queue, and `assessment_status` says why.
with dead as (
  select msg_id, message from pgmq.q_assessment_submitted_dlq where msg_id = %(msg_id)s for update
), requeued as (
  update public.test_assessment a
  set status = 'queued', attempts = 0, last_error = null, completed_at = null
  from dead
  -- compared as text: a dead letter may hold an invalid event whose assessment_id is no uuid
  where a.id::text = dead.message -> 'event' ->> 'assessment_id' and a.status = 'failed'
  returning a.id
), sent as (
  select pgmq.send('assessment_submitted', dead.message -> 'event') as new_msg_id
  from dead
  where exists (select from requeued)
)
select exists (select from dead) as found,
       (select new_msg_id from sent) as new_msg_id,
       (select a.status::text from public.test_assessment a, dead
        where a.id::text = dead.message -> 'event' ->> 'assessment_id') as assessment_status,
       (select count(pgmq.delete('assessment_submitted_dlq', msg_id)) from dead
        where exists (select from sent)) as removed;

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

-- The AI step is admitted, not attempted: supabase/migrations/20261208140000_admit_ai_calls.sql holds the
-- rules (pacing, the provider's pause, budgets with reservations that live as long as the lease).

-- name: admit_ai_call
-- One try of an AI call asks to start: admitted (after wait_seconds; settle the reservation), deferred,
-- user_budget_exhausted, daily_budget_exhausted or lease_lost. One row.
select decision, reservation, wait_seconds
from private.admit_ai_call(
  %(msg_id)s::bigint, %(read_ct)s::integer, %(reservation)s::bigint, %(tokens)s::bigint, %(cost_usd)s::numeric,
  %(wait_limit_seconds)s::double precision, %(requests_per_minute)s::integer, %(tokens_per_minute)s::bigint,
  %(user_daily_tokens)s::bigint, %(daily_budget_usd)s::numeric, %(pause_seconds)s::double precision);

-- name: settle_ai_call
-- An admitted call ended: record the usage the provider reported and release its reservation.
select private.settle_ai_call(
  %(reservation)s::bigint, %(requests)s::integer, %(prompt_tokens)s::bigint, %(completion_tokens)s::bigint,
  %(cost_usd)s::numeric, %(tokens_per_minute)s::bigint, %(user_daily_tokens)s::bigint,
  %(daily_budget_usd)s::numeric, %(pause_seconds)s::double precision) as settled;

-- name: ai_usage_today
select requests, tokens, cost_usd from private.ai_usage_today();
