-- Purpose: reject malformed assessments with errors that name the field and say what to do, and
-- normalise what is accepted (trimmed text, lowercase type), so every client gets the same rules.
-- Touches: private.validation_error(), private.validate_assessment(), trigger on public.test_assessment.
-- All field errors use SQLSTATE 22023 (PostgREST: HTTP 400) with message "<field>: <rule>".

create function private.validation_error(field text, problem text, detail text, hint text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  -- RAISE rejects a null option, so detail is only passed when there is one.
  if detail is null then
    raise exception '%: %', field, problem using errcode = '22023', hint = hint;
  end if;
  raise exception '%: %', field, problem using errcode = '22023', detail = detail, hint = hint;
end;
$$;
comment on function private.validation_error(text, text, text, text) is
  'Raises a 22023 validation error "<field>: <problem>" with detail and hint.';

create function private.validate_assessment()
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
    if exists (select from jsonb_object_keys(item) k where k not in ('question_id', 'question', 'answer')) then
      perform private.validation_error(field, 'has unknown keys',
        format('Got keys %s.', (select string_agg(k, ', ' order by k) from jsonb_object_keys(item) k)),
        'Use only question_id, question and answer.');
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

    normalised := normalised || jsonb_build_object(
      'question_id', item ->> 'question_id',
      'question', btrim(item ->> 'question'),
      'answer', answer);
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
comment on function private.validate_assessment() is
  'Before insert or update of assessment content: validates and normalises assessment_type, answers and context.';

revoke execute on function private.validation_error(text, text, text, text), private.validate_assessment()
  from public, anon, authenticated;

-- Triggers fire in name order: a10 validates before a20 applies the submission quota.
create trigger a10_validate_assessment
  before insert or update of assessment_type, answers, context on public.test_assessment
  for each row execute function private.validate_assessment();
