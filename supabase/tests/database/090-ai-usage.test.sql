-- AI usage and admission (20261208140000_admit_ai_calls.sql), per actor: a user reads only their own
-- usage and can neither change it nor reach the admission; the worker changes usage only through the
-- admission functions; the policy and comments a frontend relies on exist.
begin;
\ir helpers.psql
select plan(17);

select from pg_temp.create_user('owner');
select from pg_temp.create_user('other');
insert into public.ai_usage (user_id, day, tokens, token_limit)
values (pg_temp.user_id('owner'), (now() at time zone 'UTC')::date, 1200, 50000),
       (pg_temp.user_id('other'), (now() at time zone 'UTC')::date, 300, 50000);

-- as the owner
select pg_temp.authenticate_as('owner');
select results_eq(
  $$ select user_id, tokens, token_limit from public.ai_usage $$,
  $$ values (pg_temp.user_id('owner'), 1200::bigint, 50000::bigint) $$,
  'The owner reads exactly their own usage of today and its limit.');
select throws_ok(
  $$ update public.ai_usage set tokens = 0 $$,
  '42501', 'permission denied for table ai_usage',
  'The owner cannot reset their usage.');
select throws_ok(
  $$ insert into public.ai_usage (user_id, day) values (pg_temp.user_id('owner'), '2000-01-01') $$,
  '42501', 'permission denied for table ai_usage',
  'The owner cannot write usage rows.');
select throws_ok(
  $$ delete from public.ai_usage $$,
  '42501', 'permission denied for table ai_usage',
  'The owner cannot delete their usage.');
select throws_ok(
  $$ select * from private.admit_ai_call(1, 1, null, 1, 0, 1, null, null, null, null, 3600) $$,
  '42501', 'permission denied for schema private',
  'The owner cannot pause every worker by reporting a provider pause.');
select throws_ok(
  $$ select private.settle_ai_call(1, 1, 0, 0, 0, null, null, null, null) $$,
  '42501', 'permission denied for schema private',
  'The owner cannot settle (release) a reservation.');

-- as another user
select pg_temp.authenticate_as('other');
select is((select count(*) from public.ai_usage where user_id = pg_temp.user_id('owner')), 0::bigint,
  'Another user sees none of the owner''s usage.');

-- as anon
select pg_temp.become_anon();
select throws_ok(
  $$ select * from public.ai_usage $$,
  '42501', 'permission denied for table ai_usage',
  'Anon cannot read usage.');

-- as service_role
select pg_temp.become_service_role();
select ok((select count(*) from public.ai_usage where user_id in (pg_temp.user_id('owner'), pg_temp.user_id('other'))) = 2,
  'The service role reads every user''s usage.');
select throws_ok(
  $$ update public.ai_usage set tokens = 0 $$,
  '42501', 'permission denied for table ai_usage',
  'The service role cannot change usage.');

-- as the worker
select pg_temp.reset_role();
grant usage on schema extensions to assessment_worker;  -- for pgTAP only; rolled back with the test
select pg_temp.become_worker();
select throws_ok(
  $$ update public.ai_usage set tokens = 0 $$,
  '42501', 'permission denied for table ai_usage',
  'The worker cannot write usage except through settle_ai_call.');
select throws_ok(
  $$ update private.ai_limiter set paused_until = null $$,
  '42501', 'permission denied for table ai_limiter',
  'The worker cannot touch the limiter except through admit_ai_call and settle_ai_call.');
select is((select decision from private.admit_ai_call(-1, 1, null, 1, 0, 1, null, null, null, null, null)), 'lease_lost',
  'The worker may ask for admission; without a lease on the message nothing is admitted.');
select ok((select cost_usd >= 0 from private.ai_usage_today()), 'The worker reads the project''s spend of today.');

-- as postgres (the catalog)
select pg_temp.reset_role();
select policies_are('public', 'ai_usage', array['Users can read their own AI usage'],
  'public.ai_usage has exactly one policy: owners read their own rows.');
select is((select count(*)::int from pg_description d join pg_attribute a
           on a.attrelid = d.objoid and a.attnum = d.objsubid
           where d.objoid = 'public.ai_usage'::regclass and d.description <> ''), 5,
  'Every column of public.ai_usage has a comment for frontend developers.');
select isnt(obj_description('public.ai_usage'::regclass), null, 'public.ai_usage has a comment.');

select * from finish();
rollback;
