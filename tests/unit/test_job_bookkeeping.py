"""The decisions of intake, committer and lease keeper, against an in-memory stand-in for the database
boundary (the statements themselves are tested against the real database in tests/integration), and the
one classification of database errors."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any, cast
from uuid import UUID

import psycopg
import pytest

from tests.factories import FIXED_ID, assessment, message, result_row
from worker.committer import Committer
from worker.config import load_settings
from worker.db import CommitOutcome, Database, DeadLetterOutcome, Leased, Message, ResultRow
from worker.db_errors import classify
from worker.exceptions import DatabaseRefused, DatabaseUnavailable
from worker.intake import Intake
from worker.leases import LeaseKeeper


class Recorder:
    """What the worker asked of the database, and scripted answers."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.taken: list[Leased] = []
        self.commit_outcomes: list[dict[int, CommitOutcome] | Exception] = []
        self.still_held: set[int] | None = None

    async def take_jobs(self, *args: Any) -> list[Leased]:
        return self.taken

    async def acknowledge(self, messages: Sequence[Message]) -> set[int]:
        self.calls.append(("acknowledge", [m.msg_id for m in messages]))
        return {m.msg_id for m in messages}

    async def dead_letter(self, message: Message, assessment_id: UUID | None, reason: str, user_message: str
                          ) -> DeadLetterOutcome:
        self.calls.append(("dead_letter", (message.msg_id, assessment_id, reason)))
        return "dead_lettered"

    async def find_cached(self, keys: Sequence[str], ttl: float) -> dict[str, Any]:
        return {}

    async def complete_jobs(self, results: Sequence[ResultRow]) -> dict[int, CommitOutcome]:
        self.calls.append(("complete_jobs", [r.message.msg_id for r in results]))
        answer = self.commit_outcomes.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def extend_leases(self, messages: Sequence[Message], lease_seconds: int) -> set[int]:
        self.calls.append(("extend_leases", [m.msg_id for m in messages]))
        return {m.msg_id for m in messages} if self.still_held is None else self.still_held


def _row() -> dict[str, Any]:
    model = assessment()
    return {"id": model.id, "user_id": model.user_id, "assessment_type": model.assessment_type,
            "answers": [a.model_dump() for a in model.answers], "context": None, "status": "processing",
            "attempts": 3, "created_at": model.created_at}


def _intake(db: Recorder, max_attempts: int = 3) -> Intake:
    settings = load_settings({"DATABASE_URL": "postgresql://x@127.0.0.1/postgres"}, max_attempts=max_attempts,
                             cache_ttl_seconds=0)
    return Intake(settings, cast(Database, db), "fake-model")


# ----------------------------------------------------------------------------------------------- intake


async def test_intake_dead_letters_an_exhausted_job_without_making_it_a_job() -> None:
    db = Recorder()
    db.taken = [Leased(message(1), "exhausted", _row())]
    read, jobs = await _intake(db).take(10, [])
    assert (read, jobs) == (1, [])
    assert db.calls == [("dead_letter", (1, FIXED_ID, "attempts exhausted: 3 of 3"))]


async def test_intake_makes_a_job_of_a_started_message_only() -> None:
    db = Recorder()
    db.taken = [Leased(message(1), "started", _row()), Leased(message(2), "busy", _row()),
                Leased(message(3), "done", None), Leased(message(4, read_ct=10), "overread", _row())]
    read, jobs = await _intake(db).take(10, [])
    assert read == 4 and [job.message.msg_id for job in jobs] == [1]
    assert jobs[0].message.read_ct == 1  # the job holds the lease it was started under
    assert db.calls == [("dead_letter", (4, FIXED_ID, "never started after 9 deliveries")), ("acknowledge", [3])]


async def test_intake_dead_letters_an_invalid_event_without_touching_an_assessment() -> None:
    db = Recorder()
    db.taken = [Leased(Message(1, 1, message().enqueued_at, {"type": "something else"}), "invalid", None)]
    await _intake(db).take(10, [])
    [(name, (msg_id, assessment_id, reason))] = db.calls
    assert (name, msg_id, assessment_id) == ("dead_letter", 1, None) and reason.startswith("invalid event: ")


# -------------------------------------------------------------------------------------------- committer


async def _committed(db: Recorder, rows: list[ResultRow]) -> list[CommitOutcome]:
    committer = Committer(cast(Database, db), random.Random(0))
    running = asyncio.create_task(committer.run())
    try:
        return list(await asyncio.gather(*(committer.commit(row) for row in rows)))
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_job_whose_assessment_stays_held_gives_up_its_slot_after_the_busy_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("worker.committer.BUSY_COMMIT_SECONDS", 0.3)
    db = Recorder()
    db.commit_outcomes = [{1: "busy"}] * 100
    assert await _committed(db, [result_row(1)]) == ["busy"]
    assert 2 <= len(db.calls) < 100  # tried again a few times, then left to its lease


async def test_a_busy_job_is_committed_again_on_its_own_without_holding_up_its_batch() -> None:
    db = Recorder()
    db.commit_outcomes = [{1: "busy", 2: "completed"}, {1: "completed"}]
    assert await _committed(db, [result_row(1), result_row(2)]) == ["completed", "completed"]
    assert db.calls == [("complete_jobs", [1, 2]), ("complete_jobs", [1])]


async def test_a_transient_error_is_retried_and_a_bug_is_isolated_to_its_job() -> None:
    db = Recorder()
    bug = psycopg.errors.CheckViolation("result refused")
    db.commit_outcomes = [DatabaseUnavailable("gone"), bug, {1: "completed"}, bug]
    committer = Committer(cast(Database, db), random.Random(0))
    running = asyncio.create_task(committer.run())
    try:
        first, second = await asyncio.gather(committer.commit(result_row(1)), committer.commit(result_row(2)),
                                             return_exceptions=True)
    finally:
        running.cancel()
    assert first == "completed" and isinstance(second, psycopg.errors.CheckViolation)
    assert db.calls == [("complete_jobs", [1, 2])] * 2 + [("complete_jobs", [1]), ("complete_jobs", [2])]


async def test_a_job_missing_from_the_answer_counts_as_a_lost_lease() -> None:
    db = Recorder()
    db.commit_outcomes = [{}]
    assert await _committed(db, [result_row(1)]) == ["lease_lost"]


async def test_drain_waits_for_commits_under_way() -> None:
    db = Recorder()
    committer = Committer(cast(Database, db))
    commit = asyncio.create_task(committer.commit(result_row(1)))
    await asyncio.sleep(0)
    assert committer.commits_under_way == 1 and not await committer.drain(0.05)  # nothing runs the queue
    db.commit_outcomes = [{1: "completed"}]
    running = asyncio.create_task(committer.run())
    assert await committer.drain(1.0) and await commit == "completed"
    running.cancel()


# ------------------------------------------------------------------------------------------------ leases


async def test_the_lease_keeper_extends_what_is_held_and_forgets_what_was_lost() -> None:
    db = Recorder()
    keeper = LeaseKeeper(cast(Database, db), 30)
    async with keeper.hold(message(1)), keeper.hold(message(2)):
        db.still_held = {1}
        await keeper.extend_once()
        await keeper.extend_once()
    await keeper.extend_once()  # nothing held: no statement
    assert db.calls == [("extend_leases", [1, 2]), ("extend_leases", [1])]


async def test_leaving_hold_waits_for_a_round_in_progress() -> None:
    gate = asyncio.Event()

    class Slow(Recorder):
        async def extend_leases(self, messages: Sequence[Message], lease_seconds: int) -> set[int]:
            await gate.wait()
            return await super().extend_leases(messages, lease_seconds)

    keeper = LeaseKeeper(cast(Database, Slow()), 30)
    order: list[str] = []

    async def job() -> None:
        async with keeper.hold(message(1)):
            round_ = asyncio.create_task(keeper.extend_once())
            await asyncio.sleep(0)
        order.append("left hold")
        await round_

    running = asyncio.create_task(job())
    await asyncio.sleep(0.05)
    order.append("round ends")
    gate.set()
    await running
    assert order == ["round ends", "left hold"]


# ----------------------------------------------------------------------------------------- error classes


@pytest.mark.parametrize(("error", "kind"), [
    (psycopg.OperationalError("connection failed"), "transient"),
    (psycopg.errors.AdminShutdown(), "transient"),
    (psycopg.errors.DeadlockDetected(), "transient"),
    (psycopg.errors.SerializationFailure(), "transient"),
    (psycopg.errors.QueryCanceled(), "transient"),
    (psycopg.errors.LockNotAvailable(), "transient"),
    (psycopg.errors.TooManyConnections(), "transient"),
    (psycopg.errors.InsufficientPrivilege(), "permanent"),
    (psycopg.errors.UndefinedTable(), "permanent"),
    (psycopg.errors.UndefinedFunction(), "permanent"),
    (psycopg.errors.InvalidSchemaName(), "permanent"),
    (psycopg.errors.ProgramLimitExceeded(), "permanent"),
    (psycopg.errors.CheckViolation(), "bug"),
    (psycopg.errors.SyntaxError(), "bug"),
    (psycopg.errors.ForeignKeyViolation(), "bug"),
    (DatabaseUnavailable("x"), "transient"),
    (DatabaseRefused("x"), "permanent"),
    (RuntimeError("x"), "bug"),
])
def test_database_errors_are_classified_once(error: BaseException, kind: str) -> None:
    assert classify(error) == kind
