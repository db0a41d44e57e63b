"""The admission rules in the database (supabase/migrations/20261208140000_admit_ai_calls.sql), called as the
worker calls them (worker/db.py, as assessment_worker): pacing, the shared pause, budgets with reservations
that live as long as a lease, the usage a user may read, and what nobody else may do."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from devkit.localdb import worker_url
from devkit.postgrest import acting_as
from devkit.users import create_user
from worker.db import Admitted, AiLimits, Database, Message

pytestmark = pytest.mark.usefixtures("empty_queues")

ONE = 6000  # a try's worst case in tokens in these tests


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(worker_url(database_url), size=1)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def fresh_project_day(admin: psycopg.Connection) -> None:
    """The project's budget counts the whole day; these tests start it from nothing."""
    admin.execute("delete from private.ai_project_usage where day = (now() at time zone 'UTC')::date")
    admin.execute("delete from private.ai_reservation")


def lease(admin: psycopg.Connection, user_id: uuid.UUID) -> Message:
    """A job's message for `user_id`, leased for a minute as take_jobs would lease it."""
    event = {"type": "assessment_submitted", "version": 1, "assessment_id": str(uuid.uuid4()),
             "user_id": str(user_id), "submitted_at": "2026-12-08T00:00:00Z"}
    sent = admin.execute("select pgmq.send('assessment_submitted', %s::jsonb)", (json.dumps(event),)).fetchone()
    assert sent is not None
    row = admin.execute(
        "update pgmq.q_assessment_submitted set vt = clock_timestamp() + interval '1 minute', read_ct = read_ct + 1 "
        "where msg_id = %s returning msg_id, read_ct", (sent[0],)).fetchone()
    assert row is not None
    return Message(row[0], row[1], datetime.now(UTC), event)


async def admit(db: Database, message: Message, limits: AiLimits, *, tokens: int = ONE, cost: float = 0.01,
                wait_limit: float = 10.0, pause: float | None = None, reservation: int | None = None) -> Admitted:
    return await db.admit_ai_call(message, limits, reservation=reservation, tokens=tokens, cost_usd=cost,
                                  wait_limit_seconds=wait_limit, pause_seconds=pause)


async def settle(db: Database, answer: Admitted, limits: AiLimits, tokens: int, cost: float = 0.0,
                 pause: float | None = None) -> bool:
    assert answer.reservation is not None
    return await db.settle_ai_call(answer.reservation, limits, requests=1, prompt_tokens=tokens // 2,
                                   completion_tokens=tokens - tokens // 2, cost_usd=cost, pause_seconds=pause)


async def test_requests_a_minute_pace_the_starts_of_every_caller(admin: psycopg.Connection, db: Database) -> None:
    limits = AiLimits(requests_per_minute=120)
    jobs = [lease(admin, create_user(admin)) for _ in range(3)]
    waits = [(await admit(db, job, limits)).wait_seconds for job in jobs]
    assert waits[0] == pytest.approx(0.0, abs=0.05)
    assert waits[1] == pytest.approx(0.5, abs=0.05) and waits[2] == pytest.approx(1.0, abs=0.05)
    # A start beyond what the caller may wait is not given: nothing is reserved or spent.
    late = await admit(db, lease(admin, create_user(admin)), limits, wait_limit=1.0)
    assert (late.decision, late.reservation) == ("deferred", None) and late.wait_seconds == pytest.approx(1.5, abs=0.05)
    assert (await admit(db, jobs[0], limits, wait_limit=2.0)).wait_seconds == pytest.approx(1.5, abs=0.05)


async def test_tokens_a_minute_pace_by_the_worst_case_and_get_back_what_a_call_did_not_use(
    admin: psycopg.Connection, db: Database
) -> None:
    limits = AiLimits(tokens_per_minute=60_000)  # 1,000 a second, a bucket of 60,000
    job = lease(admin, create_user(admin))
    first = await admit(db, job, limits, tokens=30_000)
    second = await admit(db, job, limits, tokens=30_000)
    assert first.wait_seconds == pytest.approx(0, abs=0.05) and second.wait_seconds == pytest.approx(0, abs=0.05)
    third = await admit(db, job, limits, tokens=30_000)
    assert third.decision == "deferred" and third.wait_seconds == pytest.approx(30, abs=0.5)
    assert await settle(db, first, limits, tokens=1_000)  # 29,000 reserved and not used come back
    assert (await admit(db, job, limits, tokens=30_000)).wait_seconds == pytest.approx(1, abs=0.5)


async def test_a_pause_the_provider_asked_for_holds_every_caller(admin: psycopg.Connection, db: Database) -> None:
    limits = AiLimits()
    asked = await admit(db, lease(admin, create_user(admin)), limits, pause=1.5)
    other = await admit(db, lease(admin, create_user(admin)), limits)
    assert asked.wait_seconds == pytest.approx(1.5, abs=0.1) and other.wait_seconds == pytest.approx(1.5, abs=0.1)
    assert await settle(db, other, limits, tokens=100, pause=3.0)  # x-ratelimit-remaining at 0 after a call
    assert (await admit(db, lease(admin, create_user(admin)), limits)).wait_seconds == pytest.approx(3.0, abs=0.1)


async def test_a_users_budget_waits_for_calls_in_flight_refuses_when_spent_and_spares_other_users(
    admin: psycopg.Connection, db: Database
) -> None:
    limits = AiLimits(user_daily_tokens=10_000)
    user = create_user(admin)
    job = lease(admin, user)
    first = await admit(db, job, limits)
    assert first.decision == "admitted"
    # 6,000 in flight + 6,000 > 10,000: wait for it to settle; another user is not affected.
    assert (await admit(db, lease(admin, user), limits)).decision == "deferred"
    assert (await admit(db, lease(admin, create_user(admin)), limits)).decision == "admitted"
    assert await settle(db, first, limits, tokens=3_000)
    second = await admit(db, lease(admin, user), limits)
    assert second.decision == "admitted"
    assert await settle(db, second, limits, tokens=2_000)
    # 5,000 used: the worst case of another call (6,000) no longer fits, even with nothing in flight.
    assert (await admit(db, lease(admin, user), limits)).decision == "user_budget_exhausted"
    assert (await admit(db, lease(admin, user), limits, tokens=4_000)).decision == "admitted"


@pytest.mark.usefixtures("fresh_project_day")
async def test_the_projects_budget_counts_every_users_spend_and_calls_in_flight(
    admin: psycopg.Connection, db: Database
) -> None:
    limits = AiLimits(daily_budget_usd=1.0)
    first = await admit(db, lease(admin, create_user(admin)), limits, cost=0.6)
    assert first.decision == "admitted"
    assert (await admit(db, lease(admin, create_user(admin)), limits, cost=0.6)).decision == "deferred"
    assert await settle(db, first, limits, tokens=1000, cost=0.5)
    assert (await admit(db, lease(admin, create_user(admin)), limits, cost=0.6)).decision == "daily_budget_exhausted"
    assert (await admit(db, lease(admin, create_user(admin)), limits, cost=0.4)).decision == "admitted"
    assert (await db.ai_usage_today()).cost_usd == pytest.approx(0.5)


async def test_a_reservation_counts_only_while_its_lease_lasts(admin: psycopg.Connection, db: Database) -> None:
    limits = AiLimits(user_daily_tokens=10_000)
    user = create_user(admin)
    killed = lease(admin, user)
    assert (await admit(db, killed, limits)).decision == "admitted"
    assert (await admit(db, lease(admin, user), limits)).decision == "deferred"
    # The worker holding it dies: nobody extends its lease, which runs out.
    admin.execute("update pgmq.q_assessment_submitted set vt = clock_timestamp() where msg_id = %s", (killed.msg_id,))
    assert (await admit(db, lease(admin, user), limits)).decision == "admitted"


async def test_a_job_whose_message_was_delivered_again_is_not_admitted(admin: psycopg.Connection, db: Database) -> None:
    job = lease(admin, create_user(admin))
    stale = Message(job.msg_id, job.read_ct - 1, job.enqueued_at, job.body)
    assert (await admit(db, stale, AiLimits())).decision == "lease_lost"
    assert (await admit(db, Message(-1, 1, job.enqueued_at, {}), AiLimits())).decision == "lease_lost"


async def test_a_retry_adds_to_its_reservation_and_a_spent_budget_refuses_it(
    admin: psycopg.Connection, db: Database
) -> None:
    limits = AiLimits(user_daily_tokens=10_000)
    job = lease(admin, create_user(admin))
    first = await admit(db, job, limits, tokens=4_000)
    retry = await admit(db, job, limits, tokens=4_000, reservation=first.reservation)
    assert (retry.decision, retry.reservation) == ("admitted", first.reservation)
    # Two tries reserved (8,000): a third worst case does not fit in 10,000.
    third = await admit(db, job, limits, tokens=4_000, reservation=first.reservation)
    assert third.decision == "user_budget_exhausted"
    assert await settle(db, retry, limits, tokens=2_500)
    assert not await settle(db, retry, limits, tokens=2_500)  # settled once only


def usage_rows(admin: psycopg.Connection, reader: uuid.UUID | None, role: str = "authenticated"
               ) -> list[dict[str, Any]]:
    with acting_as(admin, reader, role) as cur:
        return cur.execute("select user_id, tokens, token_limit from public.ai_usage").fetchall()


async def test_a_user_reads_only_their_own_usage(admin: psycopg.Connection, db: Database) -> None:
    limits = AiLimits(user_daily_tokens=50_000)
    owner, other = create_user(admin), create_user(admin)
    answer = await admit(db, lease(admin, owner), limits)
    assert await settle(db, answer, limits, tokens=1_234)
    assert usage_rows(admin, owner) == [{"user_id": owner, "tokens": 1_234, "token_limit": 50_000}]
    assert usage_rows(admin, other) == []
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        usage_rows(admin, None, "anon")
    with acting_as(admin, owner) as cur, pytest.raises(psycopg.errors.InsufficientPrivilege):
        cur.execute("update public.ai_usage set tokens = 0 where user_id = %s", (owner,))


@pytest.mark.parametrize("statement", [
    "select * from private.admit_ai_call(1, 1, null, 1, 0, 1, null, null, null, null, 3600)",
    "select private.settle_ai_call(1, 1, 0, 0, 0, null, null, null, 3600)",
    "select * from private.ai_usage_today()",
])
def test_users_cannot_call_the_admission(admin: psycopg.Connection, statement: str) -> None:
    """A user pausing every replica for an hour, or spending the budget, is the attack."""
    with acting_as(admin, create_user(admin)) as cur, pytest.raises(psycopg.errors.InsufficientPrivilege):
        cur.execute(statement)


@pytest.mark.parametrize("table", ["private.ai_limiter", "private.ai_reservation", "private.ai_project_usage",
                                   "public.ai_usage"])
async def test_the_worker_changes_usage_only_through_the_functions(database_url: str, table: str) -> None:
    with psycopg.connect(worker_url(database_url), autocommit=True) as conn, pytest.raises(
            psycopg.errors.InsufficientPrivilege):
        conn.execute(f"delete from {table}")  # a fixed table name from the parameters
