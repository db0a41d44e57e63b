-- Row Level Security on public.test_assessment and public.result_test, per actor: which rows each
-- API role sees, and which statements the API roles may run at all.
begin;
\ir helpers.psql
select plan(28);

select from pg_temp.create_user('owner');
select from pg_temp.create_user('other');

-- Fixtures: one assessment each (submitted as their owners), one result for the owner's.
select pg_temp.authenticate_as('owner');
select from pg_temp.submit(context => '{"locale": "en"}');
select pg_temp.authenticate_as('other');
select from pg_temp.submit();
select pg_temp.reset_role();
insert into public.result_test (assessment_id, user_id, summary, recommendations, source, model, prompt_version, latency_ms)
select id, user_id, 'Focus on one goal.', '[{"title": "Plan", "description": "Write a plan.", "category": "career", "priority": 1, "rationale": "It helps you start."}]',
       'ai', 'test-model', 'v1', 42
from public.test_assessment where user_id = pg_temp.user_id('owner');

-- as the owner
select pg_temp.authenticate_as('owner');
select results_eq(
  $$ select user_id from public.test_assessment $$,
  $$ select pg_temp.user_id('owner') $$,
  'The owner sees exactly their own assessment and nobody else''s.');
select results_eq(
  $$ select user_id from public.result_test $$,
  $$ select pg_temp.user_id('owner') $$,
  'The owner sees exactly their own result.');
select is((select status from public.test_assessment), 'queued'::public.assessment_status,
  'The owner can read the status of their assessment.');
select throws_ok(
  $$ update public.test_assessment set context = null $$,
  '42501', 'permission denied for table test_assessment',
  'The owner cannot update their assessment once submitted.');
select throws_ok(
  $$ update public.result_test set summary = 'Better summary' $$,
  '42501', 'permission denied for table result_test',
  'The owner cannot edit their result.');
select throws_ok(
  $$ delete from public.result_test $$,
  '42501', 'permission denied for table result_test',
  'The owner cannot delete their result directly (only with the assessment).');

-- as another user
select pg_temp.authenticate_as('other');
select is((select count(*) from public.test_assessment where user_id = pg_temp.user_id('owner')), 0::bigint,
  'Another user sees none of the owner''s assessments.');
select is((select count(*) from public.result_test where user_id = pg_temp.user_id('owner')), 0::bigint,
  'Another user sees none of the owner''s results.');
select results_eq(
  $$ select user_id from public.test_assessment $$,
  $$ select pg_temp.user_id('other') $$,
  'Another user sees only their own assessment.');
with deleted as (
  delete from public.test_assessment where user_id = pg_temp.user_id('owner') returning 1
)
select is(count(*), 0::bigint, 'Another user''s delete of the owner''s assessment removes nothing.') from deleted;

-- as anon
select pg_temp.become_anon();
select throws_ok(
  $$ select * from public.test_assessment $$,
  '42501', 'permission denied for table test_assessment',
  'Anon cannot read assessments.');
select throws_ok(
  $$ select * from public.result_test $$,
  '42501', 'permission denied for table result_test',
  'Anon cannot read results.');
select throws_ok(
  $$ insert into public.test_assessment (assessment_type, answers) values ('career', pg_temp.answers(1)) $$,
  '42501', 'permission denied for table test_assessment',
  'Anon cannot submit an assessment.');
select throws_ok(
  $$ delete from public.test_assessment $$,
  '42501', 'permission denied for table test_assessment',
  'Anon cannot delete assessments.');

-- as service_role
select pg_temp.become_service_role();
select is(
  (select count(*) from public.test_assessment where user_id in (pg_temp.user_id('owner'), pg_temp.user_id('other'))),
  2::bigint,
  'The service role sees every user''s assessments (it bypasses RLS).');
select is((select count(*) from public.result_test where user_id = pg_temp.user_id('owner')), 1::bigint,
  'The service role sees every user''s results.');
select lives_ok(
  $$ insert into public.test_assessment (user_id, assessment_type, answers)
     values (pg_temp.user_id('other'), 'career', pg_temp.answers(2)) $$,
  'The service role can submit on behalf of a user by naming user_id.');
select throws_ok(
  $$ insert into public.test_assessment (assessment_type, answers) values ('career', pg_temp.answers(1)) $$,
  '23502', 'user_id: is required',
  'The service role must name user_id: there is no auth.uid() to default to.');
select throws_ok(
  $$ update public.test_assessment set status = 'failed' where user_id = pg_temp.user_id('owner') $$,
  '42501', 'permission denied for table test_assessment',
  'The service role cannot change a status: that is the worker''s (on old and new projects alike).');
select throws_ok(
  $$ insert into public.result_test (assessment_id, user_id, summary, recommendations, source, prompt_version,
                                    latency_ms)
     select id, user_id, 'A forged summary.', '[]', 'ai', 'v1', 0 from public.test_assessment limit 1 $$,
  '42501', 'permission denied for table result_test',
  'The service role cannot write results: that is the worker''s.');

-- as the owner, withdrawing
select pg_temp.authenticate_as('owner');
with deleted as (delete from public.test_assessment returning user_id)
select is((select user_id from deleted), pg_temp.user_id('owner'),
  'The owner can delete their own assessment.');
select pg_temp.reset_role();
select is((select count(*) from public.test_assessment where user_id = pg_temp.user_id('owner')), 0::bigint,
  'The owner''s assessment is gone.');
select is((select count(*) from public.result_test where user_id = pg_temp.user_id('owner')), 0::bigint,
  'Deleting an assessment deletes its result by cascade.');
select is((select count(*) from public.test_assessment where user_id = pg_temp.user_id('other')), 2::bigint,
  'The other user''s assessments are untouched by the owner''s delete.');

-- the policies and grants themselves
select policies_are('public', 'test_assessment', array[
  'Users can submit their own assessments',
  'Users can read their own assessments',
  'Users can delete their own assessments',
  'The worker can read every assessment',
  'The worker can record processing of every assessment'],
  'test_assessment has exactly the documented policies.');
select policies_are('public', 'result_test', array[
  'Users can read their own results',
  'The worker can read every result',
  'The worker can write results'],
  'result_test has exactly the documented policies.');
select ok((select relrowsecurity from pg_class where oid = 'public.test_assessment'::regclass),
  'RLS is enabled on test_assessment.');
select ok((select relrowsecurity from pg_class where oid = 'public.result_test'::regclass),
  'RLS is enabled on result_test.');

select * from finish();
rollback;
