-- Realtime Authorization for assessment broadcasts: who may join assessment:<id> and user:<uid>
-- (read their messages in realtime.messages, as Realtime checks on join) and that nobody but the
-- database may broadcast on them.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap with schema extensions;
\ir helpers.psql
select plan(17);

-- The messages of a topic that the current caller can see.
create function pg_temp.visible(topic text)
returns bigint
language sql
as $$
  select count(*) from realtime.messages m where m.topic = visible.topic;
$$;

-- Fixtures, as postgres: two users, one assessment each, both taken by the worker.
insert into auth.users (id, email, role, aud) values
  ('00000000-0000-4000-8000-000000000601', 'owner-600@example.test', 'authenticated', 'authenticated'),
  ('00000000-0000-4000-8000-000000000602', 'other-600@example.test', 'authenticated', 'authenticated');
insert into public.test_assessment (id, user_id, assessment_type, answers) values
  ('00000000-0000-4000-8000-00000000a601', '00000000-0000-4000-8000-000000000601', 'career',
   '[{"question_id": "q1", "question": "Secret question?", "answer": "secret answer"}]'),
  ('00000000-0000-4000-8000-00000000a602', '00000000-0000-4000-8000-000000000602', 'career',
   '[{"question_id": "q1", "question": "Secret question?", "answer": "secret answer"}]');

set local role assessment_worker;
update public.test_assessment set status = 'processing', attempts = attempts + 1, started_at = now()
where id in ('00000000-0000-4000-8000-00000000a601', '00000000-0000-4000-8000-00000000a602');
reset role;

-- A presence message on the owner's topic: the policy covers broadcasts only.
insert into realtime.messages (topic, extension, payload, private)
values ('assessment:00000000-0000-4000-8000-00000000a601', 'presence', '{}', true);

-- as postgres (what the trigger wrote)
select is(
  (select count(*) from realtime.messages
   where extension = 'broadcast' and event = 'assessment_processing'
     and topic in ('assessment:00000000-0000-4000-8000-00000000a601', 'user:00000000-0000-4000-8000-000000000601')),
  2::bigint,
  'Taking an assessment broadcasts assessment_processing once to assessment:<id> and once to user:<uid>');
select ok(
  not exists (select from realtime.messages where payload::text like '%secret%'),
  'Broadcast payloads carry no answers');

-- as the owner
select pg_temp.join_as('authenticated', '00000000-0000-4000-8000-000000000601',
  'assessment:00000000-0000-4000-8000-00000000a601');
select is(pg_temp.visible('assessment:00000000-0000-4000-8000-00000000a601'), 1::bigint,
  'The owner can receive the broadcasts of their assessment topic');
select is(
  (select count(*) from realtime.messages where extension = 'presence'), 0::bigint,
  'The owner does not receive presence messages through the broadcast policy');
select is(pg_temp.visible('user:00000000-0000-4000-8000-000000000601'), 0::bigint,
  'A joined topic does not open another topic''s messages');
reset role;

select pg_temp.join_as('authenticated', '00000000-0000-4000-8000-000000000601',
  'user:00000000-0000-4000-8000-000000000601');
select is(pg_temp.visible('user:00000000-0000-4000-8000-000000000601'), 1::bigint,
  'The owner can receive the broadcasts of their user topic');
reset role;

select pg_temp.join_as('authenticated', '00000000-0000-4000-8000-000000000601',
  'assessment:00000000-0000-4000-8000-00000000a602');
select is(pg_temp.visible('assessment:00000000-0000-4000-8000-00000000a602'), 0::bigint,
  'The owner cannot receive another user''s assessment broadcasts');
reset role;

select pg_temp.join_as('authenticated', '00000000-0000-4000-8000-000000000601', 'assessment:not-a-uuid');
select lives_ok('select pg_temp.visible(''assessment:not-a-uuid'')',
  'A malformed assessment topic is evaluated without a uuid cast error');
select is(pg_temp.visible('assessment:not-a-uuid'), 0::bigint,
  'A malformed assessment topic shows nothing');
reset role;

select pg_temp.join_as('authenticated', '00000000-0000-4000-8000-000000000601',
  'assessment:00000000-0000-4000-8000-00000000A601');
select is(pg_temp.visible('assessment:00000000-0000-4000-8000-00000000A601'), 0::bigint,
  'Only the canonical lowercase topic of an assessment is granted');
reset role;

select pg_temp.join_as('authenticated', '00000000-0000-4000-8000-000000000601',
  'assessment:00000000-0000-4000-8000-00000000a601');
select throws_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private)
    values ('assessment:00000000-0000-4000-8000-00000000a601', 'broadcast', 'recommendation_completed', '{}', true)$$,
  '42501', 'new row violates row-level security policy for table "messages"',
  'The owner cannot broadcast on their assessment topic');
reset role;

-- as another user
select pg_temp.join_as('authenticated', '00000000-0000-4000-8000-000000000602',
  'assessment:00000000-0000-4000-8000-00000000a601');
select is(pg_temp.visible('assessment:00000000-0000-4000-8000-00000000a601'), 0::bigint,
  'Another user cannot receive the owner''s assessment broadcasts');
reset role;

select pg_temp.join_as('authenticated', '00000000-0000-4000-8000-000000000602',
  'user:00000000-0000-4000-8000-000000000601');
select is(pg_temp.visible('user:00000000-0000-4000-8000-000000000601'), 0::bigint,
  'Another user cannot receive the owner''s user broadcasts');
select throws_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private)
    values ('user:00000000-0000-4000-8000-000000000601', 'broadcast', 'recommendation_completed', '{}', true)$$,
  '42501', 'new row violates row-level security policy for table "messages"',
  'Another user cannot broadcast on the owner''s user topic');
reset role;

-- as anon
select pg_temp.join_as('anon', null, 'assessment:00000000-0000-4000-8000-00000000a601');
select is(pg_temp.visible('assessment:00000000-0000-4000-8000-00000000a601'), 0::bigint,
  'Anon cannot receive assessment broadcasts');
select throws_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private)
    values ('assessment:00000000-0000-4000-8000-00000000a601', 'broadcast', 'recommendation_completed', '{}', true)$$,
  '42501', 'new row violates row-level security policy for table "messages"',
  'Anon cannot broadcast on an assessment topic');
reset role;

-- as service_role
select pg_temp.join_as('service_role', null, 'assessment:00000000-0000-4000-8000-00000000a601');
select is(pg_temp.visible('assessment:00000000-0000-4000-8000-00000000a601'), 2::bigint,
  'service_role bypasses RLS and sees every message of the topic');
reset role;

select * from finish();
rollback;
