"""Intake: lease a batch of messages, triage each one, and turn the workable ones into prepared jobs.

Triage, in order: a message this worker already holds (its lease ran out while the database was away)
is left alone; one that is not a valid `assessment_submitted` event is dead-lettered and changes no
assessment; one delivered too often without ever starting is dead-lettered and fails its assessment;
one whose assessment is gone or finished is acknowledged;
one whose attempts are used up is dead-lettered. The rest are marked processing in one statement, get
their prompt and cache key, and the cached AI results for the whole batch are looked up in one query.
"""

from __future__ import annotations

import logging
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from worker.config import Settings
from worker.db import Database, Message
from worker.events import AssessmentSubmitted
from worker.failures import dead_letter, fail_attempt
from worker.metrics import JOBS
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

    async def take(self, free: int, in_flight: Container[int]) -> tuple[int, list[Job]]:
        """Lease up to `free` messages; returns how many were read and the jobs ready to run."""
        messages = await self.db.read_jobs(min(free, MAX_BATCH), self.settings.lease_seconds)
        if not messages:
            return 0, []
        return len(messages), await self._prepare_batch([m for m in messages if m.msg_id not in in_flight])

    async def _prepare_batch(self, messages: list[Message]) -> list[Job]:
        events: list[tuple[Message, AssessmentSubmitted]] = []
        for message in messages:
            try:
                event = AssessmentSubmitted.model_validate(message.body)
            except ValidationError as exc:
                # Not a job the enqueue trigger wrote: whatever assessment it names has its own message,
                # so only this one goes, and no assessment changes.
                await dead_letter(self.db, message, None, f"invalid event: {first_error(exc)}")
                continue
            if message.read_ct > self.settings.max_attempts * READS_PER_ATTEMPT:
                # Read this often without ever starting: something fails before processing begins.
                await dead_letter(self.db, message, event.assessment_id,
                                  f"never started after {message.read_ct - 1} deliveries")
                continue
            events.append((message, event))
        if not events:
            return []
        rows = await self.db.start_jobs([event.assessment_id for _, event in events])
        done: list[int] = []
        prepared: list[tuple[Message, AssessmentSubmitted, Assessment, Prompt, str]] = []
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
        if done:
            await self.db.acknowledge(done)
        cached: dict[str, dict[str, Any]] = {}
        if prepared and self.settings.cache_ttl_seconds > 0:
            cached = await self.db.find_cached([key for *_, key in prepared], self.settings.cache_ttl_seconds)
        return [Job(message, event, assessment, prompt, key, cached.get(key))
                for message, event, assessment, prompt, key in prepared]


def first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"])
    return f"{location}: {error['msg']}" if location else str(error["msg"])
