-- Purpose: idempotent client retries and a per-user submission rate limit, both enforced in the
-- inserting transaction so every client (supabase-js, REST, SQL) gets the same answer.
-- Touches: private.settings, private.submission_quota, private.guard_submission(), trigger on
-- public.test_assessment.

create table private.settings (
  id boolean primary key default true check (id),
  submissions_per_minute integer default 10 check (submissions_per_minute > 0)
);
comment on table private.settings is
  'Pipeline settings, one row. Change with: update private.settings set submissions_per_minute = 30;';
comment on column private.settings.submissions_per_minute is
  'Per-user submission limit (token bucket: this many per minute, bursts up to the same number). Null turns the limit off.';
insert into private.settings default values;
alter table private.settings enable row level security;

-- One token bucket per user: refilled continuously at submissions_per_minute / 60 per second.
create table private.submission_quota (
  user_id uuid primary key references auth.users (id) on delete cascade,
  tokens double precision not null,
  refilled_at timestamptz not null
);
comment on table private.submission_quota is
  'Token bucket per user for the submission rate limit; deleting assessments does not give tokens back.';
alter table private.submission_quota enable row level security;

create function private.guard_submission()
returns trigger
language plpgsql
security definer  -- reads other rows of the owner and writes private.submission_quota, which callers cannot
set search_path = ''
as $$
declare
  existing_id uuid;
  per_minute integer;
  tokens_left double precision;
  wait_seconds integer;
begin
  -- Rows that RLS or a constraint will reject are not ours to judge: answering here would tell a
  -- forger whether another user's id or client_request_id exists.
  if new.user_id is null
     or ((select auth.role()) = 'authenticated' and new.user_id is distinct from (select auth.uid())) then
    return new;
  end if;

  -- A retry of an earlier insert: say which assessment it created instead of creating another.
  if new.client_request_id is not null then
    select id into existing_id
    from public.test_assessment
    where user_id = new.user_id and client_request_id = new.client_request_id;
    if found then
      raise exception 'client_request_id: % was already submitted', new.client_request_id
        using errcode = '23505',
              detail = format('Assessment %s was created by the first request.', existing_id),
              hint = 'Do not resubmit: read the existing assessment by client_request_id.';
    end if;
  end if;

  select submissions_per_minute into per_minute from private.settings;
  if per_minute is null then
    return new;
  end if;

  insert into private.submission_quota as q (user_id, tokens, refilled_at)
  values (new.user_id, per_minute - 1, now())
  on conflict (user_id) do update
    set tokens = least(per_minute, q.tokens + extract(epoch from now() - q.refilled_at) * per_minute / 60.0) - 1,
        refilled_at = now()
  returning tokens into tokens_left;

  if tokens_left < 0 then
    -- The failed insert rolls back, so a rejected attempt does not spend a token.
    wait_seconds := ceil(-tokens_left * 60.0 / per_minute);
    raise exception 'rate limit: at most % assessments per minute', per_minute
      using errcode = 'PT429',
            detail = format('Retry after %s seconds.', wait_seconds),
            hint = format('Wait %s seconds before submitting again.', wait_seconds);
  end if;
  return new;
end;
$$;
comment on function private.guard_submission() is
  'Before insert on test_assessment: rejects a repeated client_request_id (23505) and enforces the per-user rate limit (PT429 = HTTP 429).';
revoke execute on function private.guard_submission() from public, anon, authenticated;

create trigger a20_guard_submission
  before insert on public.test_assessment
  for each row execute function private.guard_submission();
