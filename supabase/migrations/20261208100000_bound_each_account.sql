-- Purpose: bound what one account can submit and store, so that one user (or a script with one user's
-- token) cannot fill the database for everyone: at most submissions_per_day assessments per UTC day
-- (PT429, HTTP 429, saying when the user can submit again) and at most stored_assessments_per_user kept
-- at once (PT409, HTTP 409: delete old ones first). Both refuse the insert, so nothing is stored or queued.
-- Defaults (docs/deployment.md, "Per-account limits"): 50 a day, 500 stored; null turns either off.
-- Touches: private.settings (two columns), private.submission_quota (the day's count),
-- private.guard_submission().

alter table private.settings
  add column submissions_per_day integer default 50 check (submissions_per_day > 0),
  add column stored_assessments_per_user integer default 500 check (stored_assessments_per_user > 0);
comment on column private.settings.submissions_per_day is
  'Per-user submissions per UTC day (the count resets at 00:00 UTC). Null turns the limit off.';
comment on column private.settings.stored_assessments_per_user is
  'Most assessments one user may keep at once; deleting one makes room. Null turns the limit off.';
update private.settings set submissions_per_day = 50, stored_assessments_per_user = 500;

alter table private.submission_quota
  add column day date,
  add column submitted_today integer not null default 0;
comment on column private.submission_quota.day is 'The UTC day submitted_today counts.';
comment on column private.submission_quota.submitted_today is 'Submissions accepted on that day.';

create or replace function private.guard_submission()
returns trigger
language plpgsql
security definer  -- reads other rows of the owner and writes private.submission_quota, which callers cannot
set search_path = ''
as $$
declare
  -- Inside a SECURITY DEFINER function current_user is the owner; the request's role is in `role`.
  caller text := case when pg_catalog.current_setting('role') = 'none' then session_user::text
                      else pg_catalog.current_setting('role') end;
  existing_id uuid;
  per_minute integer;
  per_day integer;
  max_stored integer;
  stored integer;
  today date := (pg_catalog.now() at time zone 'UTC')::date;
  tokens_left double precision;
  today_count integer;
  wait_seconds integer;
  wait_minutes integer;
begin
  -- A row RLS will reject is not ours to judge: answering here would tell a forger whether another
  -- user's id or client_request_id exists, and would spend their quota.
  if caller in ('anon', 'authenticated') and new.user_id is distinct from (select auth.uid()) then
    return new;
  end if;

  if new.user_id is null then
    raise exception 'user_id: is required'
      using errcode = '23502',
            hint = 'Sign in: a user''s assessment belongs to them. With the service role, send the user''s id.';
  end if;
  if not exists (select from auth.users u where u.id = new.user_id) then
    raise exception 'user_id: no such user'
      using errcode = '23503', detail = format('Got %s.', new.user_id),
            hint = 'Sign in again: the account may have been deleted.';
  end if;

  -- A retry of an earlier insert: say which assessment it created instead of creating another.
  if new.client_request_id is not null then
    perform pg_catalog.pg_advisory_xact_lock(
      pg_catalog.hashtextextended('assessment submissions of ' || new.user_id::text, 0));
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

  select submissions_per_minute, submissions_per_day, stored_assessments_per_user
  into per_minute, per_day, max_stored
  from private.settings;

  if max_stored is not null then
    -- One user's submissions count one after another (two racing requests could both count one below
    -- the limit); the same per-user lock as above, taken once per transaction however many rows.
    perform pg_catalog.pg_advisory_xact_lock(
      pg_catalog.hashtextextended('assessment submissions of ' || new.user_id::text, 0));
    -- Counting stops at the limit: at most max_stored index entries, whatever the user holds.
    select count(*) into stored
    from (select from public.test_assessment where user_id = new.user_id limit max_stored) kept;
    if stored >= max_stored then
      raise exception 'storage limit: at most % stored assessments per account', max_stored
        using errcode = 'PT409',
              detail = format('This account keeps %s assessments.', stored),
              hint = 'Delete assessments you no longer need, then submit again.';
    end if;
  end if;

  if per_minute is null and per_day is null then
    return new;
  end if;

  -- One row per user holds both limits; the failed insert rolls back, so a refused submission spends
  -- neither a token nor a place in the day's count.
  insert into private.submission_quota as q (user_id, tokens, refilled_at, day, submitted_today)
  values (new.user_id, coalesce(per_minute, 1) - 1, pg_catalog.now(), today, 1)
  on conflict (user_id) do update
    set tokens = case when per_minute is null then q.tokens
                      else least(per_minute, q.tokens + extract(epoch from pg_catalog.now() - q.refilled_at)
                                             * per_minute / 60.0) - 1 end,
        refilled_at = pg_catalog.now(),
        submitted_today = case when q.day = today then q.submitted_today + 1 else 1 end,
        day = today
  returning tokens, submitted_today into tokens_left, today_count;

  if per_day is not null and today_count > per_day then
    wait_minutes := ceil(extract(epoch from (today + 1)::timestamp at time zone 'UTC' - pg_catalog.now()) / 60);
    raise exception 'daily limit: at most % assessments per day', per_day
      using errcode = 'PT429',
            detail = format('The limit resets at %s 00:00 UTC.', today + 1),
            hint = format('Submit again after %s 00:00 UTC (in %s h %s min).',
                          today + 1, wait_minutes / 60, wait_minutes % 60);
  end if;
  if per_minute is not null and tokens_left < 0 then
    wait_seconds := ceil(-tokens_left * 60.0 / per_minute);
    raise exception 'rate limit: at most % assessments per minute', per_minute
      using errcode = 'PT429',
            detail = format('Retry after %s seconds.', wait_seconds),
            hint = format('Wait %s seconds before submitting again.', wait_seconds);
  end if;
  return new;
end;
$$;
