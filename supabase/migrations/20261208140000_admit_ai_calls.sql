-- Purpose: the AI step is admitted, not attempted (docs/decisions/0013-ai-calls-are-admitted-by-the-database.md).
-- Before each try of an AI call every replica asks the database, which all of them share, so N replicas
-- behave as one client of one provider account:
--   * the provider's limits, paced: requests a minute (one start every 60/limit seconds) and tokens a
--     minute (a bucket of one minute's tokens), as GCRA start times that every replica honours;
--   * the provider's own "stop until" (a 429's retry-after, x-ratelimit-remaining at 0), shared;
--   * the spend budgets per UTC day: tokens per user, US dollars for the project. A try reserves its
--     worst case (the request's bytes plus the completion cap, priced) before it starts and the worker
--     settles the reported usage after it; a reservation counts only while the job's lease lasts, so a
--     worker killed mid-call holds nothing longer than a lease.
-- The limits and budgets are the worker's settings (AI_REQUESTS_PER_MINUTE, ...), passed with each call;
-- every replica must be given the same. Users can read their own usage per day (public.ai_usage).
-- Touches: private.ai_limiter, private.ai_reservation, private.ai_project_usage, public.ai_usage and its
-- policy, private.admit_ai_call(), private.settle_ai_call(), private.ai_usage_today(), and the grants of
-- assessment_worker (usage on schema private, execute on these three functions only).

create table private.ai_limiter (
  id boolean primary key default true check (id),
  next_request_at timestamptz,
  tokens_full_at timestamptz,
  paused_until timestamptz,
  updated_at timestamptz not null default now()
);
comment on table private.ai_limiter is
  'Pacing of AI calls shared by every worker replica, one row (private.admit_ai_call()).';
comment on column private.ai_limiter.next_request_at is
  'Requests a minute: the earliest start of the next try (GCRA''s theoretical arrival time); null = now.';
comment on column private.ai_limiter.tokens_full_at is
  'Tokens a minute: when the bucket of one minute''s tokens is full again; null or past = full.';
comment on column private.ai_limiter.paused_until is
  'The provider said stop (HTTP 429 with retry-after, or x-ratelimit-remaining-* at 0) until then; every replica waits.';
insert into private.ai_limiter default values;
alter table private.ai_limiter enable row level security;

create table private.ai_reservation (
  id bigint generated always as identity primary key,
  msg_id bigint not null,
  read_ct integer not null,
  user_id uuid not null,  -- no foreign key: a row lives seconds, and its check would cost every call
  day date not null,
  requests integer not null check (requests > 0),
  tokens bigint not null check (tokens >= 0),
  cost_usd numeric not null check (cost_usd >= 0),
  created_at timestamptz not null default now()
);
comment on table private.ai_reservation is
  'The worst case of AI tries admitted and not settled yet. A row counts against the budgets only while its job''s lease (msg_id, read_ct, vt in the future) lasts; settle_ai_call deletes it, and rows of leases that ended unsettled (a worker killed mid-call) a day later.';
comment on column private.ai_reservation.tokens is 'Worst case of the tries: request bytes plus AI_MAX_COMPLETION_TOKENS, each.';
comment on column private.ai_reservation.day is 'The UTC day the call is charged to (the day it was admitted).';
-- Its rows are the calls in flight, written and deleted by every call: one index besides the key, for the
-- per-user sum; the project's sum and the daily clean-up read the few live rows (and vacuum's leftovers).
create index ai_reservation_user_id_day_idx on private.ai_reservation (user_id, day);
alter table private.ai_reservation enable row level security;

create table private.ai_project_usage (
  day date primary key,
  requests bigint not null default 0,
  prompt_tokens bigint not null default 0,
  completion_tokens bigint not null default 0,
  cost_usd numeric not null default 0,
  budget_usd numeric,
  updated_at timestamptz not null default now()
);
comment on table private.ai_project_usage is
  'AI usage of the whole project per UTC day, as the providers reported it (settled calls). Operators: select * from private.ai_project_usage order by day desc;';
comment on column private.ai_project_usage.requests is 'HTTP requests sent to the AI provider (tries, retries included).';
comment on column private.ai_project_usage.cost_usd is 'Estimated spend: tokens times AI_PRICE_*_PER_1K_TOKENS_USD.';
comment on column private.ai_project_usage.budget_usd is 'AI_DAILY_BUDGET_USD as the workers last reported it; null = no budget.';
alter table private.ai_project_usage enable row level security;

create table public.ai_usage (
  user_id uuid not null references auth.users (id) on delete cascade,
  day date not null,
  tokens bigint not null default 0 check (tokens >= 0),
  token_limit bigint check (token_limit > 0),
  updated_at timestamptz not null default now(),
  primary key (user_id, day)
);
comment on table public.ai_usage is
  'AI tokens used per user per UTC day, for "x of y today". Written by the worker only; each user reads their own rows. Cache hits and fallbacks use none.';
comment on column public.ai_usage.user_id is 'The user (auth.users.id) whose assessments used the tokens.';
comment on column public.ai_usage.day is 'The UTC day (YYYY-MM-DD); a new row starts at 00:00 UTC.';
comment on column public.ai_usage.tokens is 'Tokens the AI provider reported for the user''s assessments that day (prompt plus completion).';
comment on column public.ai_usage.token_limit is
  'The daily token budget per user (AI_USER_DAILY_TOKENS) when the row was last written; null = no budget. A new AI call needs room for its worst case (several thousand tokens), so AI answers can stop before tokens reaches it.';
comment on column public.ai_usage.updated_at is 'When the worker last wrote the row.';
alter table public.ai_usage enable row level security;

revoke all on table public.ai_usage from anon, authenticated, service_role;
grant select on table public.ai_usage to authenticated, service_role;

create policy "Users can read their own AI usage"
  on public.ai_usage for select to authenticated
  using ((select auth.uid()) = user_id);

create function private.admit_ai_call(
  p_msg_id bigint,
  p_read_ct integer,
  p_reservation bigint,
  p_tokens bigint,
  p_cost_usd numeric,
  p_wait_limit_seconds double precision,
  p_requests_per_minute integer,
  p_tokens_per_minute bigint,
  p_user_daily_tokens bigint,
  p_daily_budget_usd numeric,
  p_pause_seconds double precision
)
returns table (decision text, reservation bigint, wait_seconds double precision)
language plpgsql
security definer  -- reads the job's lease in pgmq and writes the limiter, reservations and usage, none of which the worker may touch
set search_path = ''
as $$
declare
  now_at timestamptz := pg_catalog.clock_timestamp();
  today date := (now_at at time zone 'UTC')::date;
  job_user uuid;
  settled numeric;
  own_tokens bigint := 0;
  own_cost numeric := 0;
  in_flight numeric;
  verdict text;
  limiter private.ai_limiter%rowtype;
  start_at timestamptz;
  token_rate double precision := p_tokens_per_minute / 60.0;
  admitted bigint;
begin
  -- Fenced like every write of a lease holder (docs/decisions/0011): a job whose message was delivered
  -- again since has no say. The user is the message's, never the caller's word.
  select (q.message ->> 'user_id')::uuid into job_user
  from pgmq.q_assessment_submitted q
  where q.msg_id = p_msg_id and q.read_ct = p_read_ct;
  if not found then
    return query select 'lease_lost'::text, p_reservation, 0::double precision;
    return;
  end if;
  if p_reservation is not null then  -- a retry: the call's earlier tries are reserved already
    select r.tokens, r.cost_usd into own_tokens, own_cost from private.ai_reservation r where r.id = p_reservation;
    own_tokens := coalesce(own_tokens, 0);
    own_cost := coalesce(own_cost, 0);
  end if;

  -- Budgets. Locks are taken in one order everywhere (user row, project row, limiter), so no two calls
  -- deadlock. Exhausted: the worst case would not fit even with nothing else in flight. Deferred: it fits
  -- once the calls in flight (reservations of live leases) settle, which use far less than their worst case.
  if p_user_daily_tokens is not null then
    select u.tokens into settled from public.ai_usage u where u.user_id = job_user and u.day = today for update;
    if not found then  -- the user's first call today: a row to lock, so two calls of theirs take turns
      insert into public.ai_usage (user_id, day) values (job_user, today) on conflict do nothing;
      select u.tokens into settled from public.ai_usage u where u.user_id = job_user and u.day = today for update;
    end if;
    if settled + own_tokens + p_tokens > p_user_daily_tokens then
      verdict := 'user_budget_exhausted';
    else
      select coalesce(sum(r.tokens), 0) into in_flight
      from private.ai_reservation r
      where r.user_id = job_user and r.day = today
        and exists (select from pgmq.q_assessment_submitted q
                    where q.msg_id = r.msg_id and q.read_ct = r.read_ct and q.vt > now_at);
      if settled + in_flight + p_tokens > p_user_daily_tokens then
        verdict := 'deferred';
      end if;
    end if;
  end if;
  if verdict is null and p_daily_budget_usd is not null then
    select p.cost_usd into settled from private.ai_project_usage p where p.day = today for update;
    if not found then
      insert into private.ai_project_usage (day) values (today) on conflict do nothing;
      select p.cost_usd into settled from private.ai_project_usage p where p.day = today for update;
    end if;
    if settled + own_cost + p_cost_usd > p_daily_budget_usd then
      verdict := 'daily_budget_exhausted';
    else
      select coalesce(sum(r.cost_usd), 0) into in_flight
      from private.ai_reservation r
      where r.day = today
        and exists (select from pgmq.q_assessment_submitted q
                    where q.msg_id = r.msg_id and q.read_ct = r.read_ct and q.vt > now_at);
      if settled + in_flight + p_cost_usd > p_daily_budget_usd then
        verdict := 'deferred';
      end if;
    end if;
  end if;

  -- Pacing (GCRA): the earliest start that the provider's pause, the request pace and the token bucket
  -- all allow. A pause the caller reports (a 429) is recorded whatever the verdict.
  if p_pause_seconds > 0 or (verdict is null and (p_requests_per_minute is not null or p_tokens_per_minute is not null)) then
    select * into limiter from private.ai_limiter where id for update;
  else
    select * into limiter from private.ai_limiter where id;
  end if;
  if p_pause_seconds > 0 then
    limiter.paused_until := greatest(limiter.paused_until, now_at + make_interval(secs => p_pause_seconds));
    update private.ai_limiter set paused_until = limiter.paused_until, updated_at = now_at where id;
  end if;
  if verdict is not null then
    -- Deferred for the budget: ask again soon, when calls in flight may have settled.
    return query select verdict, p_reservation, (case when verdict = 'deferred' then 0.5 else 0 end)::double precision;
    return;
  end if;
  start_at := greatest(now_at, limiter.paused_until);
  if p_requests_per_minute is not null then
    start_at := greatest(start_at, limiter.next_request_at);
  end if;
  if p_tokens_per_minute is not null then
    -- Starts once the bucket holds this try's worst case (a try larger than the bucket: once it is full).
    start_at := greatest(start_at, limiter.tokens_full_at - make_interval(
      secs => (p_tokens_per_minute - least(p_tokens, p_tokens_per_minute)) / token_rate));
  end if;
  if start_at > now_at + make_interval(secs => p_wait_limit_seconds) then
    return query select 'deferred'::text, p_reservation, extract(epoch from start_at - now_at)::double precision;
    return;
  end if;
  if p_requests_per_minute is not null or p_tokens_per_minute is not null then
    update private.ai_limiter set
      next_request_at = case when p_requests_per_minute is null then next_request_at
                             else start_at + make_interval(secs => 60.0 / p_requests_per_minute) end,
      tokens_full_at = case when p_tokens_per_minute is null then tokens_full_at
                            else greatest(tokens_full_at, start_at) + make_interval(secs => p_tokens / token_rate) end,
      updated_at = now_at
    where id;
  end if;

  if p_reservation is not null then
    update private.ai_reservation r
    set requests = r.requests + 1, tokens = r.tokens + p_tokens, cost_usd = r.cost_usd + p_cost_usd
    where r.id = p_reservation
    returning r.id into admitted;
  end if;
  if admitted is null then
    insert into private.ai_reservation (msg_id, read_ct, user_id, day, requests, tokens, cost_usd)
    values (p_msg_id, p_read_ct, job_user, today, 1, p_tokens, p_cost_usd)
    returning id into admitted;
  end if;
  return query select 'admitted'::text, admitted, greatest(0, extract(epoch from start_at - now_at))::double precision;
end;
$$;
comment on function private.admit_ai_call(bigint, integer, bigint, bigint, numeric, double precision, integer, bigint, bigint, numeric, double precision) is
  'Admits one try of an AI call for the job holding lease (p_msg_id, p_read_ct): admitted (start after wait_seconds, reservation to settle), deferred (nothing reserved; ask again, wait_seconds is a hint), user_budget_exhausted, daily_budget_exhausted or lease_lost. worker/admission.py is its only caller.';

create function private.settle_ai_call(
  p_reservation bigint,
  p_requests integer,
  p_prompt_tokens bigint,
  p_completion_tokens bigint,
  p_cost_usd numeric,
  p_tokens_per_minute bigint,
  p_user_daily_tokens bigint,
  p_daily_budget_usd numeric,
  p_pause_seconds double precision
)
returns boolean
language plpgsql
security definer  -- writes usage, reservations and the limiter, which the worker may not touch
set search_path = ''
as $$
declare
  now_at timestamptz := pg_catalog.clock_timestamp();
  reserved private.ai_reservation%rowtype;
  used bigint := p_prompt_tokens + p_completion_tokens;
begin
  delete from private.ai_reservation r where r.id = p_reservation returning r.* into reserved;
  if not found then
    return false;
  end if;
  -- Unsettled reservations stopped counting when their lease ended; their rows go after a day (looked
  -- for at one settle in a hundred: they are rare, and the look costs every call).
  if reserved.id % 100 = 0 then
    delete from private.ai_reservation r where r.created_at < now_at - interval '1 day';
  end if;

  -- One lock order everywhere: user row, project row, limiter (see admit_ai_call).
  if used > 0 then
    insert into public.ai_usage as u (user_id, day, tokens, token_limit, updated_at)
    values (reserved.user_id, reserved.day, used, p_user_daily_tokens, now_at)
    on conflict (user_id, day) do update
      set tokens = u.tokens + excluded.tokens, token_limit = excluded.token_limit, updated_at = excluded.updated_at;
  end if;
  if p_requests > 0 then
    insert into private.ai_project_usage as p
      (day, requests, prompt_tokens, completion_tokens, cost_usd, budget_usd, updated_at)
    values (reserved.day, p_requests, p_prompt_tokens, p_completion_tokens, p_cost_usd, p_daily_budget_usd, now_at)
    on conflict (day) do update
      set requests = p.requests + excluded.requests, prompt_tokens = p.prompt_tokens + excluded.prompt_tokens,
          completion_tokens = p.completion_tokens + excluded.completion_tokens,
          cost_usd = p.cost_usd + excluded.cost_usd, budget_usd = excluded.budget_usd, updated_at = excluded.updated_at;
  end if;
  -- Give the token bucket back what the tries reserved and did not use; apply the provider's pause.
  if (p_tokens_per_minute is not null and reserved.tokens > used) or p_pause_seconds > 0 then
    update private.ai_limiter set
      tokens_full_at = case when p_tokens_per_minute is not null and reserved.tokens > used
                            then tokens_full_at - make_interval(
                              secs => (reserved.tokens - used) / (p_tokens_per_minute / 60.0))
                            else tokens_full_at end,
      paused_until = case when p_pause_seconds > 0
                          then greatest(paused_until, now_at + make_interval(secs => p_pause_seconds))
                          else paused_until end,
      updated_at = now_at
    where id;
  end if;
  return true;
end;
$$;
comment on function private.settle_ai_call(bigint, integer, bigint, bigint, numeric, bigint, bigint, numeric, double precision) is
  'Ends an admitted AI call: records the usage the provider reported (public.ai_usage, private.ai_project_usage), releases its reservation, returns unused tokens to the bucket and applies the provider''s pause. False when the reservation is gone.';

create function private.ai_usage_today()
returns table (requests bigint, tokens bigint, cost_usd numeric)
language sql
stable
security definer  -- reads private.ai_project_usage, which the worker may not read
set search_path = ''
as $$
  select coalesce(sum(p.requests), 0)::bigint, coalesce(sum(p.prompt_tokens + p.completion_tokens), 0)::bigint,
         coalesce(sum(p.cost_usd), 0)
  from private.ai_project_usage p
  where p.day = (pg_catalog.now() at time zone 'UTC')::date
$$;
comment on function private.ai_usage_today() is
  'The project''s settled AI usage of the current UTC day, for the worker''s metrics (assessment_ai_daily_spend_usd).';

revoke execute on function
  private.admit_ai_call(bigint, integer, bigint, bigint, numeric, double precision, integer, bigint, bigint, numeric, double precision),
  private.settle_ai_call(bigint, integer, bigint, bigint, numeric, bigint, bigint, numeric, double precision),
  private.ai_usage_today()
  from public, anon, authenticated, service_role;
grant usage on schema private to assessment_worker;
grant execute on function
  private.admit_ai_call(bigint, integer, bigint, bigint, numeric, double precision, integer, bigint, bigint, numeric, double precision),
  private.settle_ai_call(bigint, integer, bigint, bigint, numeric, bigint, bigint, numeric, double precision),
  private.ai_usage_today()
  to assessment_worker;
