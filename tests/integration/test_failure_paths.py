"""Failure paths that stay correct under races, shutdown and operator actions: fencing, lock order, the
order of a failed job's bookkeeping, shutdown during a commit, supervision, and classified errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
import pytest

from devkit.fake_openai import FakeOpenAI, delay
from devkit.localdb import worker_url
from devkit.samples import answers, submit
from devkit.users import create_user
from tests.worker_support import eventually, fetch, recommender_for, running_worker, settings_for, wait_for_status
from worker import health as health_module
from worker.consumer import Consumer
from worker.db import Database, Leased, Message, ResultRow
from worker.exceptions import BackgroundTaskDied
from worker.failures import dead_letter, fail_attempt
from worker.fallback import FALLBACK_VERSION, fallback_recommendations
from worker.health import Health
from worker.leases import LeaseKeeper
from worker.metrics import REGISTRY
from worker.models import Assessment, Outcome

pytestmark = pytest.mark.usefixtures("empty_queues")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(worker_url(database_url), size=2)
    yield database
    await database.close()


def _fenced(operation: str) -> float:
    return REGISTRY.get_sample_value("assessment_fenced_writes_total", {"operation": operation}) or 0.0


async def _take(db: Database, lease_seconds: int = 30) -> Leased:
    [leased] = await db.take_jobs(10, lease_seconds, max_reads=15, max_attempts=5, in_flight=[])
    return leased


def _result(leased: Leased) -> ResultRow:
    assert leased.assessment is not None
    assessment = Assessment.model_validate(leased.assessment)
    outcome = Outcome(recommendations=fallback_recommendations(assessment), source="fallback",
                      fallback_reason="not_configured", prompt_version=FALLBACK_VERSION, latency_ms=1)
    return ResultRow(leased.message, assessment.id, outcome)


async def _queue_row(database_url: str, msg_id: int) -> dict[str, Any] | None:
    rows = await fetch(database_url, "select read_ct, vt - clock_timestamp() as left "
                       "from pgmq.q_assessment_submitted where msg_id = %s", (msg_id,))
    return rows[0] if rows else None


# ---------------------------------------------------------------------------------------------- fencing


async def test_a_worker_whose_lease_lapsed_and_was_taken_changes_nothing(
    admin: psycopg.Connection, database_url: str, db: Database
) -> None:
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(901)}])
    first = await _take(db, lease_seconds=1)  # worker A; its lease lapses (it stalled, say)
    await asyncio.sleep(1.2)
    second = await _take(db)  # worker B takes the job over
    assert (first.state, second.state) == ("started", "started")
    assert second.message.read_ct == first.message.read_ct + 1
    stale = first.message
    before = {op: _fenced(op) for op in ("dead_letter", "record_failure", "commit")}

    # Worker A's every write changes nothing.
    assert await db.extend_leases([stale], 600) == set()
    assert await db.acknowledge([stale]) == set()
    await fail_attempt(db, stale, assessment_id, 1, 5, "RuntimeError: boom")  # record_failure
    await dead_letter(db, stale, assessment_id, "attempts exhausted: 5 of 5")
    assert await db.complete_jobs([_result(first)]) == {stale.msg_id: "lease_lost"}

    [row] = await fetch(database_url, "select status::text, last_error, attempts from public.test_assessment "
                        "where id = %s", (assessment_id,))
    assert row == {"status": "processing", "last_error": None, "attempts": 2}
    queue = await _queue_row(database_url, stale.msg_id)
    assert queue is not None and queue["read_ct"] == second.message.read_ct
    assert 20 < queue["left"].total_seconds() <= 30  # B's lease, neither moved by A nor cut short
    assert await fetch(database_url, "select 1 from pgmq.q_assessment_submitted_dlq") == []
    assert await fetch(database_url, "select 1 from public.result_test where assessment_id = %s",
                       (assessment_id,)) == []
    assert {op: _fenced(op) - before[op] for op in before} == {"dead_letter": 1, "record_failure": 1, "commit": 0}

    # Worker B, the holder, completes it.
    assert await db.complete_jobs([_result(second)]) == {stale.msg_id: "completed"}
    assert await _queue_row(database_url, stale.msg_id) is None


async def test_the_lease_keeper_drops_a_lease_another_worker_took_and_counts_it(
    admin: psycopg.Connection, database_url: str, db: Database
) -> None:
    submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(902)}])
    first = await _take(db, lease_seconds=1)
    await asyncio.sleep(1.2)
    second = await _take(db)
    keeper = LeaseKeeper(db, 30)
    before = _fenced("extend_leases")
    async with keeper.hold(first.message):
        await keeper.extend_once()
        await keeper.extend_once()  # dropped after the first round: counted once
    assert _fenced("extend_leases") == before + 1
    queue = await _queue_row(database_url, first.message.msg_id)
    assert queue is not None and queue["read_ct"] == second.message.read_ct


# ------------------------------------------------------------------------------------------- lock order


async def test_lease_extension_and_commit_lock_queue_rows_in_one_order(
    admin: psycopg.Connection, database_url: str, db: Database
) -> None:
    """Today's deadlock: a commit archiving [m1, m2] and a lease extension of [m2, m1] each hold one row
    and wait for the other. Both lock in msg_id order now, so one simply waits for the other."""
    submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(903 + i)} for i in range(2)])
    taken = await db.take_jobs(10, 30, max_reads=15, max_attempts=5, in_flight=[])
    first, second = sorted(taken, key=lambda leased: leased.message.msg_id)
    async with await psycopg.AsyncConnection.connect(database_url) as blocker:
        # Hold the first row, so both statements queue up behind it with whatever they have locked so far.
        await blocker.execute("select 1 from pgmq.q_assessment_submitted where msg_id = %s for update",
                              (first.message.msg_id,))
        other = await Database.open(worker_url(database_url), size=1)
        try:
            commit = asyncio.create_task(db.complete_jobs([_result(first), _result(second)]))
            await asyncio.sleep(0.3)
            extend = asyncio.create_task(other.extend_leases([second.message, first.message], 30))
            await asyncio.sleep(0.3)
            await blocker.rollback()
            outcomes, held = await asyncio.wait_for(asyncio.gather(commit, extend), timeout=10)
        finally:
            await other.close()
    assert outcomes == {first.message.msg_id: "completed", second.message.msg_id: "completed"}
    assert held == set()  # archived by the commit that went first: nothing left to extend


# ------------------------------------------------------------------------- a failed job's bookkeeping


class _SlowExtensions(Database):
    """The real database, with lease extensions that take a while (a slow round in progress)."""

    async def extend_leases(self, messages: Sequence[Message], lease_seconds: int) -> set[int]:
        await asyncio.sleep(0.5)
        return await super().extend_leases(messages, lease_seconds)


async def test_a_failure_recorded_after_leaving_the_lease_keeper_keeps_its_retry_backoff(
    admin: psycopg.Connection, database_url: str
) -> None:
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(905)}])
    db = await _SlowExtensions.open(worker_url(database_url), size=2)
    try:
        leased = await _take(db, lease_seconds=30)
        keeper = LeaseKeeper(db, 30)
        async with keeper.hold(leased.message):
            extension = asyncio.create_task(keeper.extend_once())
            await asyncio.sleep(0.1)  # the round has taken this lease and is on its way to the database
        # Leaving hold() waited for that round, so the backoff written now is the last word.
        await fail_attempt(db, leased.message, assessment_id, 1, 5, "RuntimeError: boom")
        await extension
    finally:
        await db.close()
    queue = await _queue_row(database_url, leased.message.msg_id)
    assert queue is not None and 0 < queue["left"].total_seconds() <= 2  # retry_delay_seconds(1), not 30


# ------------------------------------------------------------------------------------------- shutdown


async def test_shutdown_lets_a_commit_under_way_end_before_releasing_its_lease(
    admin: psycopg.Connection, database_url: str
) -> None:
    """The grace runs out while a job's commit waits for a lock: the job is cancelled, its commit is not,
    and its lease is released only after: the assessment completes with its one AI call."""
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(906)}])
    [row] = await fetch(database_url, "select msg_id from pgmq.q_assessment_submitted")
    async with FakeOpenAI(default=delay(0.5)) as ai, \
            await psycopg.AsyncConnection.connect(database_url) as blocker:
        settings = settings_for(database_url, cache_ttl_seconds=0, ai_deadline_seconds=1,
                                shutdown_grace_seconds=1)
        async with running_worker(settings, recommender_for(settings, ai.base_url)) as consumer:
            released: list[tuple[int, bool]] = []  # (msg_id, its commit still under way) per released lease
            release = consumer.db.release_leases

            async def spy(messages: Sequence[Message]) -> set[int]:
                released.extend((m.msg_id, consumer.committer.committing(m.msg_id)) for m in messages)
                return await release(messages)

            consumer.db.release_leases = spy  # type: ignore[method-assign]
            assert await eventually(lambda: bool(ai.requests), timeout=5)
            await blocker.execute("select 1 from pgmq.q_assessment_submitted where msg_id = %s for update",
                                  (row["msg_id"],))
            # The AI has answered and the commit has started; it waits for the row.
            assert await eventually(lambda: consumer.committer.commits_under_way > 0, timeout=5)
            # Shorter than the worker's lock_timeout (2 s), longer than the grace (1 s).
            asyncio.get_running_loop().call_later(1.5, lambda: asyncio.ensure_future(blocker.rollback()))
        # running_worker has stopped the worker: grace 1 s, then the lock went away at 1.5 s.
    [done] = await wait_for_status(database_url, [assessment_id], timeout=5)
    assert (done["source"], done["attempts"], done["results"]) == ("ai", 1, 1)
    assert len(ai.requests) == 1
    assert (row["msg_id"], True) not in released  # no lease was given back while its commit ran


# ----------------------------------------------------------------------------------------- supervision


async def test_a_background_loop_that_dies_stops_the_worker_naming_it(
    database_url: str, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Health) -> None:
        await asyncio.sleep(0.2)
        raise RuntimeError("a bug in the health loop")

    monkeypatch.setattr(Health, "run", broken)
    settings = settings_for(database_url)
    db = await Database.open(settings.database_url, size=2)
    try:
        consumer = Consumer(settings, db, recommender_for(settings, fake.base_url))
        with pytest.raises(BackgroundTaskDied, match=r"health stopped .*a bug in the health loop"):
            await asyncio.wait_for(consumer.run(asyncio.Event()), timeout=10)
        assert not consumer.running
    finally:
        await db.close()


# --------------------------------------------------------------------------------------- error classes


async def test_a_missing_grant_shows_as_such_in_ready_metrics_and_log(
    admin: psycopg.Connection, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin.execute("revoke select on pgmq.q_assessment_submitted from assessment_worker")
    try:
        db = await Database.open(worker_url(database_url), size=1)
        try:
            before = REGISTRY.get_sample_value("assessment_database_errors_total",
                                               {"operation": "readiness", "kind": "permanent"}) or 0.0
            health = Health(db)
            with caplog.at_level(logging.WARNING, logger=health_module.__name__):
                await health.check()
        finally:
            await db.close()
    finally:
        admin.execute("grant select on pgmq.q_assessment_submitted to assessment_worker")
    assert health.not_ready_reason() == ("the worker's role lacks a privilege (grant it: docs/deployment.md, "
                                         "the worker's role)")
    assert REGISTRY.get_sample_value("assessment_database_errors_total",
                                     {"operation": "readiness", "kind": "permanent"}) == before + 1
    assert "lacks a privilege" in caplog.text and "unreachable" not in caplog.text


async def test_a_missing_grant_is_not_reported_as_retrying(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(907)}])
    admin.execute("revoke update on pgmq.q_assessment_submitted from assessment_worker")
    try:
        settings = settings_for(database_url)
        with caplog.at_level(logging.WARNING):
            async with running_worker(settings, recommender_for(settings, fake.base_url)):
                await eventually(lambda: "cannot read or start jobs" in caplog.text, timeout=5)
    finally:
        admin.execute("grant update on pgmq.q_assessment_submitted to assessment_worker")
    lines = [r for r in caplog.records if r.getMessage().startswith("cannot read or start jobs")]
    assert lines and all(r.levelno == logging.ERROR and "retrying" not in r.getMessage() for r in lines)
    assert "lacks a privilege" in lines[0].getMessage()
    assert fake.requests == []



# ------------------------------------------------------------------------------ duplicates and requeue


async def test_two_messages_for_one_assessment_in_one_batch_start_it_once(
    admin: psycopg.Connection, database_url: str, db: Database
) -> None:
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(908)}])
    admin.execute("select pgmq.send('assessment_submitted', message) from pgmq.q_assessment_submitted "
                  "where message ->> 'assessment_id' = %s", (str(assessment_id),))  # a duplicate event
    taken = await db.take_jobs(10, 30, max_reads=15, max_attempts=5, in_flight=[])
    assert sorted((leased.message.msg_id, leased.state) for leased in taken) == [
        (taken[0].message.msg_id, "started"), (taken[1].message.msg_id, "busy")]
    [row] = await fetch(database_url, "select attempts from public.test_assessment where id = %s", (assessment_id,))
    assert row["attempts"] == 1


async def test_requeue_leaves_a_dead_letter_whose_assessment_is_not_failed(
    admin: psycopg.Connection, database_url: str, db: Database
) -> None:
    """A second event for an assessment that is queued, processing or completed would start a second job."""
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(909)}])
    leased = await _take(db)
    await dead_letter(db, leased.message, None, "invalid event: as if")  # the assessment stays processing
    [dead] = await fetch(database_url, "select msg_id from pgmq.q_assessment_submitted_dlq")
    outcome = await db.dlq_requeue(dead["msg_id"])
    assert (outcome["found"], outcome["new_msg_id"], outcome["assessment_status"]) == (True, None, "processing")
    assert await fetch(database_url, "select 1 from pgmq.q_assessment_submitted where message ->> "
                       "'assessment_id' = %s", (str(assessment_id),)) == []
    assert len(await fetch(database_url, "select 1 from pgmq.q_assessment_submitted_dlq")) == 1


# ----------------------------------------------------------------------- a commit refused for good


async def test_a_commit_refused_for_good_pauses_intake_instead_of_paying_for_every_job(
    admin: psycopg.Connection, database_url: str
) -> None:
    [first] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(910)}])
    admin.execute("revoke insert on public.result_test from assessment_worker")
    try:
        async with FakeOpenAI() as ai:
            settings = settings_for(database_url, cache_ttl_seconds=0)
            async with running_worker(settings, recommender_for(settings, ai.base_url)) as consumer:
                assert await eventually(lambda: consumer.health.intake_paused_for() > 0, timeout=10)
                reason = consumer.health.not_ready_reason()
                submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(911)}])
                await asyncio.sleep(2)  # the next job is not taken (nor paid for) during the pause
                calls = len(ai.requests)
    finally:
        admin.execute("grant insert on public.result_test to assessment_worker")
    assert reason == ("taking no jobs for now: a commit was refused: the worker's role lacks a privilege "
                      "(grant it: docs/deployment.md, the worker's role)")
    assert calls == 1
    [row] = await fetch(database_url, "select status::text, attempts from public.test_assessment where id = %s",
                        (first,))
    assert row == {"status": "processing", "attempts": 1}  # left to its lease, not failed
