"""The worker's side of admission (worker/admission.py) against a scripted store: what a job does with each
answer of the database, and with none. The SQL itself is tested in tests/integration/test_admission.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from worker import admission
from worker.admission import Estimate, Gate, Usage
from worker.db import Admitted, AiLimits, Message
from worker.exceptions import AiUnavailable, DatabaseRefused, DatabaseUnavailable, LeaseLost, ShuttingDown
from worker.metrics import DATABASE_ERRORS, FENCED_WRITES

MESSAGE = Message(7, 1, datetime(2026, 1, 1, tzinfo=UTC), {})
ESTIMATE = Estimate(tokens=9000, cost_usd=0.004)


@dataclass
class ScriptedStore:
    """Answers admit_ai_call from `answers` in order (an exception is raised); records every call."""

    answers: list[Admitted | Exception]
    settle_errors: list[Exception] = field(default_factory=list)
    asked: list[dict[str, object]] = field(default_factory=list)
    settled: list[tuple[int, Usage, float | None]] = field(default_factory=list)

    async def admit_ai_call(self, message: Message, limits: AiLimits, *, reservation: int | None, tokens: int,
                            cost_usd: float, wait_limit_seconds: float, pause_seconds: float | None) -> Admitted:
        self.asked.append({"reservation": reservation, "wait_limit": wait_limit_seconds, "pause": pause_seconds,
                           "at": time.monotonic()})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def settle_ai_call(self, reservation: int, limits: AiLimits, *, requests: int, prompt_tokens: int,
                             completion_tokens: int, cost_usd: float, pause_seconds: float | None) -> bool:
        if self.settle_errors:
            raise self.settle_errors.pop(0)
        self.settled.append((reservation, Usage(requests, prompt_tokens, completion_tokens, cost_usd), pause_seconds))
        return True


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(admission, "admission_retry_delay", lambda failures: 0.05)
    yield


def gate(*answers: Admitted | Exception, max_wait: float = 5.0) -> tuple[Gate, ScriptedStore]:
    store = ScriptedStore(list(answers))
    return Gate(store, AiLimits(requests_per_minute=60), max_wait), store


def admitted(reservation: int = 1, wait: float = 0.0) -> Admitted:
    return Admitted("admitted", reservation, wait)


def deferred(wait: float) -> Admitted:
    return Admitted("deferred", None, wait)


async def test_a_database_error_is_waited_out_and_no_call_starts_before_an_answer() -> None:
    errors = DATABASE_ERRORS.labels("admit", "transient")
    before = errors._value.get()
    g, store = gate(DatabaseUnavailable("database unreachable"), DatabaseUnavailable("database busy"), admitted(5))
    ticket = await g.for_job(MESSAGE).admit(ESTIMATE)
    assert ticket.reservation == 5 and len(store.asked) == 3
    assert errors._value.get() - before == 2


async def test_a_database_that_stays_away_gives_the_job_back_to_its_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admission, "ADMIT_RETRY_SECONDS", 0.2)
    g, store = gate(*[DatabaseUnavailable("database unreachable")] * 20)
    with pytest.raises(DatabaseUnavailable):
        await g.for_job(MESSAGE).admit(ESTIMATE)
    assert 2 <= len(store.asked) < 20


async def test_a_database_that_refuses_stops_at_once() -> None:
    g, store = gate(DatabaseRefused("permission denied for function admit_ai_call"), admitted())
    with pytest.raises(DatabaseRefused):
        await g.for_job(MESSAGE).admit(ESTIMATE)
    assert len(store.asked) == 1


async def test_a_scheduled_start_is_waited_for_before_the_ticket_is_given() -> None:
    g, _ = gate(admitted(wait=0.3))
    started = time.monotonic()
    await g.for_job(MESSAGE).admit(ESTIMATE)
    assert time.monotonic() - started >= 0.29


async def test_deferred_asks_again_after_the_hint_with_the_time_left() -> None:
    g, store = gate(deferred(0.2), deferred(0.2), admitted(3))
    ticket = await g.for_job(MESSAGE).admit(ESTIMATE)
    assert ticket.reservation == 3
    limits = [float(str(ask["wait_limit"])) for ask in store.asked]
    assert limits[0] == pytest.approx(5.0, abs=0.05) and limits[0] > limits[1] > limits[2]
    gaps = [float(str(b["at"])) - float(str(a["at"])) for a, b in zip(store.asked, store.asked[1:], strict=False)]
    assert all(0.17 <= gap < 0.5 for gap in gaps)


async def test_no_start_within_the_max_wait_is_provider_capacity() -> None:
    g, store = gate(*[deferred(60.0)] * 10, max_wait=0.3)
    started = time.monotonic()
    with pytest.raises(AiUnavailable) as error:
        await g.for_job(MESSAGE).admit(ESTIMATE)
    assert error.value.reason == "provider_capacity" and "AI_MAX_WAIT_SECONDS=0.3" in str(error.value)
    assert 0.3 <= time.monotonic() - started < 1.0
    assert float(str(store.asked[-1]["wait_limit"])) == 0.0  # the last question: start now or never


@pytest.mark.parametrize("reason", ["user_budget_exhausted", "daily_budget_exhausted"])
async def test_a_spent_budget_refuses_at_once(reason: str) -> None:
    g, store = gate(Admitted(reason, None, 0.0), admitted())  # type: ignore[arg-type]  # the reason is a decision
    with pytest.raises(AiUnavailable) as error:
        await g.for_job(MESSAGE).admit(ESTIMATE)
    assert error.value.reason == reason and len(store.asked) == 1


async def test_a_lease_delivered_again_stops_the_job_and_is_counted_as_fenced() -> None:
    fenced = FENCED_WRITES.labels("admit")
    before = fenced._value.get()
    g, _ = gate(Admitted("lease_lost", None, 0.0))
    with pytest.raises(LeaseLost):
        await g.for_job(MESSAGE).admit(ESTIMATE)
    assert fenced._value.get() - before == 1


async def test_closing_the_gate_gives_a_waiting_job_back_and_releases_its_reservation() -> None:
    g, store = gate(admitted(9, wait=30.0))
    waiting = asyncio.create_task(g.for_job(MESSAGE).admit(ESTIMATE))
    await asyncio.sleep(0.1)
    assert g.waiting == 1 and g.oldest_wait_seconds() >= 0.1
    started = time.monotonic()
    g.close()
    with pytest.raises(ShuttingDown):
        await waiting
    assert time.monotonic() - started < 0.5
    assert store.settled == [(9, Usage(), None)]  # nothing used; the reservation is gone at once
    assert g.waiting == 0
    with pytest.raises(ShuttingDown):  # and no job starts to wait any more
        await g.for_job(MESSAGE).admit(ESTIMATE)


async def test_a_retry_records_the_providers_pause_and_starts_after_it() -> None:
    g, store = gate(admitted(4), admitted(4, wait=0.2))
    ticket = await g.for_job(MESSAGE).admit(ESTIMATE)
    started = time.monotonic()
    assert await ticket.readmit(ESTIMATE, pause=0.2, within=5.0)
    assert time.monotonic() - started >= 0.19
    assert store.asked[1]["reservation"] == 4 and store.asked[1]["pause"] == 0.2 and store.asked[1]["wait_limit"] == 5.0


async def test_a_retry_that_cannot_start_within_the_deadline_is_refused() -> None:
    g, _ = gate(admitted(4), deferred(10.0), admitted(4), Admitted("user_budget_exhausted", None, 0.0))
    ticket = await g.for_job(MESSAGE).admit(ESTIMATE)
    assert not await ticket.readmit(ESTIMATE, pause=None, within=1.0)
    ticket = await g.for_job(MESSAGE).admit(ESTIMATE)
    with pytest.raises(AiUnavailable) as error:
        await ticket.readmit(ESTIMATE, pause=None, within=1.0)
    assert error.value.reason == "user_budget_exhausted"


async def test_settle_retries_a_database_that_is_away_then_gives_up_without_failing_the_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    g, store = gate(admitted(2))
    store.settle_errors = [DatabaseUnavailable("database unreachable")]
    ticket = await g.for_job(MESSAGE).admit(ESTIMATE)
    await ticket.settle(Usage(1, 300, 200, 0.001), 0.5)
    assert store.settled == [(2, Usage(1, 300, 200, 0.001), 0.5)]

    monkeypatch.setattr(admission, "SETTLE_RETRY_SECONDS", 0.1)
    store.settle_errors = [DatabaseUnavailable("database unreachable")] * 10
    await ticket.settle(Usage(1, 300, 200, 0.001), None)  # returns: the reservation lapses with the lease
    store.settle_errors = [DatabaseRefused("permission denied")]
    await ticket.settle(Usage(1, 300, 200, 0.001), None)
