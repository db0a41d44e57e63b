-- Purpose: the database, not only the worker, guarantees what a result may hold.
--   * A result belongs to its assessment's owner: result_test (assessment_id, user_id) references
--     test_assessment (id, user_id), so a worker bug cannot show one user's result to another.
--   * recommendations has the shape every client reads: 1-10 objects with exactly title (3-120
--     characters), description (10-1000), category (2-40), rationale (10-600) as text and priority an
--     integer 1-5.
--   * The other text the AI can influence is bounded: model at most 200 characters, and so on.
--   * cache_key now includes the owner (worker/prompt.py), so an AI result is reused only for its own user.
-- Touches: constraints of public.test_assessment and public.result_test, private.recommendations_are_valid().

alter table public.test_assessment add constraint test_assessment_id_user_id_key unique (id, user_id);

-- Added NOT VALID, then validated: existing rows are checked without blocking writes for the scan.
alter table public.result_test drop constraint result_test_assessment_id_fkey;
alter table public.result_test add constraint result_test_assessment_owner_fkey
  foreign key (assessment_id, user_id) references public.test_assessment (id, user_id) on delete cascade
  not valid;
alter table public.result_test validate constraint result_test_assessment_owner_fkey;

create function private.recommendations_are_valid(recommendations jsonb)
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
          or (select pg_catalog.array_agg(k order by k) from pg_catalog.jsonb_object_keys(r.item) k)
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
     )
$$;
comment on function private.recommendations_are_valid(jsonb) is
  'Check of result_test.recommendations: 1-10 recommendations with exactly the fields and bounds worker/models.py Recommendation has.';
revoke execute on function private.recommendations_are_valid(jsonb) from public, anon, authenticated;
grant execute on function private.recommendations_are_valid(jsonb) to assessment_worker;

alter table public.result_test
  add constraint result_test_recommendations_shape check (private.recommendations_are_valid(recommendations))
    not valid,
  add constraint result_test_model_length check (char_length(model) between 1 and 200) not valid,
  add constraint result_test_prompt_version_length check (char_length(prompt_version) between 1 and 100) not valid,
  add constraint result_test_fallback_reason_format check (fallback_reason ~ '^[a-z_]{1,40}$') not valid,
  add constraint result_test_cache_key_format check (cache_key ~ '^[0-9a-f]{64}$') not valid;
alter table public.result_test validate constraint result_test_recommendations_shape;
alter table public.result_test validate constraint result_test_model_length;
alter table public.result_test validate constraint result_test_prompt_version_length;
alter table public.result_test validate constraint result_test_fallback_reason_format;
alter table public.result_test validate constraint result_test_cache_key_format;

comment on column public.result_test.cache_key is
  'sha256 of owner, model and prompt: an AI result is reused only for the same user''s identical answers.';
