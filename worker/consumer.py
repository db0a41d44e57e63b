"""The queue consumer: lease jobs from pgmq, process up to `concurrency` at once, commit exactly once.

Delivery is at-least-once (a lease that runs out hands the job to another read); the effect is
exactly once because a result, its status and the message's archive commit together and
result_test.assessment_id is unique. While a job is in flight its lease is extended, so a live job
is never handed to a second worker; a crashed worker's jobs come back when their lease ends.

The parts: worker/intake.py (read and triage), worker/pipeline.py (AI or fallback), worker/committer.py
(batched commits), worker/leases.py, worker/listener.py (NOTIFY), worker/health.py. This module
runs them and owns the jobs in flight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg

from worker.backoff import backoff
from worker.committer import Committer
from worker.config import Settings
from worker.db import Database
from worker.exceptions import DatabaseUnavailable
from worker.failures import fail_attempt
from worker.health import Health
from worker.intake import Intake, Job
from worker.leases import keep_leases
from worker.listener import Listener
from worker.logs import current_assessment
from worker.metrics import DATABASE_ERRORS, IN_FLIGHT, JOB_ERRORS, JOB_SECONDS, JOBS, QUEUE_WAIT_SECONDS
from worker.models import Outcome
from worker.pipeline import Recommends, fallback_outcome, produce_outcome

log = logging.getLogger(__name__)

IDLE_POLL_START_SECONDS = 0.002  # first poll after the queue runs dry; doubles up to the poll interval


class Consumer:
    def __init__(self, settings: Settings, db: Database, recommender: Recommends) -> None:
        self.settings = settings
        self.db = db
        self.recommender = recommender
        self.in_flight: dict[int, asyncio.Task[None]] = {}
        self.wake = asyncio.Event()
        self.slot_free = asyncio.Event()
        self.intake = Intake(settings, db, recommender.model)
        self.committer = Committer(db)
        self.listener = Listener(settings.database_url, self.wake)
        self.health = Health(db)
        self.running = False  # /health: the consume loop is up

    @property
    def listening(self) -> bool:
        return self.listener.connected

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then finish in-flight jobs within the grace period."""
        helpers = [
            asyncio.create_task(self.listener.run(), name="listen"),
            asyncio.create_task(keep_leases(self.db, self.settings.lease_seconds, lambda: self.in_flight),
                                name="leases"),
            asyncio.create_task(self.committer.run(), name="commit"),
            asyncio.create_task(self.health.run(), name="health"),
        ]
        log.info("worker started", extra={"concurrency": self.settings.concurrency,
                                          "lease_seconds": self.settings.lease_seconds})
        self.running = True
        try:
            await self._fetch_loop(stop)
            await self._drain()
        finally:
            self.running = False
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            log.info("worker stopped")

    async def _drain(self) -> None:
        if not self.in_flight:
            return
        log.info("finishing in-flight jobs", extra={"jobs": len(self.in_flight),
                                                    "grace_seconds": self.settings.shutdown_grace_seconds})
        _, pending = await asyncio.wait(list(self.in_flight.values()),
                                        timeout=self.settings.shutdown_grace_seconds)
        if not pending:
            return
        unfinished = [msg_id for msg_id, task in self.in_flight.items() if task in pending]
        try:
            await self.db.release_leases(unfinished)
        except (DatabaseUnavailable, psycopg.Error):
            DATABASE_ERRORS.labels("release_leases").inc()
            log.warning("could not release leases; jobs return when their lease ends",
                        extra={"msg_ids": unfinished})
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        log.info("left unfinished jobs for redelivery", extra={"msg_ids": unfinished})

    # ------------------------------------------------------------------ fetching

    async def _fetch_loop(self, stop: asyncio.Event) -> None:
        failures = 0
        idle_reads = 0
        while not stop.is_set():
            free = self.settings.concurrency - len(self.in_flight)
            if free <= 0:
                self.slot_free.clear()
                await _wait_any(self.slot_free, stop, timeout=None)
                continue
            self.wake.clear()
            try:
                read, jobs = await self.intake.take(free, self.in_flight)
                self._start(jobs)
                failures = 0
            except Exception as exc:  # the database away, or a bug: retry, never stop consuming
                failures += 1
                delay = backoff(failures, base=0.5, cap=10.0)
                expected = isinstance(exc, DatabaseUnavailable | psycopg.Error)
                if expected:
                    DATABASE_ERRORS.labels("take").inc()
                (log.warning if expected else log.exception)(
                    "cannot read or start jobs; retrying", extra={"error": str(exc), "retry_in_seconds": delay})
                await _wait_any(self.wake, stop, timeout=delay)  # a reconnected LISTEN cuts it short
                continue
            if read:
                idle_reads = 0
                continue
            # NOTIFY wakes us early; polling covers a lost notification or a dead LISTEN connection. Right
            # after work the poll starts short (2 ms, doubling): a job whose producer saw our previous job
            # still waiting sent no NOTIFY (see the enqueue trigger) and may commit just after this read.
            wait = min(self.settings.poll_interval_seconds, IDLE_POLL_START_SECONDS * 2**idle_reads)
            idle_reads += 1
            await _wait_any(self.wake, stop, timeout=wait)

    def _start(self, jobs: list[Job]) -> None:
        for job in jobs:
            self.in_flight[job.message.msg_id] = asyncio.create_task(self._process(job))
        IN_FLIGHT.set(len(self.in_flight))

    # ------------------------------------------------------------------ one job

    async def _process(self, job: Job) -> None:
        message, event = job.message, job.event
        current_assessment.set(str(event.assessment_id))
        started = time.perf_counter()
        if job.assessment.attempts == 1:  # insert to first pickup; retries would count their backoff too
            QUEUE_WAIT_SECONDS.observe(max(0.0, (datetime.now(UTC) - event.submitted_at).total_seconds()))
        try:
            outcome = await produce_outcome(job.assessment, job.prompt, job.cache_key, job.cached, self.recommender)
            try:
                completed = await self.committer.commit(_row(message.msg_id, event.assessment_id, outcome))
            except psycopg.Error as exc:
                if outcome.source == "fallback":
                    raise
                # The database refused what the AI (or the cache) produced. Never ask the AI again for this
                # job: store fallback recommendations in this same attempt.
                JOB_ERRORS.labels("unstorable_output").inc()
                log.warning("could not store the AI's recommendations; storing fallback recommendations",
                            extra={"error": type(exc).__name__, "source": outcome.source})
                outcome = fallback_outcome(job.assessment, "invalid_output", started)
                completed = await self.committer.commit(_row(message.msg_id, event.assessment_id, outcome))
            JOBS.labels("completed" if completed else "skipped", outcome.source).inc()
            JOB_SECONDS.observe(time.perf_counter() - started)
            log.info("job completed" if completed else "job already finished elsewhere; acknowledged",
                     extra={"source": outcome.source, "fallback_reason": outcome.fallback_reason,
                            "latency_ms": outcome.latency_ms, "attempt": job.assessment.attempts})
        except DatabaseUnavailable as exc:
            JOB_ERRORS.labels("database_unavailable").inc()
            log.warning("database unavailable; the job returns when its lease ends", extra={"error": str(exc)})
        except Exception as exc:  # one job's bug or bad data must never stop the worker
            JOB_ERRORS.labels(type(exc).__name__).inc()
            log.exception("job attempt failed", extra={"attempt": job.assessment.attempts})
            await fail_attempt(self.db, message, event.assessment_id, job.assessment.attempts,
                               self.settings.max_attempts, f"{type(exc).__name__}: {exc}")
        finally:
            self.in_flight.pop(message.msg_id, None)
            IN_FLIGHT.set(len(self.in_flight))
            self.slot_free.set()


def _row(msg_id: int, assessment_id: UUID, outcome: Outcome) -> dict[str, Any]:
    """One job's row for the complete_jobs statement."""
    return {"msg_id": msg_id, "assessment_id": str(assessment_id),
            **outcome.recommendations.model_dump(mode="json"),
            **outcome.model_dump(mode="json", exclude={"recommendations"})}


async def _wait_any(*events: asyncio.Event, timeout: float | None) -> None:
    """Wait until one of `events` is set or `timeout` seconds pass."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
