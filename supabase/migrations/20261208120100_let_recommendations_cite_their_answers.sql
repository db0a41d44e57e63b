-- Purpose: a recommendation may name the answers it rests on. result_test.recommendations items gain an
-- optional "based_on": up to 101 ids (the assessment's question_ids, and "goals" for context.goals), each
-- shaped like a question_id. Optional, so every result stored before stays valid; the worker writes it on
-- every new result and limits it to the assessment's own ids (worker/answer_schema.py), which a check
-- constraint cannot look up.
-- Touches: private.recommendations_are_valid() (replaced; constraint result_test_recommendations_shape
-- calls it and needs no change: it only grows more permissive, so existing rows stay valid).

create or replace function private.recommendations_are_valid(recommendations jsonb)
returns boolean
language sql
immutable
set search_path = ''
as $$
  select pg_catalog.jsonb_typeof(recommendations) = 'array'
     and pg_catalog.jsonb_array_length(recommendations) between 1 and 10
     and not exists (
       select
       from pg_catalog.jsonb_array_elements(recommendations) as r(item)
       where pg_catalog.jsonb_typeof(r.item) is distinct from 'object'
          or (select pg_catalog.array_agg(k order by k) from pg_catalog.jsonb_object_keys(r.item) k
              where k <> 'based_on')
             is distinct from array['category', 'description', 'priority', 'rationale', 'title']
          or pg_catalog.jsonb_typeof(r.item -> 'title') <> 'string'
          or pg_catalog.char_length(r.item ->> 'title') not between 3 and 120
          or pg_catalog.jsonb_typeof(r.item -> 'description') <> 'string'
          or pg_catalog.char_length(r.item ->> 'description') not between 10 and 1000
          or pg_catalog.jsonb_typeof(r.item -> 'category') <> 'string'
          or pg_catalog.char_length(r.item ->> 'category') not between 2 and 40
          or pg_catalog.jsonb_typeof(r.item -> 'rationale') <> 'string'
          or pg_catalog.char_length(r.item ->> 'rationale') not between 10 and 600
          or pg_catalog.jsonb_typeof(r.item -> 'priority') <> 'number'
          or (r.item ->> 'priority') !~ '^[1-5]$'
          or (r.item ? 'based_on' and (
                pg_catalog.jsonb_typeof(r.item -> 'based_on') <> 'array'
                or pg_catalog.jsonb_array_length(r.item -> 'based_on') > 101
                or exists (select from pg_catalog.jsonb_array_elements(r.item -> 'based_on') as b(id)
                           where pg_catalog.jsonb_typeof(b.id) <> 'string'
                              or (b.id #>> '{}') !~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$')))
     )
$$;
comment on function private.recommendations_are_valid(jsonb) is
  'Check of result_test.recommendations: 1-10 recommendations with exactly the fields and bounds worker/models.py Recommendation has (based_on optional).';

comment on column public.result_test.recommendations is
  'Array of 1-10 {title, description, category, priority (1 = most important .. 5), rationale, based_on}, most '
  'important first. based_on lists the question_ids (and "goals") a recommendation rests on; results written '
  'before it existed lack it.';
