"""What happens to a job that cannot complete: a failed attempt is retried later, a hopeless one is dead-lettered.

Both are recorded in the database in one statement each (worker/sql/queries.sql: record_failure,
dead_letter). Neither raises for an unreachable database: the message then simply comes back when its
lease ends, which is the same outcome one delivery later.

The owner can read test_assessment.last_error, so it only ever holds one of the short messages below;
the technical reason goes to the log and, for a dead letter, to the dead-letter queue (operators only).
"""

from __future__ import annotations

import logging
from uuid import UUID

import psycopg

from worker.backoff import backoff
from worker.db import Database, Message
from worker.exceptions import DatabaseUnavailable
from worker.metrics import DATABASE_ERRORS, JOBS

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 2.0
RETRY_CAP_SECONDS = 60.0

# What the owner reads in last_error.
RETRYING = "Processing failed; it will be retried automatically."
GAVE_UP = "The assessment could not be processed. Submit it again, or contact support if this repeats."


def retry_delay_seconds(attempt: int) -> int:
    """Backoff before a failed job is delivered again: 2, 4, 8, ... capped at 60 seconds."""
    return int(backoff(attempt, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS))


async def dead_letter(db: Database, message: Message, assessment_id: UUID | None, reason: str) -> None:
    """Move `message` to the dead-letter queue with `reason`; mark `assessment_id` failed when one is given."""
    try:
        await db.dead_letter(message, assessment_id, reason, GAVE_UP)
    except (DatabaseUnavailable, psycopg.Error) as exc:
        DATABASE_ERRORS.labels("dead_letter").inc()
        log.warning("could not dead-letter the job; it returns when its lease ends",
                    extra={"reason": reason, "msg_id": message.msg_id, "error": str(exc)})
        return
    JOBS.labels("failed", "none").inc()
    log.error("job dead-lettered", extra={"reason": reason, "msg_id": message.msg_id,
                                          "assessment_id": str(assessment_id)})


async def fail_attempt(
    db: Database, message: Message, assessment_id: UUID, attempt: int, max_attempts: int, error: str
) -> None:
    """Record a failed attempt: retry after a backoff, or dead-letter once attempts are used up."""
    if attempt >= max_attempts:
        await dead_letter(db, message, assessment_id, f"attempt {attempt} failed: {error}")
        return
    log.warning("job attempt failed; it will be retried", extra={"error": error, "attempt": attempt})
    try:
        await db.record_failure(message.msg_id, assessment_id, RETRYING, retry_delay_seconds(attempt))
    except (DatabaseUnavailable, psycopg.Error) as exc:
        DATABASE_ERRORS.labels("record_failure").inc()
        log.warning("could not record the failure; the job returns when its lease ends",
                    extra={"error": str(exc)})
