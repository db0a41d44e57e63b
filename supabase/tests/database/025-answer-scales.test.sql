-- An answer's scale and unit (private.answer_scale_and_unit, called by private.validate_assessment):
-- every rule accepted at its boundary and rejected past it with SQLSTATE 22023 and the
-- "answers[i].scale...: <rule>" message; what is accepted is normalised; a rejected insert stores and
-- enqueues nothing.
begin;
\ir helpers.psql
select plan(41);

update private.settings set submissions_per_minute = null;
select from pg_temp.create_user('owner');

-- One answer (question_id q1) with `answer` and the given extra keys (scale, unit).
create function pg_temp.rated(answer jsonb, extra jsonb)
returns jsonb
language sql
as $$
  select jsonb_build_array(jsonb_build_object('question_id', 'q1', 'question', 'How stressed are you?', 'answer', answer)
                           || extra)
$$;

-- as the owner
select pg_temp.authenticate_as('owner');

-- accepted
select lives_ok($$ select pg_temp.submit(pg_temp.rated('4', '{"scale": {"min": 1, "max": 5, "higher_is_better": false}}')) $$,
  'A rating with a lower-is-better scale is accepted.');
select lives_ok($$ select pg_temp.submit(pg_temp.rated('1', '{"scale": {"min": 1, "max": 5, "higher_is_better": true}}')) $$,
  'An answer at scale.min is accepted.');
select lives_ok($$ select pg_temp.submit(pg_temp.rated('10', '{"scale": {"min": 0, "max": 10, "higher_is_better": true}}')) $$,
  'An answer at scale.max is accepted.');
select lives_ok($$ select pg_temp.submit(pg_temp.rated('-0.5', '{"scale": {"min": -1.5, "max": 1.5, "higher_is_better": true}}')) $$,
  'Decimal and negative bounds are accepted.');
select lives_ok($$ select pg_temp.submit(pg_temp.rated('6', '{"unit": "hours/night"}')) $$,
  'A quantity with a unit is accepted.');
select lives_ok($$ select pg_temp.submit(pg_temp.rated('6', jsonb_build_object('unit', repeat('u', 40)))) $$,
  'A 40-character unit is accepted.');
select lives_ok($$ select pg_temp.submit(pg_temp.rated('30', '{"unit": "minutes", "scale": {"min": 0, "max": 60, "higher_is_better": true}}')) $$,
  'A rating may carry a unit too.');

-- scale: shape
select throws_ok($$ select pg_temp.submit(pg_temp.rated('4', '{"scale": "1-5"}')) $$,
  '22023', 'answers[0].scale: must be an object', 'A scale given as text is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.rated('4', '{"scale": null}')) $$,
  '22023', 'answers[0].scale: must be an object', 'A null scale is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.rated('4', '{"scale": [1, 5]}')) $$,
  '22023', 'answers[0].scale: must be an object', 'A scale given as a list is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.rated('4', '{"scale": {"min": 1, "max": 5, "higher_is_better": true, "step": 1}}')) $$,
  '22023', 'answers[0].scale: has unknown keys', 'A scale with an unknown key is rejected.');
select is(pg_temp.error_of($$ select pg_temp.submit(pg_temp.rated('4', '{"scale": {"min": 1, "max": 5, "higher_is_better": true, "step": 1}}')) $$) ->> 'detail',
  'Got keys higher_is_better, max, min, step.', 'The unknown-key error lists the keys it got.');

-- scale: each key
select throws_ok($$ select pg_temp.submit(pg_temp.rated('4', '{"scale": {"max": 5, "higher_is_better": true}}')) $$,
  '22023', 'answers[0].scale.min: is required and must be a number', 'A scale without min is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.rated('4', '{"scale": {"min": "1", "max": 5, "higher_is_better": true}}')) $$,
  '22023', 'answers[0].scale.min: is required and must be a number', 'A min given as text is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.rated('4', '{"scale": {"min": 1, "higher_is_better": true}}')) $$,
  '22023', 'answers[0].scale.max: is required and must be a number', 'A scale without max is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.rated('4', '{"scale": {"min": 1, "max": null, "higher_is_better": true}}')) $$,
  '22023', 'answers[0].scale.max: is required and must be a number', 'A null max is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.rated('4', '{"scale": {"min": -1000000001, "max": 5, "higher_is_better": true}}')) $$,
  '22023', 'answers[0].scale.min: is out of range', 'A min below -1e9 is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.rated('4', '{"scale": {"min": 1, "max": 1e10, "higher_is_better": true}}')) $$,
  '22023', 'answers[0].scale.max: is out of range', 'A max above 1e9 is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.rated('4', '{"scale": {"min": 1, "max": 5}}')) $$,
  '22023', 'answers[0].scale.higher_is_better: is required and must be true or false', 'A scale without a direction is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.rated('4', '{"scale": {"min": 1, "max": 5, "higher_is_better": "yes"}}')) $$,
  '22023', 'answers[0].scale.higher_is_better: is required and must be true or false', 'A direction given as text is rejected.');

-- scale: coherence with itself and with the answer
select throws_ok($$ select pg_temp.submit(pg_temp.rated('4', '{"scale": {"min": 5, "max": 1, "higher_is_better": false}}')) $$,
  '22023', 'answers[0].scale.min: must be less than scale.max', 'A scale whose min is above its max is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.rated('3', '{"scale": {"min": 3, "max": 3, "higher_is_better": true}}')) $$,
  '22023', 'answers[0].scale.min: must be less than scale.max', 'A scale of one point is rejected.');
select is(pg_temp.error_of($$ select pg_temp.submit(pg_temp.rated('4', '{"scale": {"min": 5, "max": 1, "higher_is_better": false}}')) $$),
  '{"code": "22023", "message": "answers[0].scale.min: must be less than scale.max", "detail": "Got min 5 and max 1.", "hint": "Send the lowest possible answer as min and the highest as max; higher_is_better gives the direction."}',
  'The error shows the bounds it got and says how to fix them.');
select throws_ok($$ select pg_temp.submit(pg_temp.rated('6', '{"scale": {"min": 1, "max": 5, "higher_is_better": true}}')) $$,
  '22023', 'answers[0].answer: is outside its scale', 'An answer above scale.max is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.rated('0.99', '{"scale": {"min": 1, "max": 5, "higher_is_better": true}}')) $$,
  '22023', 'answers[0].answer: is outside its scale', 'An answer below scale.min is rejected.');
select is(pg_temp.error_of($$ select pg_temp.submit(pg_temp.rated('6', '{"scale": {"min": 1, "max": 5, "higher_is_better": true}}')) $$) ->> 'detail',
  'Got 6; the scale is 1 to 5.', 'The outside-the-scale error shows the answer and the scale.');
select throws_ok($$ select pg_temp.submit(pg_temp.rated('"often"', '{"scale": {"min": 1, "max": 5, "higher_is_better": true}}')) $$,
  '22023', 'answers[0].scale: is only allowed on a number answer', 'A scale on a text answer is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.rated('true', '{"scale": {"min": 0, "max": 1, "higher_is_better": true}}')) $$,
  '22023', 'answers[0].scale: is only allowed on a number answer', 'A scale on a boolean answer is rejected.');

-- unit
select throws_ok($$ select pg_temp.submit(pg_temp.rated('6', '{"unit": "  "}')) $$,
  '22023', 'answers[0].unit: must be text of 1-40 characters', 'A blank unit is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.rated('6', jsonb_build_object('unit', repeat('u', 41)))) $$,
  '22023', 'answers[0].unit: must be text of 1-40 characters', 'A 41-character unit is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.rated('6', '{"unit": 7}')) $$,
  '22023', 'answers[0].unit: must be text of 1-40 characters', 'A unit that is not text is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.rated('["a"]', '{"unit": "items"}')) $$,
  '22023', 'answers[0].unit: is only allowed on a number answer', 'A unit on a list answer is rejected.');

-- the error names the answer's index
select throws_ok(
  $$ select pg_temp.submit(pg_temp.answers(2) || jsonb_set(
       pg_temp.rated('9', '{"scale": {"min": 1, "max": 5, "higher_is_better": true}}'), '{0,question_id}', '"q3"')) $$,
  '22023', 'answers[2].answer: is outside its scale', 'The error names the index of the answer at fault.');

-- normalisation
select pg_temp.submit(pg_temp.rated('4', '{"unit": "  hours/night ", "scale": {"higher_is_better": false, "max": 5.0, "min": 1}}')) as scaled_id \gset
select is((select answers from public.test_assessment where id = :'scaled_id'),
  '[{"question_id": "q1", "question": "How stressed are you?", "answer": 4,
     "scale": {"min": 1, "max": 5.0, "higher_is_better": false}, "unit": "hours/night"}]'::jsonb,
  'The scale keeps its three keys and the unit is trimmed.');
select pg_temp.submit(pg_temp.rated('6', '{}')) as plain_id \gset
select is((select answers -> 0 from public.test_assessment where id = :'plain_id'),
  '{"question_id": "q1", "question": "How stressed are you?", "answer": 6}'::jsonb,
  'An answer without scale or unit gains neither.');

-- nothing rejected was stored or enqueued
select is((select count(*) from public.test_assessment), 9::bigint,
  'Only the nine accepted assessments were stored.');
select is(pg_temp.events_for_user(pg_temp.user_id('owner')), 9::bigint,
  'Exactly one event per accepted insert and none for the rejected ones.');

-- as postgres (a data fix in the SQL editor): an update is validated too
select pg_temp.reset_role();
select throws_ok(
  $$ update public.test_assessment set answers = pg_temp.rated('9', '{"scale": {"min": 1, "max": 5, "higher_is_better": true}}')
     where user_id = pg_temp.user_id('owner') $$,
  '22023', 'answers[0].answer: is outside its scale', 'Updating answers re-validates their scales, even for postgres.');
select is((select answers -> 0 -> 'answer' from public.test_assessment where id = :'scaled_id'), '4'::jsonb,
  'The refused update changed nothing.');

-- the helper is not callable through the API
select ok(not has_function_privilege('authenticated', 'private.answer_scale_and_unit(text, jsonb)', 'execute'),
  'authenticated cannot execute private.answer_scale_and_unit.');
select ok(not has_function_privilege('anon', 'private.answer_scale_and_unit(text, jsonb)', 'execute'),
  'anon cannot execute private.answer_scale_and_unit.');

select * from finish();
rollback;
