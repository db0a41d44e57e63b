"""Every error the worker raises on purpose; psycopg and OpenAI errors are translated at the boundary.

    WorkerError
    ├── ConfigError          a setting is missing or invalid; the message names the variable
    ├── InvalidEvent         a queue message is not a valid assessment_submitted event
    ├── InvalidAssessment    a stored assessment does not satisfy the answer rules
    ├── DatabaseUnavailable  the database cannot be reached right now; retry later
    └── AiUnavailable        the AI could not produce usable recommendations (reason says why)
"""

from __future__ import annotations


class WorkerError(Exception):
    """Base class of the worker's own errors."""


class ConfigError(WorkerError):
    """A setting is missing or invalid."""


class InvalidEvent(WorkerError):
    """A queue message is not a valid assessment_submitted event."""


class InvalidAssessment(WorkerError):
    """A stored assessment does not satisfy the answer rules."""


class DatabaseUnavailable(WorkerError):
    """The database cannot be reached right now."""


class AiUnavailable(WorkerError):
    """The AI step failed; `reason` is a short machine-readable cause stored as fallback_reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class AiAttemptFailed(WorkerError):
    """One try of the AI step failed; `retryable` says whether another may help, `wait` is the server's hint."""

    def __init__(self, reason: str, message: str, *, retryable: bool, wait: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retryable = retryable
        self.wait = wait
