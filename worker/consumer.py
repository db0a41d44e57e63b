"""The queue consumer: lease jobs from pgmq, process up to `concurrency` at once, commit exactly once.

Delivery is at-least-once (a lease that runs out hands the job to another read); the effect is exactly
once because a result, its status and the message's archive commit together, result_test.assessment_id
is unique, and every write is fenced by the lease it was made under (worker/sql/queries.sql). While a
job is in flight its lease is extended, so it is handed to another worker only if this one stops
extending it (it crashed, or lost the database for longer than the lease); a crashed worker's jobs come
back when their lease ends.

The parts: worker/intake.py (read and triage), worker/pipeline.py (AI or fallback), worker/admission.py
(when AI calls may start), worker/drafts.py (the owner's streamed drafts), worker/committer.py (batched
commits), worker/leases.py, worker/listener.py (NOTIFY), worker/health.py. This module runs them,
supervises the background ones (one that dies stops the worker, naming it), owns the jobs in flight, and
shuts down in order: stop reading, give back the jobs still waiting for provider capacity, let the others
finish within the grace, cancel the rest, let their commits end, then release their leases.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import psycopg

from worker import db_errors
from worker.admission import Gate
from worker.ai import Caller
from worker.committer import Committer
from worker.config import Settings
from worker.db import AiLimits, CommitOutcome, Database, Message, ResultRow
from worker.db_errors import describe
from worker.drafts import DraftSender
from worker.exceptions import BackgroundTaskDied, DatabaseRefused, DatabaseUnavailable, LeaseLost, ShuttingDown
from worker.failures import fail_attempt
from worker.health import Health
from worker.intake import Intake, Job
from worker.leases import LeaseKeeper
from worker.listener import Listener
from worker.logs import current_assessment
from worker.metrics import IN_FLIGHT, JOB_ERRORS, JOB_SECONDS, JOBS, QUEUE_WAIT_SECONDS
from worker.models import Outcome
from worker.pipeline import Recommends, fallback_outcome, produce_outcome
from worker.retry_policy import intake_pause_seconds, take_retry_delay

log = logging.getLogger(__name__)

IDLE_POLL_START_SECONDS = 0.002  # first poll after the queue runs dry; doubles up to the poll interval
# After the grace, cancelled jobs' commits that are already under way get this long to end.
COMMIT_DRAIN_SECONDS = 5.0


class Consumer:
    def __init__(self, settings: Settings, db: Database, recommender: Recommends) -> None:
        self.settings = settings
        self.db = db
        self.recommender = recommender
        self.in_flight: dict[int, tuple[Job, asyncio.Task[None]]] = {}  # jobs holding a slot and a lease
        self.tasks: set[asyncio.Task[None]] = set()  # every job's task until it ends, bookkeeping included
        self.refusals = 0  # commits refused for good in a row (a missing grant): intake pauses
        self.wake = asyncio.Event()
        self.slot_free = asyncio.Event()
        self.intake = Intake(settings, db, recommender.model)
        self.committer = Committer(db)
        self.leases = LeaseKeeper(db, settings.lease_seconds)
        self.listener = Listener(settings.database_url, self.wake)
        self.health = Health(db, settings.ai_daily_budget_usd)
        self.gate = Gate(db, AiLimits(settings.ai_requests_per_minute, settings.ai_tokens_per_minute,
                                      settings.ai_user_daily_tokens, settings.ai_daily_budget_usd),
                         settings.ai_max_wait_seconds)
        self.running = False  # /health: the consume loop is up

    @property
    def listening(self) -> bool:
        return self.listener.connected

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then finish in-flight jobs within the grace period.

        Raises BackgroundTaskDied when a background loop ends. Cancelled (a second signal), it stops at
        once: jobs in flight are left to come back when their leases end.
        """
        helpers = {
            asyncio.create_task(self.listener.run(), name="listener"): "listener",
            asyncio.create_task(self.leases.run(), name="lease keeper"): "lease keeper",
            asyncio.create_task(self.committer.run(), name="committer"): "committer",
            asyncio.create_task(self.health.run(), name="health"): "health",
        }
        log.info("worker started", extra={"concurrency": self.settings.concurrency,
                                          "lease_seconds": self.settings.lease_seconds})
        self.running = True
        try:
            await self._supervised(self._fetch_loop(stop), helpers)
            await self._supervised(self._drain(), helpers)
        finally:
            self.running = False
            await _cancel_all(list(self.tasks))
            await _cancel_all(list(helpers))
            log.info("worker stopped")

    async def _supervised(self, work: Coroutine[Any, Any, None], helpers: dict[asyncio.Task[None], str]) -> None:
        """Run `work` to its end, unless a helper ends first: then stop with BackgroundTaskDied naming it."""
        task = asyncio.create_task(work)
        try:
            done, _ = await asyncio.wait([task, *helpers], return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            await _cancel_all([task])
            raise
        if task in done:
            task.result()
            return
        await _cancel_all([task])
        died = next(helper for helper in helpers if helper in done)
        error = died.exception() if not died.cancelled() else None
        log.critical("a background task died; stopping the worker", exc_info=error,
                     extra={"task": helpers[died]})
        raise BackgroundTaskDied(f"The worker's {helpers[died]} stopped ({error!r}); the worker exits so that "
                                 "it is restarted. See the log line before this one.")

    async def _drain(self) -> None:
        # Jobs waiting for provider capacity have not called the AI: they give their jobs back now (a wait
        # can last minutes) rather than hold the shutdown for the grace, which is for calls in flight.
        self.gate.close()
        if not self.tasks:
            return
        grace = self.settings.shutdown_grace_seconds
        log.info("finishing in-flight jobs", extra={"jobs": len(self.tasks), "grace_seconds": grace})
        _, pending = await asyncio.wait(list(self.tasks), timeout=grace)
        if not pending:
            return
        # Stop the jobs first, let the commits they had started end, and only then give back the messages
        # of jobs with no commit under way: a released lease lets another worker take a job this one might
        # still commit. A commit still under way keeps its lease, which runs out by itself.
        unfinished = [job.message for job, task in self.in_flight.values() if task in pending]
        await _cancel_all(list(pending))
        if not await self.committer.drain(COMMIT_DRAIN_SECONDS):
            log.warning("commits still under way at shutdown; their jobs return when their leases end")
        unfinished = [message for message in unfinished if not self.committer.committing(message.msg_id)]
        if not unfinished:
            return
        try:
            released = await self.db.release_leases(unfinished)
        except Exception as exc:
            db_errors.report("release_leases", exc, "could not release leases; jobs return when their lease ends",
                             msg_ids=[m.msg_id for m in unfinished])
            return
        log.info("left unfinished jobs for redelivery", extra={"msg_ids": sorted(released)})

    # ------------------------------------------------------------------ fetching

    async def _fetch_loop(self, stop: asyncio.Event) -> None:
        failures = 0
        idle_reads = 0
        while not stop.is_set():
            paused = self.health.intake_paused_for()
            if paused > 0:
                await _wait_any(stop, timeout=paused)
                continue
            free = self.settings.concurrency - len(self.in_flight)
            if free <= 0:
                self.slot_free.clear()
                await _wait_any(self.slot_free, stop, timeout=None)
                continue
            self.wake.clear()
            try:
                read, jobs = await self.intake.take(free, self.in_flight.keys())
                self._start(jobs)
                failures = 0
            except Exception as exc:  # the database away or refusing, or a bug: never stop consuming
                failures += 1
                delay = take_retry_delay(failures)
                kind = db_errors.classify(exc)
                consequence = ("cannot read or start jobs; retrying" if kind == "transient" else
                               "cannot read or start jobs; trying again after an operator's fix")
                db_errors.report("take", exc, consequence, retry_in_seconds=delay)
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
            task = asyncio.create_task(self._process(job))
            self.in_flight[job.message.msg_id] = (job, task)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        IN_FLIGHT.set(len(self.in_flight))

    # ------------------------------------------------------------------ one job

    async def _process(self, job: Job) -> None:
        message, event = job.message, job.event
        current_assessment.set(str(event.assessment_id))
        started = time.perf_counter()
        if job.assessment.attempts == 1:  # insert to first pickup; retries would count their backoff too
            QUEUE_WAIT_SECONDS.observe(max(0.0, (datetime.now(UTC) - event.submitted_at).total_seconds()))
        failure: str | None = None
        stage = "admit"  # what a database error stopped: asking to call the AI, or the commit
        give_back = False
        try:
            async with self.leases.hold(message):
                drafts = DraftSender(self.db, message, job.prompt.citable)
                caller = Caller(job.assessment.user_id, self.gate.for_job(message), drafts)
                try:
                    outcome = await produce_outcome(job.assessment, job.prompt, job.cache_key, job.cached,
                                                    self.recommender, caller)
                finally:
                    await drafts.close()  # before the commit: no draft follows recommendation_completed
                stage = "commit"
                result, outcome = await self._commit(job, outcome, started)
            self._finished(job, outcome, result, started)
        except ShuttingDown:
            give_back = True  # it was waiting for provider capacity when the worker began to stop
        except LeaseLost:
            log.warning("the job's lease was lost before its AI call; its new holder completes it")
        except DatabaseUnavailable as exc:
            JOB_ERRORS.labels("database_unavailable").inc()
            what = "could not ask whether the AI call may start" if stage == "admit" else "could not commit the job"
            db_errors.report(stage, exc, f"{what}; it returns when its lease ends")
        except DatabaseRefused as exc:
            # Every job would fail the same way, each one started (an attempt) and perhaps paid for (an AI
            # call): take none until the pause is over; /ready says why.
            JOB_ERRORS.labels("database_refused").inc()
            self.refusals += 1
            pause = intake_pause_seconds(self.refusals)
            what = "could not ask whether the AI call may start" if stage == "admit" else "could not commit the job"
            db_errors.report(stage, exc, f"{what}; taking no jobs for {pause:g}s", pause_seconds=pause)
            self.health.pause_intake(describe(exc), pause)
        except Exception as exc:  # one job's bug or bad data must never stop the worker
            JOB_ERRORS.labels(type(exc).__name__).inc()
            log.exception("job attempt failed", extra={"attempt": job.assessment.attempts})
            failure = f"{type(exc).__name__}: {exc}"
        finally:
            self.in_flight.pop(message.msg_id, None)
            IN_FLIGHT.set(len(self.in_flight))
            self.slot_free.set()
        if give_back:
            await asyncio.shield(self._give_back(message))
        if failure is not None:
            # Out of the lease keeper's hands (above), so no extension overwrites the retry backoff; shielded,
            # so a shutdown that cancels the job does not cut the bookkeeping short.
            await asyncio.shield(fail_attempt(self.db, message, event.assessment_id, job.assessment.attempts,
                                         self.settings.max_attempts, failure))

    async def _give_back(self, message: Message) -> None:
        """Make a job that never called the AI visible again now (out of the lease keeper's hands)."""
        try:
            released = await self.db.release_leases([message])
        except Exception as exc:
            db_errors.report("release_leases", exc, "could not give a waiting job back; it returns when its lease "
                             "ends", msg_id=message.msg_id)
            return
        log.info("the worker is stopping: gave back a job that was waiting for provider capacity",
                 extra={"msg_id": message.msg_id, "released": message.msg_id in released})

    async def _commit(self, job: Job, outcome: Outcome, started: float) -> tuple[CommitOutcome, Outcome]:
        """Commit `outcome`, shielded: a shutdown that cancels the job does not cut its commit short. If the
        database refuses what the AI or the cache produced, commit fallback recommendations in this same
        attempt instead: never ask the AI again."""
        try:
            return await asyncio.shield(self.committer.commit(ResultRow(job.message, job.event.assessment_id, outcome))
                                   ), outcome
        except psycopg.Error as exc:
            if outcome.source == "fallback" or db_errors.classify(exc) != "bug":
                raise
            JOB_ERRORS.labels("unstorable_output").inc()
            log.warning("could not store the AI's recommendations; storing fallback recommendations",
                        extra={"error": type(exc).__name__, "source": outcome.source})
            outcome = fallback_outcome(job.assessment, "unstorable_output", started)
            return await asyncio.shield(self.committer.commit(ResultRow(job.message, job.event.assessment_id, outcome))
                                   ), outcome

    def _finished(self, job: Job, outcome: Outcome, result: CommitOutcome, started: float) -> None:
        extra = {"source": outcome.source, "fallback_reason": outcome.fallback_reason,
                 "latency_ms": outcome.latency_ms, "attempt": job.assessment.attempts}
        self.refusals = 0
        if result == "completed":
            JOBS.labels("completed", outcome.source).inc()
            JOB_SECONDS.observe(time.perf_counter() - started)
            log.info("job completed", extra=extra)
        elif result == "finished":
            JOBS.labels("skipped", outcome.source).inc()
            log.info("job already finished elsewhere (or deleted); acknowledged", extra=extra)
        elif result == "busy":
            log.warning("the assessment stayed locked by another transaction; the job returns when its lease "
                        "ends and is started again", extra=extra)
        else:
            log.warning("the job's lease was lost before its commit; its new holder completes it", extra=extra)


async def _cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _wait_any(*events: asyncio.Event, timeout: float | None) -> None:
    """Wait until one of `events` is set or `timeout` seconds pass."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
