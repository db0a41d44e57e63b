"""Intake: lease a batch of messages, start their assessments, and turn the workable ones into jobs.

Reading and starting are one statement (worker/sql/queries.sql: take_jobs). Then, per message, in order:
one this worker already holds (its lease ran out while the database was away) is left alone; one that is
not a valid `assessment_submitted` event is dead-lettered and changes no assessment (unless take_jobs
started one for it: that one fails); one delivered too often without ever starting is dead-lettered and
fails its assessment; one whose assessment another transaction holds stays leased; one whose assessment
is gone or finished is acknowledged; one whose attempts are used up is dead-lettered. The rest get their
prompt and cache key, and the cached AI results for the whole batch are looked up in one query.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import psycopg
from pydantic import ValidationError

from worker.config import Settings
from worker.db import Database, Message
from worker.events import AssessmentSubmitted
from worker.exceptions import DatabaseUnavailable
from worker.failures import dead_letter, fail_attempt
from worker.metrics import DATABASE_ERRORS, JOBS
from worker.models import Assessment
from worker.prompt import Prompt, build_prompt

log = logging.getLogger(__name__)

MAX_BATCH = 100  # messages per read
# Deliveries per allowed attempt before a message that never starts processing is dead-lettered
# (a lease that ran out while the database was away also counts as a delivery).
READS_PER_ATTEMPT = 3


@dataclass(frozen=True)
class Job:
    """A leased message whose assessment is loaded, valid and marked processing."""

    message: Message
    event: AssessmentSubmitted
    assessment: Assessment
    prompt: Prompt
    cache_key: str
    cached: dict[str, Any] | None  # the newest AI result for cache_key within the TTL, if any


class Intake:
    """Reads and triages batches for one Consumer; `model` is part of every cache key."""

    def __init__(self, settings: Settings, db: Database, model: str) -> None:
        self.settings = settings
        self.db = db
        self.model = model

    async def take(self, free: int, in_flight: Collection[int]) -> tuple[int, list[Job]]:
        """Lease up to `free` messages; returns how many were read and the jobs ready to run."""
        max_reads = self.settings.max_attempts * READS_PER_ATTEMPT
        taken = await self.db.take_jobs(min(free, MAX_BATCH), self.settings.lease_seconds, max_reads, in_flight)
        done: list[int] = []
        prepared: list[tuple[Message, AssessmentSubmitted, Assessment, Prompt, str]] = []
        for leased in taken:
            message, row = leased.message, leased.assessment
            if message.msg_id in in_flight:
                continue  # its lease ran out while we still work on it (database was away); keep going
            try:
                event = AssessmentSubmitted.model_validate(message.body)
                if not leased.well_formed:
                    raise ValueError("not in the form the enqueue trigger writes "
                                     "(canonical ids, an ISO 8601 submitted_at, five keys)")
            except (ValidationError, ValueError) as exc:
                # Not a job the enqueue trigger wrote: whatever assessment it names has its own message,
                # so only this one goes and no assessment changes. Except one that take_jobs started (it
                # passed the SQL check, only the full contract failed, say a February 30): it may have no
                # other message to finish it, so it fails with this one.
                why = first_error(exc) if isinstance(exc, ValidationError) else str(exc)
                started = row["id"] if row is not None and row["status"] == "processing" else None
                await dead_letter(self.db, message, started, f"invalid event: {why}")
                continue
            if message.read_ct > max_reads:
                # Read this often without ever starting: something fails before processing begins.
                await dead_letter(self.db, message, event.assessment_id,
                                  f"never started after {message.read_ct - 1} deliveries")
                continue
            if leased.busy:
                # Another transaction holds the assessment (a worker committing it after this message's
                # lease ran out, most likely): that one archives the message, or it returns when its lease ends.
                log.info("assessment busy; leaving its message leased",
                         extra={"assessment_id": str(event.assessment_id), "msg_id": message.msg_id})
                continue
            if row is None or row["status"] in ("completed", "failed"):
                why = "assessment deleted" if row is None else f"assessment already {row['status']}"
                log.info("acknowledging without processing: %s (or finished by another worker just now)", why,
                         extra={"assessment_id": str(event.assessment_id), "msg_id": message.msg_id})
                done.append(message.msg_id)
                continue
            if row["attempts"] > self.settings.max_attempts:
                await dead_letter(self.db, message, event.assessment_id,
                                  f"attempts exhausted: {row['attempts'] - 1} of {self.settings.max_attempts}")
                continue
            try:
                assessment = Assessment.model_validate(row)
                prompt = build_prompt(assessment)
                prepared.append((message, event, assessment, prompt, prompt.cache_key(self.model, assessment.user_id)))
            except ValidationError as exc:
                await dead_letter(self.db, message, event.assessment_id, f"invalid assessment: {first_error(exc)}")
            except Exception as exc:  # a bug in preparing one job must not hold up the others
                log.exception("preparing a job failed", extra={"assessment_id": str(event.assessment_id)})
                await fail_attempt(self.db, message, event.assessment_id, row["attempts"],
                                   self.settings.max_attempts, f"{type(exc).__name__}: {exc}")
        # The assessments are started already: a database error from here on must not drop the batch.
        if done:
            try:
                await self.db.acknowledge(done)
                JOBS.labels("skipped", "none").inc(len(done))  # counted once: an unacknowledged one returns
            except (DatabaseUnavailable, psycopg.Error) as exc:
                DATABASE_ERRORS.labels("acknowledge").inc()
                log.warning("could not acknowledge finished jobs; they return when their lease ends",
                            extra={"msg_ids": done, "error": str(exc)})
        cached: dict[str, dict[str, Any]] = {}
        if prepared and self.settings.cache_ttl_seconds > 0:
            try:
                cached = await self.db.find_cached([key for *_, key in prepared], self.settings.cache_ttl_seconds)
            except (DatabaseUnavailable, psycopg.Error) as exc:
                DATABASE_ERRORS.labels("cache_lookup").inc()
                log.warning("cache lookup failed; asking the AI", extra={"jobs": len(prepared), "error": str(exc)})
        jobs = [Job(message, event, assessment, prompt, key, cached.get(key))
                for message, event, assessment, prompt, key in prepared]
        return len(taken), jobs


def first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"])
    return f"{location}: {error['msg']}" if location else str(error["msg"])
