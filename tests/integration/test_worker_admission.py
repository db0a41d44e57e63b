"""The worker with admission (in this event loop, the real database and a real HTTP fake): what each request
tells the provider, waiting instead of failing, budgets, a limiter the database cannot run, and shutdown.
Two worker processes sharing one account: tests/processes/test_provider_limits.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import sql

from devkit import fake_openai
from devkit.fake_openai import FakeOpenAI
from devkit.localdb import worker_url
from devkit.samples import answers, submit
from devkit.users import create_user
from tests.factories import assessment
from tests.worker_support import eventually, fetch, recommender_for, running_worker, settings_for, wait_for_status
from worker.ai import Caller, Recommender
from worker.metrics import REGISTRY
from worker.prompt import build_prompt

pytestmark = pytest.mark.usefixtures("empty_queues")


def careers(seed: int, count: int) -> list[dict[str, object]]:
    return [{"assessment_type": "career", "answers": answers(seed + i)} for i in range(count)]


async def test_a_request_carries_the_completion_cap_and_the_end_user_as_a_keyed_hash(fake: FakeOpenAI) -> None:
    user = uuid.uuid4()
    key = b"k" * 32
    recommender = Recommender(api_key="sk-test", base_url=fake.base_url, model="m", max_completion_tokens=1234,
                              end_user_key=key)
    try:
        await recommender.recommend(build_prompt(assessment()), Caller(user))
        await recommender.recommend(build_prompt(assessment()), Caller(user))
        await recommender.recommend(build_prompt(assessment()))
    finally:
        await recommender.aclose()
    first, second, anonymous = (request.body for request in fake.requests)
    expected = hmac.new(key, str(user).encode(), hashlib.sha256).hexdigest()
    assert first["max_completion_tokens"] == 1234
    assert first["safety_identifier"] == first["user"] == expected == second["safety_identifier"]
    assert len(expected) == 64  # OpenAI's limit
    assert str(user) not in json.dumps(first) and user.hex not in json.dumps(first)
    assert "safety_identifier" not in anonymous and "user" not in anonymous


async def test_without_a_key_of_its_own_the_hash_is_keyed_from_the_api_key(fake: FakeOpenAI) -> None:
    user = uuid.uuid4()
    ids = []
    for api_key in ("sk-one", "sk-one", "sk-two"):
        recommender = Recommender(api_key=api_key, base_url=fake.base_url, model="m")
        try:
            ids.append(recommender.end_user_id(user))
        finally:
            await recommender.aclose()
    assert ids[0] == ids[1] != ids[2]
    assert ids[0] != hashlib.sha256(str(user).encode()).hexdigest()  # keyed, not a plain hash anyone can redo


async def test_a_job_that_cannot_start_within_the_max_wait_gets_provider_capacity_fallback(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    ids = submit(admin, create_user(admin), careers(31, 2))
    settings = settings_for(database_url, cache_ttl_seconds=0, ai_requests_per_minute=1, ai_max_wait_seconds=1)
    started = time.monotonic()
    async with running_worker(settings, recommender_for(settings, fake.base_url)):
        rows = await wait_for_status(database_url, ids, timeout=20)
    assert sorted((row["source"], row["fallback_reason"]) for row in rows) == [
        ("ai", None), ("fallback", "provider_capacity")]
    assert len(fake.requests) == 1  # one start a minute: the other job never called
    assert time.monotonic() - started < 10


async def test_a_user_over_budget_gets_fallback_without_a_call_and_other_users_do_not(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    spent, fresh = create_user(admin), create_user(admin)
    admin.execute("insert into public.ai_usage (user_id, day, tokens) values (%s, (now() at time zone 'UTC')::date, "
                  "50000)", (spent,))
    [over] = submit(admin, spent, [{"assessment_type": "career", "answers": answers(41)}])
    [under] = submit(admin, fresh, [{"assessment_type": "career", "answers": answers(42)}])
    settings = settings_for(database_url, cache_ttl_seconds=0, ai_user_daily_tokens=50_000)
    async with running_worker(settings, recommender_for(settings, fake.base_url)):
        rows = {row["id"]: row for row in await wait_for_status(database_url, [over, under])}
    assert (rows[over]["source"], rows[over]["fallback_reason"]) == ("fallback", "user_budget_exhausted")
    assert (rows[under]["source"], rows[under]["fallback_reason"]) == ("ai", None)
    assert len(fake.requests) == 1
    [usage] = await fetch(database_url, "select tokens, token_limit from public.ai_usage where user_id = %s", (fresh,))
    assert usage["token_limit"] == 50_000 and 0 < usage["tokens"] < 50_000


async def test_a_cache_hit_is_neither_admitted_nor_counted(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    user = create_user(admin)
    body = {"assessment_type": "career", "answers": answers(int(uuid.uuid4().int % 10**9))}
    settings = settings_for(database_url, cache_ttl_seconds=3600, ai_user_daily_tokens=50_000)
    async with running_worker(settings, recommender_for(settings, fake.base_url)):
        await wait_for_status(database_url, submit(admin, user, [body]))
        [before] = await fetch(database_url, "select tokens from public.ai_usage where user_id = %s", (user,))
        [again] = await wait_for_status(database_url, submit(admin, user, [body]))
        [after] = await fetch(database_url, "select tokens from public.ai_usage where user_id = %s", (user,))
    assert again["source"] == "cache" and len(fake.requests) == 1
    assert before == after


def _errors(operation: str) -> float:
    return REGISTRY.get_sample_value("assessment_database_errors_total", {"operation": operation, "kind": "transient"}
                                     ) or 0.0


async def test_a_limiter_the_database_cannot_run_makes_the_job_wait_never_call_unmetered(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    """Every admission waits at most 100 ms for a lock (the role's lock_timeout), and the limiter's table is
    locked: each try fails with lock_not_available, a transient error, and the job asks again."""
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(51)}])
    settings = settings_for(database_url, cache_ttl_seconds=0)
    before = _errors("admit")
    [previous] = admin.execute(  # the migrations' lock_timeout (20261208100300), restored below
        "select c.setting from pg_db_role_setting s, unnest(s.setconfig) as c(setting) "
        "where s.setrole = 'assessment_worker'::regrole and s.setdatabase = 0 and c.setting like 'lock_timeout=%'"
    ).fetchone() or (None,)
    admin.execute("alter role assessment_worker set lock_timeout = '100ms'")
    try:
        with psycopg.connect(database_url) as blocker:
            blocker.execute("lock table private.ai_limiter in access exclusive mode")
            async with running_worker(settings, recommender_for(settings, fake.base_url)):
                assert await eventually(lambda: _errors("admit") >= before + 3, timeout=15)
                assert fake.requests == []  # no call without the database's yes
                [row] = await fetch(database_url, "select status::text from public.test_assessment where id = %s",
                                    (assessment_id,))
                assert row["status"] == "processing"
                blocker.rollback()  # the database can decide again
                [done] = await wait_for_status(database_url, [assessment_id], timeout=20)
    finally:
        if previous is None:
            admin.execute("alter role assessment_worker reset lock_timeout")
        else:
            admin.execute(sql.SQL("alter role assessment_worker set lock_timeout = {}").format(
                sql.Literal(previous.split("=", 1)[1])))
    assert (done["source"], len(fake.requests)) == ("ai", 1)


async def test_shutdown_gives_back_jobs_waiting_for_capacity_at_once(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    ids = submit(admin, create_user(admin), careers(61, 3))
    settings = settings_for(database_url, cache_ttl_seconds=0, ai_requests_per_minute=1, lease_seconds=30,
                            ai_deadline_seconds=10)  # a grace of 10 s
    async with running_worker(settings, recommender_for(settings, fake.base_url)) as consumer:
        await wait_for_status(database_url, ids, statuses=("completed", "processing"))
        assert await eventually(lambda: consumer.gate.waiting == 2, timeout=10)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 3  # not the 10 s grace, nor the minute's wait
    rows = await fetch(database_url, "select q.vt <= clock_timestamp() as visible from pgmq.q_assessment_submitted q "
                       "where (q.message ->> 'assessment_id')::uuid = any(%s)", (ids,))
    assert [row["visible"] for row in rows] == [True, True]  # given back for another worker, now
    assert len(fake.requests) == 1


async def test_the_worker_role_sees_only_the_admission_and_draft_functions(database_url: str) -> None:
    with psycopg.connect(worker_url(database_url), autocommit=True) as conn:
        functions = {row[0] for row in conn.execute(
            "select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
            "where n.nspname = 'private' and has_function_privilege(p.oid, 'execute')")}
    # recommendations_are_valid: the check constraint on results (20261126100100); drafts: 20261208160000.
    assert functions == {"admit_ai_call", "settle_ai_call", "ai_usage_today", "recommendations_are_valid",
                         "broadcast_recommendation_drafts"}


async def test_a_429_is_recorded_for_every_replica_and_retried_after_it(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    fake.script(fake_openai.status(429, retry_after_ms=1500))
    [assessment_id] = submit(admin, create_user(admin), careers(71, 1))
    settings = settings_for(database_url, cache_ttl_seconds=0)
    async with running_worker(settings, recommender_for(settings, fake.base_url)):
        [row] = await wait_for_status(database_url, [assessment_id], timeout=20)
    [limiter] = await fetch(database_url, "select paused_until - %s::timestamptz as paused from private.ai_limiter",
                            (datetime.fromtimestamp(time.time() - (time.monotonic() - fake.requests[0].at), UTC),))
    assert row["source"] == "ai" and len(fake.requests) == 2
    assert 1.4 <= limiter["paused"].total_seconds() <= 1.7  # the shared pause: 1.5 s after the 429
    assert fake.requests[1].at - fake.requests[0].at >= 1.45
