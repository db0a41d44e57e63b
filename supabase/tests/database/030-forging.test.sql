-- Forging: what a signed-in user might try with their own JWT against the API roles' rights. Every
-- attempt fails with 42501 and leaves no row and no queue message behind.
begin;
\ir helpers.psql
select plan(36);

select from pg_temp.create_user('owner');
select from pg_temp.create_user('victim');

-- The victim has one assessment, submitted with an idempotency key.
select pg_temp.authenticate_as('victim');
select from pg_temp.submit(client_request_id => '00000000-0000-4000-8000-00000000d1ce');

-- as the owner: submitting for someone else
select pg_temp.authenticate_as('owner');
select throws_ok(
  $$ insert into public.test_assessment (user_id, assessment_type, answers)
     values (pg_temp.user_id('victim'), 'career', pg_temp.answers(1)) $$,
  '42501', 'new row violates row-level security policy for table "test_assessment"',
  'A user cannot submit an assessment in another user''s name.');
select lives_ok(
  $$ insert into public.test_assessment (user_id, assessment_type, answers)
     values (pg_temp.user_id('owner'), 'career', pg_temp.answers(1)) $$,
  'Naming one''s own user_id explicitly is allowed.');

-- as the owner: each worker-owned column on insert
select throws_ok($$ insert into public.test_assessment (assessment_type, answers, status) values ('career', pg_temp.answers(1), 'completed') $$,
  '42501', 'permission denied for table test_assessment', 'A user cannot choose status on insert.');
select throws_ok($$ insert into public.test_assessment (assessment_type, answers, attempts) values ('career', pg_temp.answers(1), 0) $$,
  '42501', 'permission denied for table test_assessment', 'A user cannot choose attempts on insert.');
select throws_ok($$ insert into public.test_assessment (assessment_type, answers, last_error) values ('career', pg_temp.answers(1), 'x') $$,
  '42501', 'permission denied for table test_assessment', 'A user cannot choose last_error on insert.');
select throws_ok($$ insert into public.test_assessment (assessment_type, answers, started_at) values ('career', pg_temp.answers(1), now()) $$,
  '42501', 'permission denied for table test_assessment', 'A user cannot choose started_at on insert.');
select throws_ok($$ insert into public.test_assessment (assessment_type, answers, completed_at) values ('career', pg_temp.answers(1), now()) $$,
  '42501', 'permission denied for table test_assessment', 'A user cannot choose completed_at on insert.');
select throws_ok($$ insert into public.test_assessment (assessment_type, answers, created_at) values ('career', pg_temp.answers(1), '2000-01-01') $$,
  '42501', 'permission denied for table test_assessment', 'A user cannot backdate created_at on insert.');
select throws_ok($$ insert into public.test_assessment (assessment_type, answers, updated_at) values ('career', pg_temp.answers(1), now()) $$,
  '42501', 'permission denied for table test_assessment', 'A user cannot choose updated_at on insert.');
select throws_ok($$ insert into public.test_assessment (assessment_type, answers, id) values ('career', pg_temp.answers(1), gen_random_uuid()) $$,
  '42501', 'permission denied for table test_assessment', 'A user cannot choose the assessment id on insert.');
select throws_ok(
  $$ insert into public.test_assessment (assessment_type, answers, client_request_id)
     values ('career', pg_temp.answers(1), gen_random_uuid())
     on conflict (user_id, client_request_id) do update set status = 'completed' $$,
  '42501', 'permission denied for table test_assessment', 'A user cannot upsert their way into an update.');

-- as the owner: changing a submitted assessment
select throws_ok($$ update public.test_assessment set status = 'completed', completed_at = now() $$,
  '42501', 'permission denied for table test_assessment', 'A user cannot mark their assessment completed.');
select throws_ok($$ update public.test_assessment set attempts = 0 $$,
  '42501', 'permission denied for table test_assessment', 'A user cannot reset attempts.');
select throws_ok($$ update public.test_assessment set answers = pg_temp.answers(2) $$,
  '42501', 'permission denied for table test_assessment', 'A user cannot change answers after submitting.');
select throws_ok($$ update public.test_assessment set user_id = pg_temp.user_id('victim') $$,
  '42501', 'permission denied for table test_assessment', 'A user cannot hand an assessment to another user.');

-- as the owner: writing results
select throws_ok(
  $$ insert into public.result_test (assessment_id, user_id, summary, recommendations, source, prompt_version, latency_ms)
     select id, user_id, 'Self-made.', '[{"title": "x"}]', 'ai', 'v1', 1 from public.test_assessment $$,
  '42501', 'permission denied for table result_test', 'A user cannot write a result for their own assessment.');
select throws_ok($$ update public.result_test set summary = 'x' $$,
  '42501', 'permission denied for table result_test', 'A user cannot update results.');
select throws_ok($$ delete from public.result_test $$,
  '42501', 'permission denied for table result_test', 'A user cannot delete results.');

-- as the owner: the queue directly
select throws_ok($$ select pgmq.send('assessment_submitted', '{"type": "assessment_submitted", "version": 1}') $$,
  '42501', 'permission denied for schema pgmq', 'A user cannot send a message with pgmq.send.');
select throws_ok($$ select * from pgmq.read('assessment_submitted', 30, 10) $$,
  '42501', 'permission denied for schema pgmq', 'A user cannot read (lease) messages with pgmq.read.');
select throws_ok($$ select pgmq.purge_queue('assessment_submitted') $$,
  '42501', 'permission denied for schema pgmq', 'A user cannot purge the queue.');
select throws_ok($$ select pgmq.archive('assessment_submitted', 1::bigint) $$,
  '42501', 'permission denied for schema pgmq', 'A user cannot archive a message.');
select throws_ok($$ select * from pgmq.metrics('assessment_submitted') $$,
  '42501', 'permission denied for schema pgmq', 'A user cannot read queue metrics.');
select throws_ok($$ select * from pgmq.q_assessment_submitted $$,
  '42501', 'permission denied for schema pgmq', 'A user cannot read the queue table (other users'' ids).');
select throws_ok($$ insert into pgmq.q_assessment_submitted (vt, message) values (now(), '{}') $$,
  '42501', 'permission denied for schema pgmq', 'A user cannot insert into the queue table.');

-- as the owner: the internal schema
select throws_ok($$ select private.validation_error('x', 'y', 'z', 'w') $$,
  '42501', 'permission denied for schema private', 'A user cannot call private.validation_error().');
select throws_ok($$ select private.enqueue_assessment() $$,
  '42501', 'permission denied for schema private', 'A user cannot call private.enqueue_assessment().');
select throws_ok($$ select private.guard_submission() $$,
  '42501', 'permission denied for schema private', 'A user cannot call private.guard_submission().');
select throws_ok($$ update private.settings set submissions_per_minute = null $$,
  '42501', 'permission denied for schema private', 'A user cannot turn the rate limit off.');
select throws_ok($$ delete from private.submission_quota $$,
  '42501', 'permission denied for schema private', 'A user cannot reset their rate-limit bucket.');

-- as the owner: a forged user_id. private.guard_submission() (a before-insert trigger with definer
-- rights) runs before RLS checks the new row, so it must not act on another user's row: neither tell
-- real user ids from made-up ones nor report the victim's idempotency key as already submitted.
select throws_ok(
  $$ insert into public.test_assessment (user_id, assessment_type, answers)
     values (gen_random_uuid(), 'career', pg_temp.answers(1)) $$,
  '42501', 'new row violates row-level security policy for table "test_assessment"',
  'A made-up user_id is rejected like any other user''s id, without revealing that it does not exist.');
select throws_ok(
  $$ insert into public.test_assessment (user_id, assessment_type, answers, client_request_id)
     values (pg_temp.user_id('victim'), 'career', pg_temp.answers(1), '00000000-0000-4000-8000-00000000d1ce') $$,
  '42501', 'new row violates row-level security policy for table "test_assessment"',
  'Another user''s idempotency key cannot be probed by forging their user_id.');

-- as anon: the queue and the internal schema
select pg_temp.become_anon();
select throws_ok($$ select pgmq.send('assessment_submitted', '{}') $$,
  '42501', 'permission denied for schema pgmq', 'Anon cannot send a message with pgmq.send.');
select throws_ok($$ select private.guard_submission() $$,
  '42501', 'permission denied for schema private', 'Anon cannot call private functions.');

-- nothing leaked through
select pg_temp.reset_role();
select is((select count(*) from public.test_assessment where user_id = pg_temp.user_id('victim')), 1::bigint,
  'No assessment was added in the victim''s name.');
select is(pg_temp.events_for_user(pg_temp.user_id('owner')), 1::bigint,
  'Only the owner''s one legitimate insert enqueued a message.');

select * from finish();
rollback;
