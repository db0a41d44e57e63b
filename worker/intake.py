"""Intake: lease a batch of messages, start their assessments, and turn the workable ones into jobs.

Reading and starting are one statement (worker/sql/queries.sql: take_jobs), which says per message what
it found (its state). Then, per message: a started one becomes a job once its event and assessment pass
the contract (else it is dead-lettered and its assessment fails); one that is not an event at all is
dead-lettered and changes no assessment; one whose assessment is finished or gone is acknowledged; one
read too often without starting, or whose attempts are used up, is dead-lettered and fails its
assessment without being started again; one whose assessment another transaction holds stays leased.
The cached AI results for the whole batch are looked up in one query.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from worker import db_errors
from worker.config import Settings
from worker.db import Database, Leased, Message
from worker.events import AssessmentSubmitted
from worker.failures import dead_letter, fail_attempt
from worker.leases import note_fenced
from worker.metrics import JOBS
from worker.models import Assessment
from worker.prompt import Prompt, build_prompt
from worker.retry_policy import max_reads

log = logging.getLogger(__name__)

MAX_BATCH = 100  # messages per read


@dataclass(frozen=True)
class Job:
    """A leased message whose assessment is loaded, valid and marked processing."""

    message: Message
    event: AssessmentSubmitted
    assessment: Assessment
    prompt: Prompt
    cache_key: str
    cached: dict[str, Any] | None  # the newest AI result for cache_key within the TTL, if any


@dataclass(frozen=True)
class _Prepared:
    message: Message
    event: AssessmentSubmitted
    assessment: Assessment
    prompt: Prompt
    cache_key: str


class Intake:
    """Reads and triages batches for one Consumer; `model` is part of every cache key."""

    def __init__(self, settings: Settings, db: Database, model: str) -> None:
        self.settings = settings
        self.db = db
        self.model = model

    async def take(self, free: int, in_flight: Collection[int]) -> tuple[int, list[Job]]:
        """Lease up to `free` messages not in `in_flight`; returns how many were read and the jobs ready to run."""
        taken = await self.db.take_jobs(min(free, MAX_BATCH), self.settings.lease_seconds,
                                        max_reads(self.settings.max_attempts), self.settings.max_attempts,
                                        in_flight)
        done: list[Message] = []
        prepared: list[_Prepared] = []
        for leased in taken:
            if leased.state == "done":
                why = "assessment deleted" if leased.assessment is None else (
                    f"assessment already {leased.assessment['status']}")
                log.info("acknowledging without processing: %s", why, extra={"msg_id": leased.message.msg_id})
                done.append(leased.message)
            elif leased.state == "busy":
                # Another transaction holds the assessment (a worker committing it after this message's
                # lease ran out, most likely): that one archives the message, or it returns when its lease ends.
                log.info("assessment busy; leaving its message leased", extra={"msg_id": leased.message.msg_id})
            else:
                job = await self._triage(leased)
                if job is not None:
                    prepared.append(job)
        # The assessments are started already: a database error from here on must not drop the batch.
        if done:
            try:
                archived = await self.db.acknowledge(done)
            except Exception as exc:
                db_errors.report("acknowledge", exc, "could not acknowledge finished jobs; they return when "
                                 "their lease ends", msg_ids=[m.msg_id for m in done])
            else:
                JOBS.labels("skipped", "none").inc(len(archived))  # counted once: an unacknowledged one returns
                note_fenced("acknowledge", [m for m in done if m.msg_id not in archived])
        cached: dict[str, dict[str, Any]] = {}
        if prepared and self.settings.cache_ttl_seconds > 0:
            try:
                cached = await self.db.find_cached([p.cache_key for p in prepared], self.settings.cache_ttl_seconds)
            except Exception as exc:
                db_errors.report("cache_lookup", exc, "cache lookup failed; asking the AI", jobs=len(prepared))
        jobs = [Job(p.message, p.event, p.assessment, p.prompt, p.cache_key, cached.get(p.cache_key))
                for p in prepared]
        return len(taken), jobs

    async def _triage(self, leased: Leased) -> _Prepared | None:
        """A started message's job, or None after dead-lettering what cannot become one."""
        message, row = leased.message, leased.assessment
        try:
            event = AssessmentSubmitted.model_validate(message.body)
            if leased.state == "invalid":
                raise ValueError("not in the form the enqueue trigger writes (canonical ids, an ISO 8601 "
                                 "submitted_at, five keys)")
        except ValueError as exc:  # pydantic's ValidationError included
            # Not a job the enqueue trigger wrote: whatever assessment it names has its own message, so
            # only this one goes and no assessment changes. Except one that take_jobs started (it passed
            # the SQL check, only the full contract failed, say a February 30): it may have no other message
            # to finish it, so it fails with this one.
            why = first_error(exc) if isinstance(exc, ValidationError) else str(exc)
            started = row["id"] if row is not None and leased.state == "started" else None
            await dead_letter(self.db, message, started, f"invalid event: {why}")
            return None
        if leased.state == "overread":
            # Read this often without ever starting: something fails before processing begins.
            await dead_letter(self.db, message, event.assessment_id,
                              f"never started after {message.read_ct - 1} deliveries")
            return None
        assert row is not None
        if leased.state == "exhausted":
            await dead_letter(self.db, message, event.assessment_id,
                              f"attempts exhausted: {row['attempts']} of {self.settings.max_attempts}")
            return None
        try:
            assessment = Assessment.model_validate(row)
            prompt = build_prompt(assessment)
            return _Prepared(message, event, assessment, prompt, prompt.cache_key(self.model, assessment.user_id))
        except ValidationError as exc:
            await dead_letter(self.db, message, event.assessment_id, f"invalid assessment: {first_error(exc)}")
        except Exception as exc:  # a bug in preparing one job must not hold up the others
            log.exception("preparing a job failed", extra={"assessment_id": str(event.assessment_id)})
            await fail_attempt(self.db, message, event.assessment_id, row["attempts"],
                               self.settings.max_attempts, f"{type(exc).__name__}: {exc}")
        return None


def first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"])
    return f"{location}: {error['msg']}" if location else str(error["msg"])
