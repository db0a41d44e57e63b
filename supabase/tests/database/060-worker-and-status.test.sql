-- The worker role (assessment_worker) and the status state machine (private.touch_assessment):
-- the worker reads every assessment, records processing and writes results, and nothing else;
-- status moves only along queued -> processing -> completed | failed (failed -> queued).
begin;
\ir helpers.psql
select plan(30);

select from pg_temp.create_user('owner');
select from pg_temp.create_user('other');
select pg_temp.authenticate_as('owner');
select pg_temp.submit() as job_id \gset
select pg_temp.submit() as second_id \gset
select pg_temp.authenticate_as('other');
select pg_temp.submit() as others_id \gset

-- pgTAP lives in schema extensions, where the worker has (and needs) no rights; lend it usage for
-- the assertions only (rolled back with the test).
select pg_temp.reset_role();
grant usage on schema extensions to assessment_worker;

-- as the worker: reading
select pg_temp.become_worker();
select is(
  (select count(*) from public.test_assessment where id in (:'job_id', :'second_id', :'others_id')), 3::bigint,
  'The worker reads every user''s assessments.');
select ok(
  (select count(*) from pgmq.read('assessment_submitted', 30, 1000)) >= 3,
  'The worker can lease messages from the queue with pgmq.read.');

-- as the worker: processing
select lives_ok(
  format($$ update public.test_assessment set status = 'processing', attempts = attempts + 1, started_at = now()
            where id = %L $$, :'job_id'),
  'The worker can move an assessment to processing and count the attempt.');
select is((select status from public.test_assessment where id = :'job_id'), 'processing'::public.assessment_status,
  'The assessment is processing.');
select lives_ok(
  format($$ insert into public.result_test (assessment_id, user_id, summary, recommendations, source, fallback_reason, prompt_version, latency_ms)
            select id, user_id, 'Start with small steps.', '[{"title": "Sleep", "description": "Keep a schedule.", "category": "wellbeing", "priority": 1, "rationale": "You sleep 5 hours."}]',
                   'fallback', 'timeout', 'rules-v1', 30000
            from public.test_assessment where id = %L $$, :'job_id'),
  'The worker can write a result.');
select throws_ok(
  format($$ insert into public.result_test (assessment_id, user_id, summary, recommendations, source, fallback_reason, prompt_version, latency_ms)
            select id, user_id, 'Again.', '[{"title": "Sleep", "description": "Keep a schedule.", "category": "wellbeing", "priority": 1, "rationale": "You sleep 5 hours."}]', 'fallback', 'timeout', 'rules-v1', 1
            from public.test_assessment where id = %L $$, :'job_id'),
  '23505', 'duplicate key value violates unique constraint "result_test_assessment_id_key"',
  'A redelivered message cannot write a second result for the same assessment.');
select throws_ok(
  format($$ update public.test_assessment set status = 'completed' where id = %L $$, :'job_id'),
  '23514', 'new row for relation "test_assessment" violates check constraint "test_assessment_completed_has_time"',
  'completed requires completed_at.');
select lives_ok(
  format($$ update public.test_assessment set status = 'completed', completed_at = now() where id = %L $$, :'job_id'),
  'The worker can mark an assessment completed.');
select lives_ok(
  format($$ update public.test_assessment set status = 'failed', last_error = 'invalid event', completed_at = now()
            where id = %L $$, :'others_id'),
  'The worker can fail a queued assessment with a reason.');

-- as the worker: what it cannot do
select throws_ok(
  $$ insert into public.test_assessment (user_id, assessment_type, answers)
     values (pg_temp.user_id('owner'), 'career', pg_temp.answers(1)) $$,
  '42501', 'permission denied for table test_assessment', 'The worker cannot submit assessments.');
select throws_ok(
  format($$ update public.test_assessment set answers = pg_temp.answers(2) where id = %L $$, :'second_id'),
  '42501', 'permission denied for table test_assessment', 'The worker cannot change answers.');
select throws_ok(
  format($$ update public.test_assessment set user_id = pg_temp.user_id('other') where id = %L $$, :'second_id'),
  '42501', 'permission denied for table test_assessment', 'The worker cannot change the owner.');
select throws_ok(
  format($$ update public.test_assessment set created_at = now() where id = %L $$, :'second_id'),
  '42501', 'permission denied for table test_assessment', 'The worker cannot change created_at.');
select throws_ok($$ delete from public.test_assessment $$,
  '42501', 'permission denied for table test_assessment', 'The worker cannot delete assessments.');
select throws_ok($$ update public.result_test set summary = 'x' $$,
  '42501', 'permission denied for table result_test', 'The worker cannot rewrite a result.');
select throws_ok($$ delete from public.result_test $$,
  '42501', 'permission denied for table result_test', 'The worker cannot delete results.');
-- (It has usage on schema private, for the AI admission functions of 20261208140000, and no table rights.)
select throws_ok($$ update private.settings set submissions_per_minute = null $$,
  '42501', 'permission denied for table settings', 'The worker cannot change pipeline settings.');
select throws_ok(
  format($$ update public.test_assessment set status = 'queued' where id = %L $$, :'job_id'),
  '22023', 'status: completed -> queued is not a valid transition',
  'The state machine applies to the worker too: completed is terminal.');

-- as the owner: the worker's writes are visible
select pg_temp.authenticate_as('owner');
select is((select status from public.test_assessment where id = :'job_id'), 'completed'::public.assessment_status,
  'The owner sees their assessment completed.');
select is((select source from public.result_test where assessment_id = :'job_id'), 'fallback'::public.recommendation_source,
  'The owner reads the result the worker wrote.');

-- as postgres: the state machine for every writer
select pg_temp.reset_role();
select throws_ok(
  format($$ update public.test_assessment set status = 'queued' where id = %L $$, :'job_id'),
  '22023', 'status: completed -> queued is not a valid transition',
  'completed -> queued is rejected, even for postgres.');
select throws_ok(
  format($$ update public.test_assessment set status = 'failed' where id = %L $$, :'job_id'),
  '22023', 'status: completed -> failed is not a valid transition', 'completed -> failed is rejected.');
select throws_ok(
  format($$ update public.test_assessment set status = 'completed', completed_at = now() where id = %L $$, :'second_id'),
  '22023', 'status: queued -> completed is not a valid transition', 'queued -> completed (skipping processing) is rejected.');
select is(
  pg_temp.error_of(format($$ update public.test_assessment set status = 'completed', completed_at = now() where id = %L $$, :'second_id')) ->> 'hint',
  'Allowed: queued -> processing | failed, processing -> completed | failed, failed -> queued.',
  'The transition error lists the allowed transitions.');
select lives_ok(
  format($$ update public.test_assessment set status = 'processing' where id = %L $$, :'second_id'),
  'queued -> processing is allowed.');
select throws_ok(
  format($$ update public.test_assessment set status = 'queued' where id = %L $$, :'second_id'),
  '22023', 'status: processing -> queued is not a valid transition', 'processing -> queued is rejected.');
select lives_ok(
  format($$ update public.test_assessment set status = 'failed', completed_at = now() where id = %L $$, :'second_id'),
  'processing -> failed is allowed.');
select lives_ok(
  format($$ update public.test_assessment set status = 'queued', completed_at = null where id = %L $$, :'second_id'),
  'failed -> queued (an operator''s requeue) is allowed.');
select lives_ok(
  format($$ update public.test_assessment set attempts = 2 where id = %L $$, :'second_id'),
  'An update that leaves status alone passes the state machine.');
select ok(
  (select updated_at = now() and created_at <= updated_at from public.test_assessment where id = :'second_id'),
  'Every update sets updated_at.');

select * from finish();
rollback;
