"""Readiness, queue metrics and today's AI spend, checked every few seconds in the background.

Two queries every few seconds read the queues' depth and oldest message age and the project's AI spend of
the current UTC day (published as metrics; the spend beside AI_DAILY_BUDGET_USD); whether they worked is
the worker's readiness, which GET /ready reports and Prometheus sees as assessment_worker_ready.
/ready answers from this state and never queries the database itself, so whoever reaches the ops port
cannot put load on the database or the worker's connection pool, and never sees a database's error text
(the detail goes to the log).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from worker.db import Database
from worker.db_errors import classify, describe
from worker.metrics import (
    AI_DAILY_BUDGET_REMAINING_USD,
    AI_DAILY_BUDGET_USD,
    AI_DAILY_SPEND_USD,
    DATABASE_ERRORS,
    QUEUE_DEPTH,
    QUEUE_OLDEST_AGE_SECONDS,
    READY,
)

log = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0
CHECK_TIMEOUT_SECONDS = 2.0
STALE_AFTER_SECONDS = 4 * REFRESH_SECONDS


class Health:
    """`run()` refreshes; `not_ready_reason()` is None when ready, else a fixed sentence saying why."""

    def __init__(self, db: Database, daily_budget_usd: float | None = None) -> None:
        self.db = db
        self.daily_budget_usd = daily_budget_usd
        AI_DAILY_BUDGET_USD.set(math.nan if daily_budget_usd is None else daily_budget_usd)
        AI_DAILY_BUDGET_REMAINING_USD.set(math.nan if daily_budget_usd is None else daily_budget_usd)
        self._reason: str | None = "not checked yet"
        self._checked_at: float | None = None
        self._paused_until = 0.0
        self._pause_reason = ""

    def not_ready_reason(self) -> str | None:
        if self._checked_at is not None and time.monotonic() - self._checked_at > STALE_AFTER_SECONDS:
            return "the readiness check has not run for a while (the consume loop may be stuck)"
        if self._reason is None and self.intake_paused_for() > 0:
            return f"taking no jobs for now: a commit was refused: {self._pause_reason}"
        return self._reason

    def pause_intake(self, reason: str, seconds: float) -> None:
        """No jobs are taken for `seconds`, and /ready says `reason` meanwhile (a fixed sentence)."""
        self._paused_until = time.monotonic() + seconds
        self._pause_reason = reason
        READY.set(0)

    def intake_paused_for(self) -> float:
        """Seconds until jobs may be taken again; 0 when they may now."""
        return max(0.0, self._paused_until - time.monotonic())

    async def check(self) -> None:
        """One refresh of the queue metrics and of readiness."""
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                queues = await self.db.queue_metrics()
                spend = (await self.db.ai_usage_today()).cost_usd
        except TimeoutError:
            self._set(f"database unreachable: no answer within {CHECK_TIMEOUT_SECONDS:g}s", None)
        except Exception as exc:
            kind = classify(exc)
            DATABASE_ERRORS.labels("readiness", kind).inc()
            if kind == "transient":
                self._set("database unreachable" if "unreachable" in str(exc) else "database busy", exc)
            elif kind == "permanent":
                self._set(describe(exc), exc)
            else:
                self._set("database error (see the worker's log)", exc)
        else:
            for queue in queues:
                QUEUE_DEPTH.labels(queue.queue_name).set(queue.length)
                QUEUE_OLDEST_AGE_SECONDS.labels(queue.queue_name).set(queue.oldest_age_seconds or 0)
            AI_DAILY_SPEND_USD.set(spend)
            if self.daily_budget_usd is not None:
                AI_DAILY_BUDGET_REMAINING_USD.set(max(0.0, self.daily_budget_usd - spend))
            self._set(None, None)

    async def run(self) -> None:
        """Forever (cancel to stop)."""
        while True:
            await self.check()
            await asyncio.sleep(REFRESH_SECONDS)

    def _set(self, reason: str | None, error: Exception | None) -> None:
        if reason is not None:
            # No figure rather than an old one: max() over the replicas then shows what the others see.
            QUEUE_DEPTH.clear()
            QUEUE_OLDEST_AGE_SECONDS.clear()
        if reason is not None and reason != self._reason:
            log.warning("worker not ready: %s", reason, extra={"error": str(error) if error else None})
        self._reason = reason
        self._checked_at = time.monotonic()
        READY.set(0 if reason or self.intake_paused_for() > 0 else 1)
