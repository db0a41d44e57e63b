-- result_test.recommendations items may carry based_on (private.recommendations_are_valid): a list of
-- question_id-shaped ids; results without it (written before it existed) stay valid.
begin;
\ir helpers.psql
select plan(7);

select from pg_temp.create_user('owner');
select pg_temp.authenticate_as('owner');
select pg_temp.submit() as assessment_id \gset

-- as the worker
select pg_temp.reset_role();
grant usage on schema extensions to assessment_worker;  -- for pgTAP only; rolled back with the test
select pg_temp.become_worker();

-- Stores the owner's result with `rec` as its only recommendation (results without based_on, written before
-- it existed, are accepted in 070-hardening.test.sql).
create function pg_temp.store(rec jsonb)
returns void
language sql
as $$
  insert into public.result_test (assessment_id, user_id, summary, recommendations, source, model, prompt_version,
                                  latency_ms)
  select a.id, a.user_id, 'A result.', jsonb_build_array(rec), 'ai', 'm', 'v2', 1
  from public.test_assessment a where a.user_id = pg_temp.user_id('owner')
$$;
create function pg_temp.rec(extra jsonb default '{}')
returns jsonb
language sql
as $$
  select '{"title": "Plan", "description": "Write a plan.", "category": "career", "priority": 1,
           "rationale": "It helps you start."}'::jsonb || extra
$$;

select throws_ok($$ select pg_temp.store(pg_temp.rec('{"based_on": "q1"}')) $$,
  '23514', null, 'based_on that is not a list is refused.');
select throws_ok($$ select pg_temp.store(pg_temp.rec('{"based_on": ["q1", 2]}')) $$,
  '23514', null, 'A based_on id that is not text is refused.');
select throws_ok($$ select pg_temp.store(pg_temp.rec('{"based_on": ["<script>"]}')) $$,
  '23514', null, 'A based_on id that is not shaped like a question_id is refused.');
select throws_ok($$ select pg_temp.store(pg_temp.rec(jsonb_build_object('based_on',
                      (select jsonb_agg('q' || i) from generate_series(1, 102) as i)))) $$,
  '23514', null, 'More than 101 based_on ids are refused.');
select throws_ok($$ select pg_temp.store(pg_temp.rec('{"based_on": ["q1"], "html": "<b>"}')) $$,
  '23514', null, 'based_on does not open the door to other unknown fields.');
select lives_ok($$ select pg_temp.store(pg_temp.rec('{"based_on": ["q1", "goals", "sleep.hours:v2-a_b"]}')) $$,
  'A recommendation citing question_ids and goals is accepted.');
select is((select recommendations -> 0 -> 'based_on' from public.result_test
           where assessment_id = :'assessment_id'), '["q1", "goals", "sleep.hours:v2-a_b"]'::jsonb,
  'based_on is stored as sent.');

select * from finish();
rollback;
