-- Purpose: the submission guard takes one advisory lock per user and transaction, not one per row.
-- It locked each (user, client_request_id) until commit, so one request inserting many rows with
-- distinct client_request_ids (the rate limit off: submissions_per_minute = null is a supported
-- setting) took as many slots in the shared lock table, which every session of the database shares;
-- enough of them and others fail with "out of shared memory". Locking the user instead takes one slot
-- however many rows the request holds (a lock already held is counted locally). Two racing requests
-- of one user with the same client_request_id still wait for each other, so the second still gets the
-- guard's 23505; racing requests of one user with different keys now wait too, for one commit.
-- Touches: private.guard_submission() (only the lock key changes).

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
  tokens_left double precision;
  wait_seconds integer;
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
