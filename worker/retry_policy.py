"""The job retry policy, in one place: how often a job is delivered and started, and how long each
kind of retry waits. (The AI step's own tries within one attempt are worker/ai.py's.)

- A job gets `max_attempts` starts (test_assessment.attempts counts them; take_jobs starts an assessment
  only while `attempts < max_attempts`, the same comparison as `may_start_again`). A failed start is
  retried after `retry_delay_seconds`; the last one is dead-lettered. An operator's requeue restores
  all of them (worker/sql/queries.sql: dlq_requeue).
- A message may be delivered `max_reads` times (READS_PER_ATTEMPT per attempt: a lease that runs out
  while the database is away counts as a delivery) before one that never starts is dead-lettered.
- A commit the database cannot take now is retried for COMMIT_RETRY_SECONDS. One whose assessment another
  transaction holds (its owner deleting it, say) is retried at once on its own for BUSY_COMMIT_SECONDS,
  longer than one API request may run (authenticated's statement timeout, 3 s): a row held longer than
  that (statement after statement) sends the job back to the queue instead of holding a worker's slot.
- A commit the database refuses for good (a missing grant) pauses the worker's intake for
  `intake_pause_seconds` (10 s, doubling to 5 minutes) rather than start, and pay for, job after job
  that cannot be stored.
- Asking whether an AI call may start (worker/admission.py) is retried for ADMIT_RETRY_SECONDS while the
  database cannot answer, with no call meanwhile; then the job returns when its lease ends. Recording what
  a call used is retried for SETTLE_RETRY_SECONDS.
"""

from __future__ import annotations

import random

from worker.backoff import backoff

READS_PER_ATTEMPT = 3
RETRY_BASE_SECONDS = 2.0
RETRY_CAP_SECONDS = 60.0
COMMIT_RETRY_SECONDS = 60.0
BUSY_COMMIT_SECONDS = 5.0
ADMIT_RETRY_SECONDS = 30.0
SETTLE_RETRY_SECONDS = 10.0


def max_reads(max_attempts: int) -> int:
    """Deliveries a message may have before one that never starts is dead-lettered."""
    return max_attempts * READS_PER_ATTEMPT


def may_start_again(attempts: int, max_attempts: int) -> bool:
    """Whether a job that has been started `attempts` times may be started once more."""
    return attempts < max_attempts


def retry_delay_seconds(attempt: int) -> int:
    """Backoff before a failed job is delivered again: 2, 4, 8, ... capped at 60 seconds."""
    return int(backoff(attempt, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS))


def commit_retry_delay(failures: int) -> float:
    """Wait before committing again after the database failed `failures` times in a row."""
    return backoff(failures, base=0.25, cap=4.0)


def busy_commit_delay(tries: int, rng: random.Random) -> float:
    """Wait before committing a job again whose assessment another transaction held `tries` times."""
    return backoff(tries, base=0.05, cap=1.0, rng=rng)


def take_retry_delay(failures: int) -> float:
    """Wait before reading jobs again after `failures` failed reads in a row."""
    return backoff(failures, base=0.5, cap=10.0)


def intake_pause_seconds(refusals: int) -> float:
    """How long the worker takes no jobs after `refusals` commits in a row were refused for good."""
    return backoff(refusals, base=10.0, cap=300.0)


def admission_retry_delay(failures: int) -> float:
    """Wait before asking the database again whether an AI call may start, after `failures` errors in a row."""
    return backoff(failures, base=0.25, cap=4.0)
