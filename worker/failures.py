"""What happens to a job that cannot complete: a failed attempt is retried later, a hopeless one is dead-lettered.

Both are recorded in the database in one statement each (worker/sql/queries.sql: record_failure,
dead_letter), fenced by the job's lease: a worker whose message was delivered again since changes
nothing. Neither raises for a database error: the message then comes back when its lease ends, which is
the same outcome one delivery later.

The owner can read test_assessment.last_error, so it only ever holds one of the short messages below;
the technical reason goes to the log and, for a dead letter, to the dead-letter queue (operators only).
"""

from __future__ import annotations

import logging
from uuid import UUID

from worker import db_errors
from worker.db import Database, Message
from worker.leases import note_fenced
from worker.metrics import JOBS
from worker.retry_policy import may_start_again, retry_delay_seconds

log = logging.getLogger(__name__)

# What the owner reads in last_error.
RETRYING = "Processing failed; it will be retried automatically."
GAVE_UP = "The assessment could not be processed. Submit it again, or contact support if this repeats."


async def dead_letter(db: Database, message: Message, assessment_id: UUID | None, reason: str) -> None:
    """Move `message` to the dead-letter queue with `reason`; mark `assessment_id` failed when one is given."""
    try:
        outcome = await db.dead_letter(message, assessment_id, reason, GAVE_UP)
    except Exception as exc:
        db_errors.report("dead_letter", exc, "could not dead-letter the job; it returns when its lease ends",
                         reason=reason, msg_id=message.msg_id)
        return
    if outcome == "lease_lost":
        note_fenced("dead_letter", [message])
        return
    if outcome == "busy":
        log.info("assessment busy; the job returns when its lease ends and is dead-lettered then",
                 extra={"reason": reason, "msg_id": message.msg_id})
        return
    JOBS.labels("failed", "none").inc()
    log.error("job dead-lettered", extra={"reason": reason, "msg_id": message.msg_id,
                                          "assessment_id": str(assessment_id)})


async def fail_attempt(
    db: Database, message: Message, assessment_id: UUID, attempt: int, max_attempts: int, error: str
) -> None:
    """Record failed attempt number `attempt`: retry after a backoff, or dead-letter once attempts are used up."""
    if not may_start_again(attempt, max_attempts):
        await dead_letter(db, message, assessment_id, f"attempt {attempt} of {max_attempts} failed: {error}")
        return
    log.warning("job attempt failed; it will be retried", extra={"error": error, "attempt": attempt})
    try:
        held = await db.record_failure(message, assessment_id, RETRYING, retry_delay_seconds(attempt))
    except Exception as exc:
        db_errors.report("record_failure", exc, "could not record the failure; the job returns when its lease ends")
        return
    if not held:
        note_fenced("record_failure", [message])

