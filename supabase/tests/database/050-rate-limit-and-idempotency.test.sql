-- private.guard_submission: the per-user rate limit (PT429, HTTP 429) and idempotent client retries
-- (client_request_id, 23505, HTTP 409). now() is fixed inside the test's transaction, so the token
-- bucket does not refill between inserts here.
begin;
\ir helpers.psql
select plan(20);

select from pg_temp.create_user('owner');
select from pg_temp.create_user('other');
update private.settings set submissions_per_minute = 3;

-- as the owner: the rate limit
select pg_temp.authenticate_as('owner');
select lives_ok($$ select pg_temp.submit() $$, 'The 1st submission within the limit of 3 per minute is accepted.');
select lives_ok($$ select pg_temp.submit() $$, 'The 2nd submission is accepted.');
select lives_ok($$ select pg_temp.submit() $$, 'The 3rd submission is accepted.');
select throws_ok($$ select pg_temp.submit() $$,
  'PT429', 'rate limit: at most 3 assessments per minute', 'The 4th submission within a minute is rejected with PT429.');
select is(pg_temp.error_of($$ select pg_temp.submit() $$) - 'message' - 'code',
  '{"detail": "Retry after 20 seconds.", "hint": "Wait 20 seconds before submitting again."}',
  'The rate-limit error says how long to wait.');
select throws_ok($$ select pg_temp.submit('[]') $$,
  '22023', 'answers: must hold 1 to 100 answers', 'Validation runs before the rate limit.');
select is(pg_temp.events_for_user(pg_temp.user_id('owner')), 3::bigint,
  'Rate-limited submissions enqueue nothing.');

-- as another user: a separate bucket
select pg_temp.authenticate_as('other');
select lives_ok($$ select pg_temp.submit() $$, 'Another user is not affected by the owner''s limit.');

-- as postgres: turning the limit off
select pg_temp.reset_role();
update private.settings set submissions_per_minute = null;
select pg_temp.authenticate_as('owner');
select lives_ok($$ select pg_temp.submit() $$, 'With submissions_per_minute null the limit is off.');

-- as the owner: idempotent retries
select lives_ok($$ select pg_temp.submit(client_request_id => '00000000-0000-4000-8000-0000000000a1') $$,
  'A first submission with a client_request_id is accepted.');
select throws_ok($$ select pg_temp.submit(client_request_id => '00000000-0000-4000-8000-0000000000a1') $$,
  '23505', 'client_request_id: 00000000-0000-4000-8000-0000000000a1 was already submitted',
  'A retry with the same client_request_id is rejected with 23505, naming the key.');
select is(
  pg_temp.error_of($$ select pg_temp.submit(client_request_id => '00000000-0000-4000-8000-0000000000a1') $$) ->> 'detail',
  format('Assessment %s was created by the first request.',
         (select id from public.test_assessment where client_request_id = '00000000-0000-4000-8000-0000000000a1')),
  'The retry''s error names the assessment the first request created.');
select throws_ok(
  $$ select pg_temp.submit(pg_temp.answers(3), assessment_type => 'wellbeing', client_request_id => '00000000-0000-4000-8000-0000000000a1') $$,
  '23505', 'client_request_id: 00000000-0000-4000-8000-0000000000a1 was already submitted',
  'The key alone decides: a retry with a different body is rejected too.');
select is((select count(*) from public.test_assessment where client_request_id = '00000000-0000-4000-8000-0000000000a1'), 1::bigint,
  'Retries leave exactly one assessment for the key.');
select is(
  pg_temp.events_for_assessment((select id from public.test_assessment where client_request_id = '00000000-0000-4000-8000-0000000000a1')),
  1::bigint, 'Retries leave exactly one message for the key.');
select lives_ok($$ select pg_temp.submit(client_request_id => '00000000-0000-4000-8000-0000000000a2') $$,
  'A different key from the same user is accepted.');

-- as another user: the same key
select pg_temp.authenticate_as('other');
select lives_ok($$ select pg_temp.submit(client_request_id => '00000000-0000-4000-8000-0000000000a1') $$,
  'Another user may use the same client_request_id: keys are per user.');

-- as postgres: retries do not spend rate-limit tokens
select pg_temp.reset_role();
update private.settings set submissions_per_minute = 2;
select from pg_temp.create_user('retrier');
select pg_temp.authenticate_as('retrier');
select lives_ok($$ select pg_temp.submit(client_request_id => '00000000-0000-4000-8000-0000000000b1') $$,
  'A limited user''s first submission is accepted.');
select throws_ok($$ select pg_temp.submit(client_request_id => '00000000-0000-4000-8000-0000000000b1') $$,
  '23505', 'client_request_id: 00000000-0000-4000-8000-0000000000b1 was already submitted',
  'Its retry is rejected as a duplicate, not as a rate-limit hit.');
select lives_ok($$ select pg_temp.submit() $$,
  'The rejected retry spent no token: the 2nd real submission is still accepted.');

select * from finish();
rollback;
