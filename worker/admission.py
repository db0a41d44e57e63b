"""Admission of AI calls: before every try, the database every replica shares says whether it may start.

Contract: `Gate.for_job(message).admit(estimate)` returns a `Ticket` once the first try may start. Until
then the job waits (its lease kept by the lease keeper): for the provider's pace, for a pause the provider
asked for, for calls in flight to settle when a budget is nearly spent. It raises `AiUnavailable` with
`provider_capacity` when no start came within AI_MAX_WAIT_SECONDS, with `user_budget_exhausted` or
`daily_budget_exhausted` when a budget refuses the call; `LeaseLost` when the job's message was delivered
again; `ShuttingDown` when the worker stops meanwhile; `DatabaseUnavailable` / `DatabaseRefused` when the
database cannot decide. No try ever starts without the database's yes. `Ticket.readmit` admits a retry
within the deadline; `Ticket.settle` records what the tries used and releases the reservation (the caller
always calls it, shielded).

The rules are SQL (supabase/migrations/20261208140000_admit_ai_calls.sql, decision 0013): one statement to
be admitted, one to settle.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Protocol

from worker import db_errors
from worker.db import Admitted, AiLimits, Message
from worker.exceptions import AiUnavailable, DatabaseUnavailable, LeaseLost, ShuttingDown
from worker.leases import note_fenced
from worker.metrics import (
    AI_ADMISSION_WAIT_SECONDS,
    AI_ADMISSIONS,
    AI_JOBS_WAITING,
    AI_OLDEST_WAIT_SECONDS,
)
from worker.retry_policy import ADMIT_RETRY_SECONDS, SETTLE_RETRY_SECONDS, admission_retry_delay

log = logging.getLogger(__name__)

# Why admission can refuse a call: what AiUnavailable.reason holds, and so result_test.fallback_reason.
ADMISSION_REASONS = frozenset({"provider_capacity", "user_budget_exhausted", "daily_budget_exhausted"})
# A job told to wait with no start in sight asks again at least this often: capacity can come back early
# (tokens a call did not use, calls in flight settling).
DEFERRED_POLL_SECONDS = 5.0
MIN_POLL_SECONDS = 0.05

_BUDGETS = {
    "user_budget_exhausted": "The user's AI tokens for today (AI_USER_DAILY_TOKENS) are used up",
    "daily_budget_exhausted": "The project's AI budget for today (AI_DAILY_BUDGET_USD) is spent",
}


class AdmissionStore(Protocol):
    """What admission needs of the database (worker/db.py's Database)."""

    async def admit_ai_call(self, message: Message, limits: AiLimits, *, reservation: int | None, tokens: int,
                            cost_usd: float, wait_limit_seconds: float, pause_seconds: float | None) -> Admitted: ...

    async def settle_ai_call(self, reservation: int, limits: AiLimits, *, requests: int, prompt_tokens: int,
                             completion_tokens: int, cost_usd: float, pause_seconds: float | None) -> bool: ...


@dataclass(frozen=True)
class Estimate:
    """A try's worst case: its tokens (the request's bytes plus the completion cap) and their price."""

    tokens: int
    cost_usd: float


@dataclass(frozen=True)
class Usage:
    """What an admitted call used: requests sent and the tokens and cost the provider reported."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class Gate:
    """The worker's side of admission; `close()` at shutdown makes every waiting job give its job back."""

    def __init__(self, db: AdmissionStore, limits: AiLimits, max_wait_seconds: float,
                 rng: random.Random | None = None) -> None:
        self.db = db
        self.limits = limits
        self.max_wait_seconds = max_wait_seconds
        self._rng = rng or random.Random()
        self._closing = asyncio.Event()
        self._waiting: dict[object, float] = {}  # one entry per job waiting: when it started to
        AI_JOBS_WAITING.set_function(lambda: len(self._waiting))
        AI_OLDEST_WAIT_SECONDS.set_function(self.oldest_wait_seconds)

    def for_job(self, message: Message) -> JobAdmission:
        """The admission of the AI calls of the job holding `message`'s lease."""
        return JobAdmission(self, message)

    def close(self) -> None:
        """The worker stops: jobs waiting for capacity stop waiting (ShuttingDown), none starts to."""
        self._closing.set()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def oldest_wait_seconds(self) -> float:
        return time.monotonic() - min(self._waiting.values()) if self._waiting else 0.0

    async def sleep(self, seconds: float) -> bool:
        """Sleep `seconds`; False at once if the gate closes meanwhile."""
        try:
            await asyncio.wait_for(self._closing.wait(), timeout=max(seconds, 0.0))
        except TimeoutError:
            return True
        return False

    async def ask(self, message: Message, reservation: int | None, estimate: Estimate, wait_limit: float,
                  pause: float | None) -> Admitted:
        """One admission question. While the database cannot answer, ask again (no call meanwhile) for
        ADMIT_RETRY_SECONDS; then DatabaseUnavailable: the job returns when its lease ends."""
        give_up_at = time.monotonic() + ADMIT_RETRY_SECONDS
        failures = 0
        while True:
            try:
                answer = await self.db.admit_ai_call(
                    message, self.limits, reservation=reservation, tokens=estimate.tokens,
                    cost_usd=estimate.cost_usd, wait_limit_seconds=max(wait_limit, 0.0), pause_seconds=pause)
            except DatabaseUnavailable as exc:
                failures += 1
                delay = admission_retry_delay(failures)
                if time.monotonic() + delay > give_up_at:
                    raise
                db_errors.report("admit", exc, "cannot ask whether an AI call may start; waiting, no call is made",
                                 retry_in_seconds=delay)
                if not await self.sleep(delay):
                    raise ShuttingDown("The worker is stopping") from exc
                continue
            decision = answer.decision
            AI_ADMISSIONS.labels("scheduled" if decision == "admitted" and answer.wait_seconds > 0 else decision).inc()
            if decision == "lease_lost":
                note_fenced("admit", [message])
                raise LeaseLost(f"message {message.msg_id} was delivered again since read {message.read_ct}")
            return answer

    async def settle(self, reservation: int, usage: Usage, pause: float | None) -> None:
        """Record `usage` and release `reservation`; retried a while, then logged (never raises for the
        database: the reservation then stops counting when the job's lease ends, its usage unrecorded)."""
        give_up_at = time.monotonic() + SETTLE_RETRY_SECONDS
        failures = 0
        while True:
            try:
                settled = await self.db.settle_ai_call(
                    reservation, self.limits, requests=usage.requests, prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens, cost_usd=usage.cost_usd, pause_seconds=pause)
            except DatabaseUnavailable as exc:
                failures += 1
                delay = admission_retry_delay(failures)
                if time.monotonic() + delay > give_up_at:
                    db_errors.report("settle", exc, "could not record an AI call's usage; its reservation lapses "
                                     "with the job's lease", reservation=reservation)
                    return
                db_errors.report("settle", exc, "cannot record an AI call's usage; retrying",
                                 retry_in_seconds=delay)
                await asyncio.sleep(delay)
                continue
            except Exception as exc:  # permanent or a bug: the answer is paid for; keep the job going
                db_errors.report("settle", exc, "could not record an AI call's usage; its reservation lapses "
                                 "with the job's lease", reservation=reservation)
                return
            if not settled:
                log.warning("an AI call's reservation was gone when it settled; its usage is not recorded",
                            extra={"reservation": reservation})
            return


class JobAdmission:
    """Admission of one job's AI call (`Gate.for_job`)."""

    def __init__(self, gate: Gate, message: Message) -> None:
        self.gate = gate
        self.message = message

    async def admit(self, estimate: Estimate) -> Ticket:
        """Wait until the call's first try may start; see the module docstring for what it raises."""
        gate = self.gate
        started = time.monotonic()
        waiter = object()
        gate._waiting[waiter] = started
        outcome = "error"
        try:
            while True:
                if gate._closing.is_set():
                    outcome = "shutdown"
                    raise ShuttingDown("The worker is stopping; the job returns to the queue")
                remaining = gate.max_wait_seconds - (time.monotonic() - started)
                try:
                    answer = await gate.ask(self.message, None, estimate, remaining, None)
                except LeaseLost:
                    outcome = "lease_lost"
                    raise
                if answer.decision == "admitted":
                    assert answer.reservation is not None
                    ticket = Ticket(gate, self.message, answer.reservation)
                    if answer.wait_seconds > 0 and not await gate.sleep(answer.wait_seconds):
                        await asyncio.shield(ticket.settle(Usage(), None))
                        outcome = "shutdown"
                        raise ShuttingDown("The worker is stopping; the job returns to the queue")
                    outcome = "admitted"
                    return ticket
                if answer.decision in _BUDGETS:
                    outcome = answer.decision
                    raise AiUnavailable(answer.decision, _BUDGETS[answer.decision])
                if remaining <= 0:
                    outcome = "provider_capacity"
                    raise AiUnavailable("provider_capacity", f"No provider capacity within AI_MAX_WAIT_SECONDS="
                                        f"{gate.max_wait_seconds:g}: every replica is waiting for the provider's "
                                        "limits, a pause it asked for, or calls in flight to settle")
                # Deferred: ask again when the earliest start may fit (capacity can also come back early).
                delay = min(answer.wait_seconds, remaining, DEFERRED_POLL_SECONDS)
                await gate.sleep(max(MIN_POLL_SECONDS, delay * gate._rng.uniform(0.9, 1.0)))
        finally:
            del gate._waiting[waiter]
            AI_ADMISSION_WAIT_SECONDS.labels(outcome).observe(time.monotonic() - started)


class Ticket:
    """An admitted call: `readmit` its retries, `settle` it once at the end."""

    def __init__(self, gate: Gate, message: Message, reservation: int) -> None:
        self.gate = gate
        self.message = message
        self.reservation = reservation

    async def readmit(self, estimate: Estimate, *, pause: float | None, within: float) -> bool:
        """Admit another try starting within `within` seconds, recording the provider's `pause` (a 429's
        wait) for every replica first; sleeps until its start. False when it cannot start in time."""
        answer = await self.gate.ask(self.message, self.reservation, estimate, within, pause)
        if answer.decision in _BUDGETS:
            raise AiUnavailable(answer.decision, _BUDGETS[answer.decision])
        if answer.decision != "admitted" or answer.wait_seconds > within:
            return False
        await asyncio.sleep(answer.wait_seconds)  # inside the call's deadline, which the shutdown grace covers
        return True

    async def settle(self, usage: Usage, pause: float | None) -> None:
        await self.gate.settle(self.reservation, usage, pause)
