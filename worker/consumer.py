"""The queue consumer: lease jobs from pgmq, process up to `concurrency` at once, commit exactly once.

Delivery is at-least-once (a lease that runs out hands the job to another read); the effect is
exactly once because a result, its status and the message's archive commit together and
result_test.assessment_id is unique. While a job is in flight its lease is extended, so a live job
is never handed to a second worker; a crashed worker's jobs come back when their lease ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from pydantic import ValidationError

from worker.config import Settings
from worker.db import Database, Message, listen
from worker.events import AssessmentSubmitted
from worker.exceptions import DatabaseUnavailable
from worker.logs import current_assessment
from worker.metrics import (
    IN_FLIGHT,
    JOB_ERRORS,
    JOB_SECONDS,
    JOBS,
    QUEUE_DEPTH,
    QUEUE_OLDEST_AGE_SECONDS,
    QUEUE_WAIT_SECONDS,
)
from worker.models import Assessment, Outcome
from worker.pipeline import Recommends, produce_outcome
from worker.prompt import Prompt, build_prompt

log = logging.getLogger(__name__)

MAX_BATCH = 100  # messages per read and results per commit
IDLE_POLL_START_SECONDS = 0.01  # first poll after the queue runs dry; doubles up to the poll interval
# Deliveries per allowed attempt before a message that never starts processing is dead-lettered
# (a lease that ran out while the database was away also counts as a delivery).
READS_PER_ATTEMPT = 3
METRICS_INTERVAL_SECONDS = 5.0
COMMIT_RETRY_SECONDS = 60.0  # how long a computed result waits for the database to come back


@dataclass(frozen=True)
class Job:
    """A leased message whose assessment is loaded, valid and marked processing."""

    message: Message
    event: AssessmentSubmitted
    assessment: Assessment
    prompt: Prompt
    cache_key: str


def retry_delay_seconds(attempt: int) -> int:
    """Backoff before a failed job is delivered again: 2, 4, 8, ... capped at 60 seconds."""
    return int(min(60, 2 ** max(1, attempt)))


def raw_assessment_id(body: Any) -> UUID | None:
    """The assessment id of a message that failed validation, when one can still be read from it."""
    try:
        return UUID(str(body["assessment_id"]))
    except (KeyError, TypeError, ValueError):
        return None


class Consumer:
    def __init__(self, settings: Settings, db: Database, recommender: Recommends) -> None:
        self.settings = settings
        self.db = db
        self.recommender = recommender
        self.in_flight: dict[int, asyncio.Task[None]] = {}
        self.wake = asyncio.Event()
        self.slot_free = asyncio.Event()
        self.completions: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[bool]]] = asyncio.Queue()
        self.listening = False
        self.running = False  # /health: the consume loop is up

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then finish in-flight jobs within the grace period."""
        helpers = [
            asyncio.create_task(self._listen(), name="listen"),
            asyncio.create_task(self._keep_leases(), name="leases"),
            asyncio.create_task(self._commit_loop(), name="commit"),
            asyncio.create_task(self._refresh_queue_metrics(), name="queue-metrics"),
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
                messages = await self.db.read_jobs(min(free, MAX_BATCH), self.settings.lease_seconds)
                if messages:
                    await self._start_batch(messages)
                failures = 0
            except Exception as exc:  # the database away, or a bug: retry, never stop consuming
                failures += 1
                delay = min(10.0, 0.25 * 2**failures)
                expected = isinstance(exc, DatabaseUnavailable | psycopg.Error)
                (log.warning if expected else log.exception)(
                    "cannot read or start jobs; retrying", extra={"error": str(exc), "retry_in_seconds": delay})
                await _wait_any(self.wake, stop, timeout=delay)  # a reconnected LISTEN cuts it short
                continue
            if messages:
                idle_reads = 0
                continue
            # NOTIFY wakes us early; polling covers a lost notification or a dead LISTEN connection. Right
            # after work the poll starts short (10 ms, doubling): a job whose producer saw our previous job
            # still waiting sent no NOTIFY (see the enqueue trigger) and may commit just after this read.
            wait = min(self.settings.poll_interval_seconds, IDLE_POLL_START_SECONDS * 2**idle_reads)
            idle_reads += 1
            await _wait_any(self.wake, stop, timeout=wait)

    async def _start_batch(self, messages: list[Message]) -> None:
        events: list[tuple[Message, AssessmentSubmitted]] = []
        for message in messages:
            if message.msg_id in self.in_flight:
                continue  # its lease ran out while we still work on it (database was away); keep going
            if message.read_ct > self.settings.max_attempts * READS_PER_ATTEMPT:
                # Read this often without ever starting: something fails before processing begins.
                await self._dead_letter(message, raw_assessment_id(message.body),
                                        f"never started after {message.read_ct - 1} deliveries")
                continue
            try:
                events.append((message, AssessmentSubmitted.model_validate(message.body)))
            except ValidationError as exc:
                await self._dead_letter(message, raw_assessment_id(message.body),
                                        f"invalid event: {_first_error(exc)}")
        if not events:
            return
        rows = await self.db.start_jobs([event.assessment_id for _, event in events])
        done: list[int] = []
        jobs: list[Job] = []
        for message, event in events:
            row = rows.get(event.assessment_id)
            if row is None or row["status"] in ("completed", "failed"):
                why = "assessment deleted" if row is None else f"assessment already {row['status']}"
                log.info("acknowledging without processing: %s (or finished by another worker just now)", why,
                         extra={"assessment_id": str(event.assessment_id), "msg_id": message.msg_id})
                JOBS.labels("skipped", "none").inc()
                done.append(message.msg_id)
                continue
            if row["attempts"] > self.settings.max_attempts:
                await self._dead_letter(message, event.assessment_id,
                                        f"attempts exhausted: {row['attempts'] - 1} of {self.settings.max_attempts}")
                continue
            try:
                jobs.append(self._prepare(message, event, row))
            except ValidationError as exc:
                await self._dead_letter(message, event.assessment_id, f"invalid assessment: {_first_error(exc)}")
            except Exception as exc:  # a bug in preparing one job must not hold up the others
                log.exception("preparing a job failed", extra={"assessment_id": str(event.assessment_id)})
                await self._fail_attempt(message, event.assessment_id, row["attempts"], f"{type(exc).__name__}: {exc}")
        if done:
            await self.db.acknowledge(done)
        cached = {}
        if jobs and self.settings.cache_ttl_seconds > 0:
            cached = await self.db.find_cached([job.cache_key for job in jobs], self.settings.cache_ttl_seconds)
        for job in jobs:
            task = asyncio.create_task(self._process(job, cached.get(job.cache_key)))
            self.in_flight[job.message.msg_id] = task
        IN_FLIGHT.set(len(self.in_flight))

    def _prepare(self, message: Message, event: AssessmentSubmitted, row: dict[str, Any]) -> Job:
        assessment = Assessment.model_validate(row)
        prompt = build_prompt(assessment)
        return Job(message, event, assessment, prompt, prompt.cache_key(self.recommender.model))

    # ------------------------------------------------------------------ one job

    async def _process(self, job: Job, cached: dict[str, Any] | None) -> None:
        message, event = job.message, job.event
        current_assessment.set(str(event.assessment_id))
        started = time.perf_counter()
        if job.assessment.attempts == 1:  # insert to first pickup; retries would count their backoff too
            QUEUE_WAIT_SECONDS.observe(max(0.0, (datetime.now(UTC) - event.submitted_at).total_seconds()))
        try:
            outcome = await produce_outcome(job.assessment, job.prompt, job.cache_key, cached, self.recommender)
            completed = await self._commit(message, event, outcome)
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
            await self._fail_attempt(message, event.assessment_id, job.assessment.attempts,
                                     f"{type(exc).__name__}: {exc}")
        finally:
            self.in_flight.pop(message.msg_id, None)
            IN_FLIGHT.set(len(self.in_flight))
            self.slot_free.set()

    async def _fail_attempt(self, message: Message, assessment_id: UUID, attempt: int, error: str) -> None:
        try:
            if attempt >= self.settings.max_attempts:
                await self._dead_letter(message, assessment_id, f"attempt {attempt} failed: {error}")
            else:
                await self.db.record_failure(message.msg_id, assessment_id, error, retry_delay_seconds(attempt))
        except (DatabaseUnavailable, psycopg.Error) as exc:
            log.warning("could not record the failure; the job returns when its lease ends",
                        extra={"error": str(exc)})

    async def _dead_letter(self, message: Message, assessment_id: UUID | None, reason: str) -> None:
        await self.db.dead_letter(message, assessment_id, reason)
        JOBS.labels("failed", "none").inc()
        log.error("job dead-lettered", extra={"reason": reason, "msg_id": message.msg_id,
                                              "assessment_id": str(assessment_id)})

    # ------------------------------------------------------------------ committing

    async def _commit(self, message: Message, event: AssessmentSubmitted, outcome: Outcome) -> bool:
        job = {
            "msg_id": message.msg_id,
            "assessment_id": str(event.assessment_id),
            **outcome.recommendations.model_dump(mode="json"),
            **outcome.model_dump(mode="json", exclude={"recommendations"}),
        }
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self.completions.put((job, future))
        return await future

    async def _commit_loop(self) -> None:
        """Group results that finish together into one transaction (one fsync for many jobs)."""
        while True:
            batch = [await self.completions.get()]
            while len(batch) < MAX_BATCH and not self.completions.empty():
                batch.append(self.completions.get_nowait())
            try:
                await self._commit_batch(batch)
            except Exception as exc:  # this loop must outlive any one batch, or every job would hang
                log.exception("committing a batch failed", extra={"jobs": len(batch)})
                _fail_all(batch, exc)

    async def _commit_batch(self, batch: list[tuple[dict[str, Any], asyncio.Future[bool]]]) -> None:
        deadline = time.monotonic() + COMMIT_RETRY_SECONDS
        delay = 0.25
        while True:
            try:
                results = await self.db.complete_jobs([job for job, _ in batch])
            except DatabaseUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    _fail_all(batch, exc)
                    return
                log.warning("cannot commit results; retrying", extra={"jobs": len(batch), "error": str(exc)})
                await asyncio.sleep(delay)
                delay = min(4.0, delay * 2)
                continue
            except psycopg.Error as exc:
                if len(batch) == 1:
                    _fail_all(batch, exc)
                    return
                for item in batch:  # isolate the job that breaks the batch
                    await self._commit_batch([item])
                return
            for job, future in batch:
                if not future.done():
                    future.set_result(results.get(job["msg_id"], False))
            return

    # ------------------------------------------------------------------ background helpers

    async def _listen(self) -> None:
        """LISTEN for enqueue hints; reconnect by itself whenever the connection drops."""
        delay = 0.25
        while True:
            try:
                conn = await listen(self.settings.database_url)
                async with conn:
                    self.listening = True
                    delay = 0.25
                    self.wake.set()  # anything enqueued while we were not listening
                    async for _ in conn.notifies():
                        self.wake.set()
            except Exception as exc:  # any failure: reconnect; polling covers the gap
                log.warning("LISTEN connection lost; reconnecting", extra={"error": str(exc),
                                                                          "retry_in_seconds": delay})
            finally:
                self.listening = False
            await asyncio.sleep(delay)
            delay = min(10.0, delay * 2)

    async def _keep_leases(self) -> None:
        interval = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            msg_ids = list(self.in_flight)
            if not msg_ids:
                continue
            try:
                await self.db.extend_leases(msg_ids, self.settings.lease_seconds)
            except Exception as exc:  # keep extending: the next round may succeed
                log.warning("could not extend leases", extra={"jobs": len(msg_ids), "error": str(exc)})

    async def _refresh_queue_metrics(self) -> None:
        while True:
            try:
                for queue in await self.db.queue_metrics():
                    QUEUE_DEPTH.labels(queue.queue_name).set(queue.length)
                    QUEUE_OLDEST_AGE_SECONDS.labels(queue.queue_name).set(queue.oldest_age_seconds or 0)
            except Exception as exc:  # metrics are best effort; never let them stop the loop
                log.debug("queue metrics unavailable", extra={"error": str(exc)})
            await asyncio.sleep(METRICS_INTERVAL_SECONDS)


def _fail_all(batch: list[tuple[dict[str, Any], asyncio.Future[bool]]], exc: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"])
    return f"{location}: {error['msg']}" if location else str(error["msg"])


async def _wait_any(*events: asyncio.Event, timeout: float | None) -> None:
    """Wait until one of `events` is set or `timeout` seconds pass."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
