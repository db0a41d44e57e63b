-- What an adversarial review broke, performed again: identity from the JWT's role claim, results that
-- belong to someone else or have the wrong shape, oversized bodies, and errors that name constraints.
begin;
\ir helpers.psql
select plan(16);

select from pg_temp.create_user('attacker');
select from pg_temp.create_user('victim');
update private.settings set submissions_per_minute = 10;

-- as the victim: one submission with an idempotency key, which fills their quota bucket
select pg_temp.authenticate_as('victim');
select lives_ok($$ select pg_temp.submit(client_request_id => '00000000-0000-4000-8000-00000000b001') $$,
  'The victim submits with a client_request_id.');
select pg_temp.reset_role();
create temporary table victim_quota as
  select tokens, refilled_at from private.submission_quota where user_id = pg_temp.user_id('victim');
grant select on victim_quota to public;

-- as the attacker, with the database role authenticated but JWT role claims that are missing or lie
create function pg_temp.attack_with_claims(claims jsonb)
returns jsonb
language plpgsql
as $$
begin
  perform set_config('request.jwt.claims', claims::text, true);
  perform set_config('role', 'authenticated', true);
  return pg_temp.error_of(format(
    $sql$ insert into public.test_assessment (user_id, assessment_type, answers, client_request_id)
          values (%L, 'career', pg_temp.answers(1), '00000000-0000-4000-8000-00000000b001') $sql$,
    pg_temp.user_id('victim')));
end;
$$;
select is(pg_temp.attack_with_claims(jsonb_build_object('sub', pg_temp.user_id('attacker'))) ->> 'code', '42501',
  'Without a role claim, inserting the victim''s id and key is refused by RLS, not answered by the guard.');
select pg_temp.reset_role();
select is(pg_temp.attack_with_claims(jsonb_build_object('sub', pg_temp.user_id('attacker'), 'role', 'service_role')) ->> 'detail',
  null, 'Claiming the service role in the JWT reveals no assessment id (no 23505 detail).');
select pg_temp.reset_role();
select is(pg_temp.attack_with_claims(jsonb_build_object('sub', pg_temp.user_id('attacker'), 'role', 'service_role')) ->> 'code',
  '42501', 'Claiming the service role in the JWT does not make the database role trusted.');
select pg_temp.reset_role();
select is((select tokens from private.submission_quota where user_id = pg_temp.user_id('victim')),
  (select tokens from victim_quota), 'The victim''s quota tokens are untouched by the attempts.');
select is((select refilled_at from private.submission_quota where user_id = pg_temp.user_id('victim')),
  (select refilled_at from victim_quota), 'The victim''s quota bucket was not even written.');

-- as the service role: errors name fields, not constraints or other tables
select pg_temp.become_service_role();
select throws_ok(
  $$ insert into public.test_assessment (assessment_type, answers) values ('career', pg_temp.answers(1)) $$,
  '23502', 'user_id: is required', 'The service role without user_id gets an error about user_id.');
select throws_ok(
  $$ insert into public.test_assessment (user_id, assessment_type, answers)
     values ('00000000-0000-4000-8000-00000000dead', 'career', pg_temp.answers(1)) $$,
  '23503', 'user_id: no such user', 'An unknown user gets an error about user_id, not a foreign key''s name.');

-- oversized bodies are refused before validation reads them
select pg_temp.authenticate_as('attacker');
select throws_ok(
  $$ select pg_temp.submit(answers => jsonb_build_array(jsonb_build_object(
       'question_id', 'q1', 'question', 'Q?', 'answer', repeat('x', 300000)))) $$,
  '22023', 'answers: are larger than 65536 bytes in all', 'A 300 kB answers array is refused by its size.');
select throws_ok(
  $$ select pg_temp.submit(context => jsonb_build_object('notes', repeat('x', 70000))) $$,
  '22023', 'context: is larger than 65536 bytes', 'A 70 kB context is refused by its size.');
select throws_ok(
  $$ select pg_temp.submit(assessment_type => repeat('x', 5000)) $$,
  '22023', 'assessment_type: must be a slug of 2-64 characters', 'A 5 kB assessment_type is refused by its size.');

-- as the worker: a result belongs to its assessment's owner and has the documented shape
select pg_temp.reset_role();
grant usage on schema extensions to assessment_worker;  -- for pgTAP only; rolled back with the test
select pg_temp.authenticate_as('victim');
select pg_temp.submit() as victims_assessment \gset
select pg_temp.become_worker();
select throws_ok(
  format($$ insert into public.result_test (assessment_id, user_id, summary, recommendations, source, model,
                                            prompt_version, latency_ms)
            values (%L, %L, 'A result for the wrong user.',
                    '[{"title": "Plan", "description": "Write a plan.", "category": "career", "priority": 1,
                       "rationale": "It helps you start."}]', 'ai', 'm', 'v1', 1) $$,
         :'victims_assessment', pg_temp.user_id('attacker')),
  '23503', null, 'A result naming another user than the assessment''s owner is refused.');
select throws_ok(
  format($$ insert into public.result_test (assessment_id, user_id, summary, recommendations, source, model,
                                            prompt_version, latency_ms)
            values (%L, %L, 'A result with a script.', '[{"title": "Plan", "description": "Write a plan.",
                    "category": "career", "priority": 1, "rationale": "It helps you start.", "html": "<script>"}]',
                    'ai', 'm', 'v1', 1) $$, :'victims_assessment', pg_temp.user_id('victim')),
  '23514', null, 'A recommendation with a field clients do not know is refused.');
select throws_ok(
  format($$ insert into public.result_test (assessment_id, user_id, summary, recommendations, source, model,
                                            prompt_version, latency_ms)
            values (%L, %L, 'A result with priority 9.', '[{"title": "Plan", "description": "Write a plan.",
                    "category": "career", "priority": 9, "rationale": "It helps you start."}]',
                    'ai', 'm', 'v1', 1) $$, :'victims_assessment', pg_temp.user_id('victim')),
  '23514', null, 'A recommendation outside priority 1-5 is refused.');
select throws_ok(
  format($$ insert into public.result_test (assessment_id, user_id, summary, recommendations, source, model,
                                            prompt_version, latency_ms)
            values (%L, %L, 'A result from a long model name.', '[{"title": "Plan", "description": "Write a plan.",
                    "category": "career", "priority": 1, "rationale": "It helps you start."}]',
                    'ai', repeat('m', 201), 'v1', 1) $$, :'victims_assessment', pg_temp.user_id('victim')),
  '23514', null, 'A model name over 200 characters is refused.');
select lives_ok(
  format($$ insert into public.result_test (assessment_id, user_id, summary, recommendations, source, model,
                                            prompt_version, latency_ms)
            values (%L, %L, 'A proper result.', '[{"title": "Plan", "description": "Write a plan.",
                    "category": "career", "priority": 1, "rationale": "It helps you start."}]',
                    'ai', 'm', 'v1', 1) $$, :'victims_assessment', pg_temp.user_id('victim')),
  'A result of the right owner and shape is accepted.');

select * from finish();
rollback;
