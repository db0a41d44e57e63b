-- The transactional outbox (private.enqueue_assessment): one versioned assessment_submitted event per
-- accepted insert, in the inserting transaction; none for a rejected or rolled-back insert. The
-- queue may hold other runs' messages, so counts are per fresh user or deltas.
begin;
\ir helpers.psql
select plan(11);

select from pg_temp.create_user('owner');
select queue_length as queue_before from pgmq.metrics('assessment_submitted') \gset

-- as the owner
select pg_temp.authenticate_as('owner');
select pg_temp.submit(context => '{"goals": ["change careers"], "locale": "en"}') as first_id \gset
select is(pg_temp.events_for_assessment(:'first_id'), 1::bigint,
  'An accepted insert puts exactly one message on assessment_submitted.');
select pg_temp.reset_role();
select is(
  (select message from pgmq.q_assessment_submitted where message ->> 'assessment_id' = :'first_id'),
  (select jsonb_build_object('type', 'assessment_submitted', 'version', 1, 'assessment_id', id,
                             'user_id', user_id, 'submitted_at', created_at)
   from public.test_assessment where id = :'first_id'),
  'The message is the versioned event {type, version 1, assessment_id, user_id, submitted_at} and nothing else.');
select is(
  (select read_ct from pgmq.q_assessment_submitted where message ->> 'assessment_id' = :'first_id'), 0,
  'The message is visible to workers and has not been read yet.');
select ok(
  (select vt <= clock_timestamp() from pgmq.q_assessment_submitted where message ->> 'assessment_id' = :'first_id'),
  'The message is available immediately (no delay).');

select pg_temp.authenticate_as('owner');
select lives_ok(
  $$ insert into public.test_assessment (assessment_type, answers)
     values ('career', pg_temp.answers(1)), ('wellbeing', pg_temp.answers(2)) $$,
  'A multi-row insert is accepted.');
select is(pg_temp.events_for_user(pg_temp.user_id('owner')), 3::bigint,
  'A multi-row insert enqueues one message per row.');

select throws_ok($$ select pg_temp.submit('[]') $$, '22023', 'answers: must hold 1 to 100 answers',
  'An invalid insert is rejected.');
select throws_ok(
  $$ insert into public.test_assessment (assessment_type, answers)
     values ('career', pg_temp.answers(1)), ('career', '{}') $$,
  '22023', 'answers: must be a JSON array of answers',
  'A multi-row insert with one invalid row is rejected as a whole.');
select is(pg_temp.events_for_user(pg_temp.user_id('owner')), 3::bigint,
  'Rejected inserts enqueue nothing, not even for their valid rows.');
select is((select count(*) from public.test_assessment), 3::bigint,
  'Rejected inserts leave no assessment behind.');

-- as postgres: the queue as a whole grew by exactly the accepted inserts
select pg_temp.reset_role();
select is((select queue_length from pgmq.metrics('assessment_submitted')) - :queue_before, 3::bigint,
  'The queue grew by exactly the three accepted assessments.');

select * from finish();
rollback;
