-- Validation of submitted assessments (private.validate_assessment): every rule accepted at its
-- boundary and rejected just past it, with SQLSTATE 22023 and the "<field>: <rule>" message; what is
-- accepted is normalised; a rejected insert enqueues nothing.
begin;
\ir helpers.psql
select plan(70);

-- Many accepted inserts below: the rate limit is tested in its own file.
update private.settings set submissions_per_minute = null;
select from pg_temp.create_user('owner');

-- as the owner
select pg_temp.authenticate_as('owner');

-- assessment_type
select throws_ok($$ select pg_temp.submit(assessment_type => null) $$,
  '22023', 'assessment_type: is required', 'A missing assessment_type is rejected.');
select throws_ok($$ select pg_temp.submit(assessment_type => 'x') $$,
  '22023', 'assessment_type: must be a slug of 2-64 characters', 'A one-character assessment_type is rejected.');
select throws_ok($$ select pg_temp.submit(assessment_type => '1career') $$,
  '22023', 'assessment_type: must be a slug of 2-64 characters', 'An assessment_type starting with a digit is rejected.');
select throws_ok($$ select pg_temp.submit(assessment_type => 'career-path') $$,
  '22023', 'assessment_type: must be a slug of 2-64 characters', 'An assessment_type with a hyphen is rejected.');
select throws_ok($$ select pg_temp.submit(assessment_type => 'a' || repeat('b', 64)) $$,
  '22023', 'assessment_type: must be a slug of 2-64 characters', 'A 65-character assessment_type is rejected.');
select lives_ok($$ select pg_temp.submit(assessment_type => 'a' || repeat('b', 63)) $$,
  'A 64-character assessment_type is accepted.');
select pg_temp.submit(assessment_type => '  Career_2 ') as type_id \gset
select is((select assessment_type from public.test_assessment where id = :'type_id'),
  'career_2', 'assessment_type is trimmed and lowercased.');

-- answers: shape and size
select throws_ok($$ insert into public.test_assessment (assessment_type) values ('career') $$,
  '22023', 'answers: must be a JSON array of answers', 'Missing answers are rejected.');
select throws_ok($$ select pg_temp.submit('{"q1": "yes"}') $$,
  '22023', 'answers: must be a JSON array of answers', 'answers as an object is rejected.');
select throws_ok($$ select pg_temp.submit('"yes"') $$,
  '22023', 'answers: must be a JSON array of answers', 'answers as text is rejected.');
select throws_ok($$ select pg_temp.submit('[]') $$,
  '22023', 'answers: must hold 1 to 100 answers', 'An empty answers array is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.answers(101)) $$,
  '22023', 'answers: must hold 1 to 100 answers', '101 answers are rejected.');
select lives_ok($$ select pg_temp.submit(pg_temp.answers(100)) $$, '100 answers are accepted.');
select throws_ok(
  $$ select pg_temp.submit((select jsonb_agg(jsonb_build_object('question_id', 'q' || i, 'question', 'Q?', 'answer', repeat('a', 1900)))
                            from generate_series(1, 40) as i)) $$,
  '22023', 'answers: are larger than 65536 bytes in all', 'Answers larger than 64 KiB in all are rejected.');

-- answers: each item
select throws_ok($$ select pg_temp.submit('[1]') $$,
  '22023', 'answers[0]: must be an object', 'An answer that is not an object is rejected.');
select throws_ok($$ select pg_temp.submit('[{"question_id": "q1", "question": "Q?", "answer": "a", "score": 1}]') $$,
  '22023', 'answers[0]: has unknown keys', 'An answer with an unknown key is rejected.');
select is(pg_temp.error_of($$ select pg_temp.submit('[{"question_id": "q1", "question": "Q?", "answer": "a", "score": 1}]') $$) ->> 'detail',
  'Got keys answer, question, question_id, score.', 'The unknown-key error lists the keys it got.');
select throws_ok($$ select pg_temp.submit(pg_temp.answers(1) || '[{"question": "Q?", "answer": "a"}]') $$,
  '22023', 'answers[1].question_id: is required and must be text', 'A missing question_id is rejected, naming the answer''s index.');
select throws_ok($$ select pg_temp.submit('[{"question_id": 7, "question": "Q?", "answer": "a"}]') $$,
  '22023', 'answers[0].question_id: is required and must be text', 'A numeric question_id is rejected.');
select throws_ok($$ select pg_temp.submit('[{"question_id": "bad id", "question": "Q?", "answer": "a"}]') $$,
  '22023', 'answers[0].question_id: must be 1-64 characters: letters, digits, _ . : -', 'A question_id with a space is rejected.');
select throws_ok($$ select pg_temp.submit(jsonb_build_array(jsonb_build_object('question_id', repeat('q', 65), 'question', 'Q?', 'answer', 'a'))) $$,
  '22023', 'answers[0].question_id: must be 1-64 characters: letters, digits, _ . : -', 'A 65-character question_id is rejected.');
select lives_ok($$ select pg_temp.submit(jsonb_build_array(jsonb_build_object('question_id', 'sleep.hours:v2-a_' || repeat('b', 47), 'question', 'Q?', 'answer', 'a'))) $$,
  'A 64-character question_id using _ . : - is accepted.');
select throws_ok($$ select pg_temp.submit('[{"question_id": "q1", "question": "A?", "answer": "a"}, {"question_id": "q1", "question": "B?", "answer": "b"}]') $$,
  '22023', 'answers[1].question_id: repeats an earlier question_id', 'A duplicate question_id is rejected.');
select throws_ok($$ select pg_temp.submit('[{"question_id": "q1", "answer": "a"}]') $$,
  '22023', 'answers[0].question: is required and must be non-empty text', 'A missing question is rejected.');
select throws_ok($$ select pg_temp.submit('[{"question_id": "q1", "question": "   ", "answer": "a"}]') $$,
  '22023', 'answers[0].question: is required and must be non-empty text', 'A blank question is rejected.');
select throws_ok($$ select pg_temp.submit(jsonb_build_array(jsonb_build_object('question_id', 'q1', 'question', repeat('q', 501), 'answer', 'a'))) $$,
  '22023', 'answers[0].question: is longer than 500 characters', 'A 501-character question is rejected.');
select lives_ok($$ select pg_temp.submit(jsonb_build_array(jsonb_build_object('question_id', 'q1', 'question', repeat('q', 500), 'answer', 'a'))) $$,
  'A 500-character question is accepted.');

-- answers: the answer value
select throws_ok($$ select pg_temp.submit(pg_temp.answer('"   "')) $$,
  '22023', 'answers[0].answer: is empty', 'A blank text answer is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.answer(to_jsonb(repeat('a', 2001)))) $$,
  '22023', 'answers[0].answer: text is longer than 2000 characters', 'A 2001-character text answer is rejected.');
select is(pg_temp.error_of($$ select pg_temp.submit(pg_temp.answer(to_jsonb(repeat('a', 2001)))) $$),
  '{"code": "22023", "message": "answers[0].answer: text is longer than 2000 characters", "detail": "Got 2001 characters.", "hint": "Shorten the answer."}',
  'The error carries a detail with the offending size and a hint saying what to do.');
select lives_ok($$ select pg_temp.submit(pg_temp.answer(to_jsonb(repeat('a', 2000)))) $$, 'A 2000-character text answer is accepted.');
select throws_ok($$ select pg_temp.submit(pg_temp.answer('1000000001')) $$,
  '22023', 'answers[0].answer: number is out of range', 'A number above 1e9 is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.answer('-1000000001')) $$,
  '22023', 'answers[0].answer: number is out of range', 'A number below -1e9 is rejected.');
select lives_ok($$ select pg_temp.submit(pg_temp.answer('-1000000000')) $$, 'A number of -1e9 is accepted.');
select lives_ok($$ select pg_temp.submit(pg_temp.answer('3.5')) $$, 'A decimal number is accepted.');
select lives_ok($$ select pg_temp.submit(pg_temp.answer('false')) $$, 'A boolean answer is accepted.');
select throws_ok($$ select pg_temp.submit(pg_temp.answer('[]')) $$,
  '22023', 'answers[0].answer: list must hold 1 to 20 items', 'An empty list answer is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.answer((select jsonb_agg('option ' || i) from generate_series(1, 21) as i))) $$,
  '22023', 'answers[0].answer: list must hold 1 to 20 items', 'A list answer of 21 items is rejected.');
select lives_ok($$ select pg_temp.submit(pg_temp.answer((select jsonb_agg('option ' || i) from generate_series(1, 20) as i))) $$,
  'A list answer of 20 items is accepted.');
select throws_ok($$ select pg_temp.submit(pg_temp.answer('["ok", 3]')) $$,
  '22023', 'answers[0].answer[1]: must be non-empty text of at most 200 characters', 'A list item that is not text is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.answer('["ok", " "]')) $$,
  '22023', 'answers[0].answer[1]: must be non-empty text of at most 200 characters', 'A blank list item is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.answer(jsonb_build_array(repeat('x', 201)))) $$,
  '22023', 'answers[0].answer[0]: must be non-empty text of at most 200 characters', 'A 201-character list item is rejected.');
select lives_ok($$ select pg_temp.submit(pg_temp.answer(jsonb_build_array(repeat('x', 200)))) $$,
  'A 200-character list item is accepted.');
select throws_ok($$ select pg_temp.submit(pg_temp.answer('null')) $$,
  '22023', 'answers[0].answer: must be text, a number, a boolean or a list of text', 'A null answer is rejected.');
select throws_ok($$ select pg_temp.submit('[{"question_id": "q1", "question": "Q?"}]') $$,
  '22023', 'answers[0].answer: must be text, a number, a boolean or a list of text', 'A missing answer is rejected.');
select throws_ok($$ select pg_temp.submit(pg_temp.answer('{"level": 3}')) $$,
  '22023', 'answers[0].answer: must be text, a number, a boolean or a list of text', 'An object answer is rejected.');

-- context
select lives_ok($$ select pg_temp.submit(context => null) $$, 'A missing context is accepted.');
select throws_ok($$ select pg_temp.submit(context => '["en"]') $$,
  '22023', 'context: must be an object or null', 'A context that is not an object is rejected.');
select throws_ok($$ select pg_temp.submit(context => '{"locale": "en", "mood": "good"}') $$,
  '22023', 'context: has unknown keys', 'A context with an unknown key is rejected.');
select throws_ok($$ select pg_temp.submit(context => '{"goals": "get promoted"}') $$,
  '22023', 'context.goals: must be a list of at most 10 goals', 'goals as text is rejected.');
select throws_ok($$ select pg_temp.submit(context => jsonb_build_object('goals', (select jsonb_agg('goal ' || i) from generate_series(1, 11) as i))) $$,
  '22023', 'context.goals: must be a list of at most 10 goals', '11 goals are rejected.');
select lives_ok($$ select pg_temp.submit(context => jsonb_build_object('goals', (select jsonb_agg('goal ' || i) from generate_series(1, 10) as i))) $$,
  '10 goals are accepted.');
select throws_ok($$ select pg_temp.submit(context => '{"goals": ["ok", ""]}') $$,
  '22023', 'context.goals[1]: must be non-empty text of at most 200 characters', 'An empty goal is rejected.');
select throws_ok($$ select pg_temp.submit(context => '{"goals": [1]}') $$,
  '22023', 'context.goals[0]: must be non-empty text of at most 200 characters', 'A goal that is not text is rejected.');
select throws_ok($$ select pg_temp.submit(context => jsonb_build_object('goals', jsonb_build_array(repeat('g', 201)))) $$,
  '22023', 'context.goals[0]: must be non-empty text of at most 200 characters', 'A 201-character goal is rejected.');
select throws_ok($$ select pg_temp.submit(context => '{"locale": "english"}') $$,
  '22023', 'context.locale: must be a BCP 47 language tag', 'A language name as locale is rejected.');
select throws_ok($$ select pg_temp.submit(context => '{"locale": "en_US"}') $$,
  '22023', 'context.locale: must be a BCP 47 language tag', 'A POSIX-style locale is rejected.');
select throws_ok($$ select pg_temp.submit(context => '{"locale": 42}') $$,
  '22023', 'context.locale: must be a BCP 47 language tag', 'A numeric locale is rejected.');
select throws_ok($$ select pg_temp.submit(context => '{"locale": null}') $$,
  '22023', 'context.locale: must be a BCP 47 language tag', 'A null locale is rejected.');
select lives_ok($$ select pg_temp.submit(context => '{"locale": "pt-BR"}') $$, 'Locale pt-BR is accepted.');
select lives_ok($$ select pg_temp.submit(context => '{"locale": "zh-Hant-TW"}') $$, 'Locale zh-Hant-TW is accepted.');
select throws_ok($$ select pg_temp.submit(context => jsonb_build_object('notes', repeat('n', 1001))) $$,
  '22023', 'context.notes: must be text of at most 1000 characters', '1001 characters of notes are rejected.');
select throws_ok($$ select pg_temp.submit(context => '{"notes": 5}') $$,
  '22023', 'context.notes: must be text of at most 1000 characters', 'Notes that are not text are rejected.');
select lives_ok($$ select pg_temp.submit(context => jsonb_build_object('notes', repeat('n', 1000))) $$,
  '1000 characters of notes are accepted.');

-- normalisation of what is accepted
select pg_temp.submit(
  '[{"question_id": "q1", "question": "  Which skills?  ", "answer": ["  SQL ", "Python"]},
    {"question_id": "q2", "question": "Why?", "answer": "  growth  "},
    {"question_id": "q3", "question": "Level?", "answer": 4},
    {"question_id": "q4", "answer": true, "question": "Remote?"}]') as answers_id \gset
select pg_temp.submit(context => '{"goals": ["  lead a team "], "locale": "en", "notes": "  part-time  "}') as context_id \gset
select is(
  (select answers from public.test_assessment where id = :'answers_id'),
  '[{"question_id": "q1", "question": "Which skills?", "answer": ["SQL", "Python"]},
    {"question_id": "q2", "question": "Why?", "answer": "growth"},
    {"question_id": "q3", "question": "Level?", "answer": 4},
    {"question_id": "q4", "question": "Remote?", "answer": true}]'::jsonb,
  'Questions, text answers and list items are trimmed; numbers and booleans are kept.');
select is(
  (select context from public.test_assessment where id = :'context_id'),
  '{"goals": ["lead a team"], "locale": "en", "notes": "part-time"}'::jsonb,
  'Goals and notes are trimmed.');

-- every accepted insert enqueued exactly one event, every rejected one none
select is(pg_temp.events_for_user(pg_temp.user_id('owner')), 18::bigint,
  'Exactly one event per accepted insert (18) and none for the rejected ones.');
select is(pg_temp.events_for_user(pg_temp.user_id('owner')), (select count(*) from public.test_assessment),
  'The owner has as many events as assessments.');

-- as postgres (a data fix in the SQL editor): updates of content are validated too
select pg_temp.reset_role();
select throws_ok(
  $$ update public.test_assessment set answers = '[]' where user_id = pg_temp.user_id('owner') $$,
  '22023', 'answers: must hold 1 to 100 answers', 'Updating answers re-validates them, even for postgres.');
select throws_ok(
  $$ update public.test_assessment set context = '{"locale": "?"}' where user_id = pg_temp.user_id('owner') $$,
  '22023', 'context.locale: must be a BCP 47 language tag', 'Updating context re-validates it.');

select * from finish();
rollback;
