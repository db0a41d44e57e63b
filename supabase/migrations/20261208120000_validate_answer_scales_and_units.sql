-- Purpose: an answer may say what its number means. `scale` ({"min", "max", "higher_is_better"}) makes a
-- number a rating with a direction; `unit` (short text such as "hours/night") says what a quantity counts.
-- A number without a scale is a quantity, never a rating. Both are validated here like every other field
-- (22023, "answers[i].scale.min: ...", with a hint) and normalised (unit trimmed, scale rebuilt with its
-- three keys only); the worker's models (worker/models.py) mirror these rules.
-- Touches: private.answer_scale_and_unit() (new), private.validate_assessment() (replaced: accepts the two
-- keys and keeps them), trigger a10_validate_assessment (unchanged, it calls the replaced function).

create function private.answer_scale_and_unit(field text, item jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  max_unit_chars constant int := 40;
  max_abs constant numeric := 1e9;
  answer jsonb := item -> 'answer';
  scale jsonb := item -> 'scale';
  extra jsonb := '{}'::jsonb;
  bound text;
  low numeric;
  high numeric;
begin
  if item ? 'scale' then
    if jsonb_typeof(scale) is distinct from 'object' then
      perform private.validation_error(field || '.scale', 'must be an object',
        format('Got %s.', coalesce(jsonb_typeof(scale), 'nothing')),
        'Send {"min": 1, "max": 5, "higher_is_better": true}, or leave scale out for a quantity.');
    end if;
    if exists (select from jsonb_object_keys(scale) k where k not in ('min', 'max', 'higher_is_better')) then
      perform private.validation_error(field || '.scale', 'has unknown keys',
        format('Got keys %s.', (select string_agg(k, ', ' order by k) from jsonb_object_keys(scale) k)),
        'Use only min, max and higher_is_better.');
    end if;
    foreach bound in array array['min', 'max'] loop
      if jsonb_typeof(scale -> bound) is distinct from 'number' then
        perform private.validation_error(format('%s.scale.%s', field, bound), 'is required and must be a number',
          format('Got %s.', coalesce(left((scale -> bound)::text, 40), 'nothing')),
          'Send the lowest possible answer as min and the highest as max, such as 1 and 5.');
      end if;
      if abs((scale ->> bound)::numeric) > max_abs then
        perform private.validation_error(format('%s.scale.%s', field, bound), 'is out of range',
          format('Got %s.', scale -> bound), 'Send a number between -1000000000 and 1000000000.');
      end if;
    end loop;
    if jsonb_typeof(scale -> 'higher_is_better') is distinct from 'boolean' then
      perform private.validation_error(field || '.scale.higher_is_better', 'is required and must be true or false',
        format('Got %s.', coalesce(left((scale -> 'higher_is_better')::text, 40), 'nothing')),
        'Send true when a higher answer is better (how calm?), false when lower is better (how stressed?).');
    end if;
    low := (scale ->> 'min')::numeric;
    high := (scale ->> 'max')::numeric;
    if low >= high then
      perform private.validation_error(field || '.scale.min', 'must be less than scale.max',
        format('Got min %s and max %s.', scale -> 'min', scale -> 'max'),
        'Send the lowest possible answer as min and the highest as max; higher_is_better gives the direction.');
    end if;
    if jsonb_typeof(answer) <> 'number' then
      perform private.validation_error(field || '.scale', 'is only allowed on a number answer',
        format('The answer is %s.', jsonb_typeof(answer)), 'Leave scale out of text, boolean and list answers.');
    end if;
    if (answer #>> '{}')::numeric not between low and high then
      perform private.validation_error(field || '.answer', 'is outside its scale',
        format('Got %s; the scale is %s to %s.', answer, scale -> 'min', scale -> 'max'),
        'Send an answer between scale.min and scale.max, or correct the scale.');
    end if;
    extra := jsonb_build_object('scale', jsonb_build_object(
      'min', scale -> 'min', 'max', scale -> 'max', 'higher_is_better', scale -> 'higher_is_better'));
  end if;

  if item ? 'unit' then
    if jsonb_typeof(item -> 'unit') is distinct from 'string' or btrim(item ->> 'unit') = ''
       or char_length(btrim(item ->> 'unit')) > max_unit_chars then
      perform private.validation_error(field || '.unit', format('must be text of 1-%s characters', max_unit_chars),
        format('Got %s.', left((item -> 'unit')::text, 60)), 'Send a short unit such as "hours/night" or "days/week".');
    end if;
    if jsonb_typeof(answer) <> 'number' then
      perform private.validation_error(field || '.unit', 'is only allowed on a number answer',
        format('The answer is %s.', jsonb_typeof(answer)), 'Leave unit out of text, boolean and list answers.');
    end if;
    extra := extra || jsonb_build_object('unit', btrim(item ->> 'unit'));
  end if;
  return extra;
end;
$$;
comment on function private.answer_scale_and_unit(text, jsonb) is
  'The validated, normalised scale and unit of one answer (field names it in errors), as {"scale"?, "unit"?}.';
revoke execute on function private.answer_scale_and_unit(text, jsonb) from public, anon, authenticated;

-- The whole function is restated because a released migration cannot be edited; what changed from
-- 20261125180300_validate_assessments.sql: the allowed answer keys, and each answer keeps its scale and unit.
create or replace function private.validate_assessment()
returns trigger
language plpgsql
security definer  -- only so that callers need no rights on schema private (for validation_error)
set search_path = ''
as $$
declare
  max_answers constant int := 100;
  max_answers_bytes constant int := 65536;
  max_question_chars constant int := 500;
  max_text_answer_chars constant int := 2000;
  max_list_items constant int := 20;
  max_list_item_chars constant int := 200;
  max_goals constant int := 10;
  max_goal_chars constant int := 200;
  max_notes_chars constant int := 1000;
  item jsonb;
  field text;
  answer jsonb;
  text_value text;
  question_ids text[] := '{}';
  normalised jsonb := '[]';
  element jsonb;
  elements jsonb;
  i int := 0;
  j int;
begin
  -- assessment_type
  if new.assessment_type is null then
    perform private.validation_error('assessment_type', 'is required', null,
      'Send a lowercase slug such as "career" or "wellbeing".');
  end if;
  new.assessment_type := lower(btrim(new.assessment_type));
  if new.assessment_type !~ '^[a-z][a-z0-9_]{1,63}$' then
    perform private.validation_error('assessment_type', 'must be a slug of 2-64 characters',
      format('Got %L.', left(new.assessment_type, 80)),
      'Use lowercase letters, digits and _, starting with a letter, such as "career".');
  end if;

  -- answers: shape
  if new.answers is null or jsonb_typeof(new.answers) <> 'array' then
    perform private.validation_error('answers', 'must be a JSON array of answers',
      format('Got %s.', coalesce(jsonb_typeof(new.answers), 'null')),
      'Send [{"question_id": "q1", "question": "...", "answer": ...}, ...].');
  end if;
  if jsonb_array_length(new.answers) not between 1 and max_answers then
    perform private.validation_error('answers', format('must hold 1 to %s answers', max_answers),
      format('Got %s.', jsonb_array_length(new.answers)),
      'Send at least one answer; split larger questionnaires into several assessments.');
  end if;
  if octet_length(new.answers::text) > max_answers_bytes then
    perform private.validation_error('answers', format('are larger than %s bytes in all', max_answers_bytes),
      format('Got %s bytes.', octet_length(new.answers::text)),
      'Shorten the longest answers.');
  end if;

  -- answers: each item
  for item in select value from jsonb_array_elements(new.answers)
  loop
    field := format('answers[%s]', i);
    if jsonb_typeof(item) <> 'object' then
      perform private.validation_error(field, 'must be an object',
        format('Got %s.', jsonb_typeof(item)), 'Send {"question_id": ..., "question": ..., "answer": ...}.');
    end if;
    if exists (select from jsonb_object_keys(item) k
               where k not in ('question_id', 'question', 'answer', 'scale', 'unit')) then
      perform private.validation_error(field, 'has unknown keys',
        format('Got keys %s.', (select string_agg(k, ', ' order by k) from jsonb_object_keys(item) k)),
        'Use only question_id, question, answer, scale and unit.');
    end if;

    -- question_id
    if jsonb_typeof(item -> 'question_id') is distinct from 'string' then
      perform private.validation_error(field || '.question_id', 'is required and must be text', null,
        'Give every answer the id of its question, such as "q1".');
    end if;
    text_value := item ->> 'question_id';
    if text_value !~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$' then
      perform private.validation_error(field || '.question_id', 'must be 1-64 characters: letters, digits, _ . : -',
        format('Got %L.', left(text_value, 80)), 'Use a stable id such as "q1" or "sleep.hours".');
    end if;
    if text_value = any (question_ids) then
      perform private.validation_error(field || '.question_id', 'repeats an earlier question_id',
        format('%L appears more than once.', text_value), 'Answer each question once.');
    end if;
    question_ids := question_ids || text_value;

    -- question
    if jsonb_typeof(item -> 'question') is distinct from 'string' or btrim(item ->> 'question') = '' then
      perform private.validation_error(field || '.question', 'is required and must be non-empty text', null,
        'Send the question as it was shown to the user.');
    end if;
    if char_length(btrim(item ->> 'question')) > max_question_chars then
      perform private.validation_error(field || '.question',
        format('is longer than %s characters', max_question_chars),
        format('Got %s characters.', char_length(btrim(item ->> 'question'))), 'Shorten the question.');
    end if;

    -- answer: text, number, boolean or list of text
    answer := item -> 'answer';
    case jsonb_typeof(answer)
      when 'string' then
        answer := to_jsonb(btrim(answer #>> '{}'));
        if answer #>> '{}' = '' then
          perform private.validation_error(field || '.answer', 'is empty', null,
            'Leave unanswered questions out of answers.');
        end if;
        if char_length(answer #>> '{}') > max_text_answer_chars then
          perform private.validation_error(field || '.answer',
            format('text is longer than %s characters', max_text_answer_chars),
            format('Got %s characters.', char_length(answer #>> '{}')), 'Shorten the answer.');
        end if;
      when 'number' then
        if abs((answer #>> '{}')::numeric) > 1e9 then
          perform private.validation_error(field || '.answer', 'number is out of range',
            format('Got %s.', answer), 'Send a number between -1000000000 and 1000000000.');
        end if;
      when 'boolean' then
        null;
      when 'array' then
        if jsonb_array_length(answer) not between 1 and max_list_items then
          perform private.validation_error(field || '.answer', format('list must hold 1 to %s items', max_list_items),
            format('Got %s.', jsonb_array_length(answer)), 'Send the options the user chose.');
        end if;
        elements := '[]';
        j := 0;
        for element in select value from jsonb_array_elements(answer)
        loop
          if jsonb_typeof(element) <> 'string' or btrim(element #>> '{}') = ''
             or char_length(btrim(element #>> '{}')) > max_list_item_chars then
            perform private.validation_error(format('%s.answer[%s]', field, j),
              format('must be non-empty text of at most %s characters', max_list_item_chars),
              format('Got %s.', left(element::text, 80)), 'Send each chosen option as text.');
          end if;
          elements := elements || to_jsonb(btrim(element #>> '{}'));
          j := j + 1;
        end loop;
        answer := elements;
      else
        perform private.validation_error(field || '.answer',
          'must be text, a number, a boolean or a list of text',
          format('Got %s.', coalesce(jsonb_typeof(answer), 'nothing')),
          'Leave unanswered questions out of answers.');
    end case;

    normalised := normalised || (jsonb_build_object(
      'question_id', item ->> 'question_id',
      'question', btrim(item ->> 'question'),
      'answer', answer) || private.answer_scale_and_unit(field, item));
    i := i + 1;
  end loop;
  new.answers := normalised;

  -- context
  if new.context is not null then
    if jsonb_typeof(new.context) <> 'object' then
      perform private.validation_error('context', 'must be an object or null',
        format('Got %s.', jsonb_typeof(new.context)), 'Send {"goals": [...], "locale": "en"} or leave it out.');
    end if;
    if exists (select from jsonb_object_keys(new.context) k where k not in ('goals', 'locale', 'notes')) then
      perform private.validation_error('context', 'has unknown keys',
        format('Got keys %s.', (select string_agg(k, ', ' order by k) from jsonb_object_keys(new.context) k)),
        'Use only goals, locale and notes.');
    end if;
    if new.context ? 'goals' then
      if jsonb_typeof(new.context -> 'goals') <> 'array'
         or jsonb_array_length(new.context -> 'goals') > max_goals then
        perform private.validation_error('context.goals', format('must be a list of at most %s goals', max_goals),
          null, 'Send goals as ["...", "..."].');
      end if;
      elements := '[]';
      j := 0;
      for element in select value from jsonb_array_elements(new.context -> 'goals')
      loop
        if jsonb_typeof(element) <> 'string' or btrim(element #>> '{}') = ''
           or char_length(btrim(element #>> '{}')) > max_goal_chars then
          perform private.validation_error(format('context.goals[%s]', j),
            format('must be non-empty text of at most %s characters', max_goal_chars),
            format('Got %s.', left(element::text, 80)), 'Send each goal as a short sentence.');
        end if;
        elements := elements || to_jsonb(btrim(element #>> '{}'));
        j := j + 1;
      end loop;
      new.context := jsonb_set(new.context, '{goals}', elements);
    end if;
    if new.context ? 'locale' and (jsonb_typeof(new.context -> 'locale') <> 'string'
       or (new.context ->> 'locale') !~ '^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$') then
      perform private.validation_error('context.locale', 'must be a BCP 47 language tag',
        format('Got %s.', left((new.context -> 'locale')::text, 40)), 'Send a tag such as "en" or "pt-BR".');
    end if;
    if new.context ? 'notes' then
      if jsonb_typeof(new.context -> 'notes') <> 'string'
         or char_length(new.context ->> 'notes') > max_notes_chars then
        perform private.validation_error('context.notes', format('must be text of at most %s characters', max_notes_chars),
          null, 'Shorten the notes.');
      end if;
      new.context := jsonb_set(new.context, '{notes}', to_jsonb(btrim(new.context ->> 'notes')));
    end if;
  end if;

  return new;
end;
$$;
