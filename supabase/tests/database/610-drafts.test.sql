-- Streamed drafts (recommendation_streamed): only the worker sends them, only for a job whose lease it
-- holds and whose assessment is processing, only to assessment:<id>, and only the owner receives them.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap with schema extensions;
\ir helpers.psql
select plan(16);

create function pg_temp.drafts(topic text)
returns bigint
language sql
as $$
  select count(*) from realtime.messages m
  where m.topic = drafts.topic and m.extension = 'broadcast' and m.event = 'recommendation_streamed';
$$;

-- private.broadcast_recommendation_drafts called as `role_name` (pgTAP itself is not the worker's to call).
create function pg_temp.send_as(role_name text, msg_id bigint, read_ct integer, drafts jsonb)
returns integer
language plpgsql
as $$
declare
  sent integer;
begin
  perform set_config('role', role_name, true);
  sent := private.broadcast_recommendation_drafts(msg_id, read_ct, drafts);
  perform set_config('role', 'none', true);
  return sent;
end;
$$;

insert into auth.users (id, email, role, aud) values
  ('00000000-0000-4000-8000-000000000611', 'owner-610@example.test', 'authenticated', 'authenticated'),
  ('00000000-0000-4000-8000-000000000612', 'other-610@example.test', 'authenticated', 'authenticated');
insert into public.test_assessment (id, user_id, assessment_type, answers) values
  ('00000000-0000-4000-8000-00000000a611', '00000000-0000-4000-8000-000000000611', 'career',
   '[{"question_id": "q1", "question": "Secret question?", "answer": "secret answer"}]');

-- The worker's lease on the assessment's message: one delivery (read_ct 1), then processing.
create temporary table lease (msg_id bigint, read_ct integer);
with delivered as (
  update pgmq.q_assessment_submitted
  set read_ct = read_ct + 1, vt = clock_timestamp() + interval '30 seconds'
  where message ->> 'assessment_id' = '00000000-0000-4000-8000-00000000a611'
  returning msg_id, read_ct
)
insert into lease select * from delivered;
grant select on lease to public;
create temporary table draft_batch (drafts jsonb);
insert into draft_batch values ('[
  {"index": 0, "recommendation": {"title": "Plan one step", "description": "Choose one small action a week.",
   "category": "Planning", "priority": 1, "rationale": "It rests on your answer to q1.", "based_on": ["q1"]}},
  {"index": 1, "recommendation": {"title": "Review monthly", "description": "Compare where you are each month.",
   "category": "Review", "priority": 2, "rationale": "Reviews show what works.", "based_on": ["q1"]}}]');
grant select on draft_batch to public;

set local role assessment_worker;
update public.test_assessment set status = 'processing', attempts = attempts + 1, started_at = now()
where id = '00000000-0000-4000-8000-00000000a611';
reset role;

-- as the worker, holding the lease
select is(
  (select pg_temp.send_as('assessment_worker', l.msg_id, l.read_ct, d.drafts) from lease l, draft_batch d),
  2, 'The lease holder sends one message per draft');
select is(
  (select pg_temp.send_as('assessment_worker', l.msg_id, l.read_ct + 1, d.drafts) from lease l, draft_batch d),
  0, 'A worker whose delivery is not the current one (another worker holds the message) sends nothing');
select throws_ok(
  $$select pg_temp.send_as('assessment_worker', l.msg_id, l.read_ct, '{"index": 0}') from pg_temp.lease l$$,
  '22023', null, 'Drafts that are not an array are refused');
select throws_ok(
  $$select pg_temp.send_as('assessment_worker', l.msg_id, l.read_ct,
      (select jsonb_agg(jsonb_build_object('index', 0, 'recommendation', '{}'::jsonb)) from generate_series(1, 11)))
    from pg_temp.lease l$$,
  '22023', null, 'More than ten drafts in a batch are refused');
select throws_ok(
  $$select pg_temp.send_as('assessment_worker', l.msg_id, l.read_ct, '[{"index": 10, "recommendation": {}}]')
    from pg_temp.lease l$$,
  '22023', null, 'An index outside 0-9 is refused');
select throws_ok(
  $$select pg_temp.send_as('assessment_worker', l.msg_id, l.read_ct,
      jsonb_build_array(jsonb_build_object('index', 0, 'recommendation',
        jsonb_build_object('title', repeat('x', 20000))))) from pg_temp.lease l$$,
  '22023', null, 'A draft over 16384 bytes is refused');

-- what was sent (as postgres)
select is(pg_temp.drafts('assessment:00000000-0000-4000-8000-00000000a611'), 2::bigint,
  'Only the lease holder''s two drafts reached assessment:<id>');
select is(pg_temp.drafts('user:00000000-0000-4000-8000-000000000611'), 0::bigint,
  'Drafts do not go to user:<uid>');
select is(
  (select array_agg(distinct k order by k) from realtime.messages m, jsonb_object_keys(m.payload) k
   where m.event = 'recommendation_streamed' and m.topic = 'assessment:00000000-0000-4000-8000-00000000a611'),
  array['assessment_id', 'attempt', 'id', 'index', 'occurred_at', 'recommendation', 'type', 'user_id', 'version'],
  'A draft carries exactly the contract''s keys (and the id realtime.send adds)');
select is(
  (select array_agg((m.payload ->> 'index') || '/' || (m.payload ->> 'attempt') || '/' || (m.payload ->> 'user_id')
                    order by m.payload ->> 'index')
   from realtime.messages m
   where m.event = 'recommendation_streamed' and m.topic = 'assessment:00000000-0000-4000-8000-00000000a611'),
  array['0/1/00000000-0000-4000-8000-000000000611', '1/1/00000000-0000-4000-8000-000000000611'],
  'Each draft names its index, the assessment''s attempt and the owner read from the database');
select ok(
  not exists (select from realtime.messages where event = 'recommendation_streamed' and payload::text like '%secret%'),
  'Drafts carry no answers');

-- who receives them
select pg_temp.join_as('authenticated', '00000000-0000-4000-8000-000000000611',
  'assessment:00000000-0000-4000-8000-00000000a611');
select is(pg_temp.drafts('assessment:00000000-0000-4000-8000-00000000a611'), 2::bigint,
  'The owner receives the drafts of their assessment');
select throws_ok(
  $$select private.broadcast_recommendation_drafts(l.msg_id, l.read_ct, '[]') from pg_temp.lease l$$,
  '42501', null, 'A user cannot send drafts, not even on their own assessment');
reset role;
select pg_temp.join_as('authenticated', '00000000-0000-4000-8000-000000000612',
  'assessment:00000000-0000-4000-8000-00000000a611');
select is(pg_temp.drafts('assessment:00000000-0000-4000-8000-00000000a611'), 0::bigint,
  'Another user cannot receive the owner''s drafts');
reset role;
select pg_temp.join_as('anon', null, 'assessment:00000000-0000-4000-8000-00000000a611');
select throws_ok(
  $$select private.broadcast_recommendation_drafts(1, 1, '[]')$$,
  '42501', null, 'Anon cannot send drafts');
reset role;

-- once the assessment is no longer processing, its drafts are over
set local role assessment_worker;
update public.test_assessment set status = 'failed', completed_at = now()
where id = '00000000-0000-4000-8000-00000000a611';
reset role;
select is(
  (select pg_temp.send_as('assessment_worker', l.msg_id, l.read_ct, d.drafts) from lease l, draft_batch d),
  0, 'No drafts are sent for an assessment that is no longer processing');

select * from finish();
rollback;
