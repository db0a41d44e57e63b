-- Purpose: the assessments users submit. Clients insert rows straight through the API under RLS;
-- the worker owns every column that describes processing.
-- Touches: type public.assessment_status, table public.test_assessment, its policies and grants,
-- private.touch_assessment() (updated_at and the status state machine).

create type public.assessment_status as enum (
  'queued',      -- inserted by the owner; a job is in the queue
  'processing',  -- queued -> processing (the worker took the lease; again on a retry)
  'completed',   -- processing -> completed (result_test written in the same transaction); terminal
  'failed'       -- queued | processing -> failed (attempts exhausted or invalid); an operator may requeue
);
comment on type public.assessment_status is
  'Lifecycle of an assessment: queued -> processing -> completed | failed (failed -> queued on requeue).';

create table public.test_assessment (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  assessment_type text not null,
  answers jsonb not null,
  context jsonb,
  client_request_id uuid,
  status public.assessment_status not null default 'queued',
  attempts integer not null default 0,
  last_error text,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  completed_at timestamptz,
  updated_at timestamptz not null default now(),
  constraint test_assessment_client_request_id_key unique (user_id, client_request_id),
  constraint test_assessment_attempts_not_negative check (attempts >= 0),
  constraint test_assessment_last_error_length check (char_length(last_error) <= 2000),
  constraint test_assessment_completed_has_time check (status <> 'completed' or completed_at is not null)
);

comment on table public.test_assessment is
  'Assessments submitted by users. Insert one to get AI recommendations in public.result_test.';
comment on column public.test_assessment.id is 'Assessment id; also the Realtime topic assessment:<id>.';
comment on column public.test_assessment.user_id is
  'Owner (auth.users.id). Defaults to the caller; a user can only submit for themselves.';
comment on column public.test_assessment.assessment_type is
  'Kind of assessment, a lowercase slug such as career or wellbeing (2-64 characters: a-z, 0-9, _).';
comment on column public.test_assessment.answers is
  'Array of 1-100 answers {question_id, question, answer}; answer is text, a number, a boolean or a list of text.';
comment on column public.test_assessment.context is
  'Optional object: goals (list of text), locale (BCP 47 tag such as en or pt-BR), notes (text).';
comment on column public.test_assessment.client_request_id is
  'Optional idempotency key chosen by the client: a retried insert with the same key is rejected (409) instead of creating a second assessment.';
comment on column public.test_assessment.status is
  'queued -> processing -> completed | failed. Set by the worker only.';
comment on column public.test_assessment.attempts is 'How many times the worker started processing this assessment.';
comment on column public.test_assessment.last_error is 'Why the last attempt failed, if it did. Set by the worker only.';
comment on column public.test_assessment.created_at is 'When the assessment was submitted.';
comment on column public.test_assessment.started_at is 'When the worker last started processing it.';
comment on column public.test_assessment.completed_at is 'When it reached completed or failed.';
comment on column public.test_assessment.updated_at is 'When the row last changed.';

create index test_assessment_user_id_created_at_idx on public.test_assessment (user_id, created_at desc);
create index test_assessment_unfinished_idx on public.test_assessment (status, created_at)
  where status in ('queued', 'processing');

-- updated_at, and the state machine written above, enforced for every writer.
create function private.touch_assessment()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if new.status is distinct from old.status and not (
       (old.status = 'queued' and new.status in ('processing', 'failed'))
    or (old.status = 'processing' and new.status in ('completed', 'failed'))
    or (old.status = 'failed' and new.status = 'queued')
  ) then
    raise exception 'status: % -> % is not a valid transition', old.status, new.status
      using errcode = '22023',
            detail = format('Assessment %s.', old.id),
            hint = 'Allowed: queued -> processing | failed, processing -> completed | failed, failed -> queued.';
  end if;
  new.updated_at := now();
  return new;
end;
$$;
comment on function private.touch_assessment() is
  'Before update on test_assessment: keeps updated_at and rejects status transitions outside the state machine.';

create trigger touch_before_update
  before update on public.test_assessment
  for each row execute function private.touch_assessment();

-- Row Level Security. Supabase grants every table to anon and authenticated by default, so rights are
-- revoked first and granted back per column: RLS decides which rows, column grants decide which
-- columns a user may write.
alter table public.test_assessment enable row level security;

revoke all on table public.test_assessment from anon, authenticated;
grant select, delete on table public.test_assessment to authenticated;
grant insert (user_id, assessment_type, answers, context, client_request_id)
  on table public.test_assessment to authenticated;

create policy "Users can submit their own assessments"
  on public.test_assessment for insert to authenticated
  with check ((select auth.uid()) = user_id);

create policy "Users can read their own assessments"
  on public.test_assessment for select to authenticated
  using ((select auth.uid()) = user_id);

-- Owners may withdraw an assessment (and its result, by cascade); see docs/decisions/0002.
create policy "Users can delete their own assessments"
  on public.test_assessment for delete to authenticated
  using ((select auth.uid()) = user_id);

grant select on table public.test_assessment to assessment_worker;
grant update (status, attempts, last_error, started_at, completed_at)
  on table public.test_assessment to assessment_worker;

create policy "The worker can read every assessment"
  on public.test_assessment for select to assessment_worker
  using (true);

create policy "The worker can record processing of every assessment"
  on public.test_assessment for update to assessment_worker
  using (true) with check (true);
