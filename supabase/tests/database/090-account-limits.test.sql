-- private.guard_submission: what one account may submit per UTC day (PT429, HTTP 429) and keep at once
-- (PT409, HTTP 409). A refused submission stores and queues nothing. now() is fixed inside the test's
-- transaction.
begin;
\ir helpers.psql
select plan(17);

select from pg_temp.create_user('owner');
select from pg_temp.create_user('other');

-- as postgres: the defaults
select is((select submissions_per_day from private.settings), 50, 'By default a user may submit 50 assessments a day.');
select is((select stored_assessments_per_user from private.settings), 500, 'By default a user may keep 500 assessments.');
update private.settings set submissions_per_minute = null, submissions_per_day = 2, stored_assessments_per_user = null;

-- as the owner: the daily limit
select pg_temp.authenticate_as('owner');
select lives_ok($$ select pg_temp.submit() $$, 'The 1st submission of the day is accepted.');
select lives_ok($$ select pg_temp.submit() $$, 'The 2nd submission of the day is accepted.');
select throws_ok($$ select pg_temp.submit() $$,
  'PT429', 'daily limit: at most 2 assessments per day', 'The 3rd submission of the day is rejected with PT429.');
select is(pg_temp.error_of($$ select pg_temp.submit() $$) ->> 'detail',
  format('The limit resets at %s 00:00 UTC.', (now() at time zone 'UTC')::date + 1),
  'The error says when the limit resets.');
select matches(pg_temp.error_of($$ select pg_temp.submit() $$) ->> 'hint',
  '^Submit again after \d{4}-\d\d-\d\d 00:00 UTC \(in \d+ h \d+ min\)\.$', 'The hint says when to submit again.');
select is((select count(*) from public.test_assessment where user_id = pg_temp.user_id('owner')), 2::bigint,
  'Refused submissions store nothing.');
select is(pg_temp.events_for_user(pg_temp.user_id('owner')), 2::bigint, 'Refused submissions queue nothing.');

-- as another user: a separate count
select pg_temp.authenticate_as('other');
select lives_ok($$ select pg_temp.submit() $$, 'Another user is not affected by the owner''s daily limit.');

-- the next UTC day
select pg_temp.reset_role();
update private.submission_quota set day = day - 1 where user_id = pg_temp.user_id('owner');
select pg_temp.authenticate_as('owner');
select lives_ok($$ select pg_temp.submit() $$, 'On the next UTC day the owner may submit again.');

-- as postgres: the storage limit
select pg_temp.reset_role();
update private.settings set submissions_per_day = null, stored_assessments_per_user = 4;
select pg_temp.authenticate_as('owner');
select lives_ok($$ select pg_temp.submit() $$, 'The 4th stored assessment is accepted.');
select throws_ok($$ select pg_temp.submit() $$,
  'PT409', 'storage limit: at most 4 stored assessments per account', 'A 5th stored assessment is rejected with PT409.');
select is(pg_temp.error_of($$ select pg_temp.submit() $$) ->> 'hint',
  'Delete assessments you no longer need, then submit again.', 'The hint says how to make room.');
select lives_ok($$ delete from public.test_assessment where id = (
    select id from public.test_assessment where user_id = pg_temp.user_id('owner') order by created_at limit 1) $$,
  'The owner deletes an old assessment.');
select lives_ok($$ select pg_temp.submit() $$, 'Deleting one made room for one more.');

-- as postgres: off
select pg_temp.reset_role();
update private.settings set stored_assessments_per_user = null, submissions_per_day = null;
select pg_temp.authenticate_as('owner');
select lives_ok($$ select pg_temp.submit() $$, 'With both limits null, nothing is refused.');

select * from finish();
rollback;
