"""Every error the worker raises on purpose; psycopg and OpenAI errors are translated at the boundary.

    WorkerError
    ├── ConfigError          a setting is missing or invalid; the message names the variable
    ├── BackgroundTaskDied   a loop the worker needs (lease keeper, committer, ...) ended; the worker stops
    ├── DatabaseUnavailable  transient: the database cannot do it right now; retry later
    ├── DatabaseRefused      permanent: a grant, an object or a limit is missing; an operator must act
    ├── AiAttemptFailed      one try of the AI step failed (retryable or not)
    │   └── StreamRefused    the server does not take `stream`: ask it again without streaming
    ├── AiUnavailable        the AI could not produce usable recommendations (reason says why)
    ├── LeaseLost            the job's message was delivered again since its lease; its new holder owns it
    └── ShuttingDown         the worker is stopping: a job waiting for provider capacity gives its job back

A database error that is neither (a constraint the worker broke, a syntax error) is a bug and stays the
psycopg error it is (worker/db.py: classify).
"""

from __future__ import annotations


class WorkerError(Exception):
    """Base class of the worker's own errors."""


class ConfigError(WorkerError):
    """A setting is missing or invalid."""


class BackgroundTaskDied(WorkerError):
    """A background loop of the worker ended; the message names it."""


class DatabaseUnavailable(WorkerError):
    """Transient: connection lost, deadlock, serialization failure, query cancelled, lock not available."""


class DatabaseRefused(WorkerError):
    """Permanent: insufficient privilege, an undefined object, a program limit; retrying will not help."""


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


class StreamRefused(AiAttemptFailed):
    """The AI server refused `stream: true` (HTTP 400 or 422 naming it); it is asked again without it."""

    def __init__(self, message: str) -> None:
        super().__init__("client_error", message, retryable=False)


class LeaseLost(WorkerError):
    """The job's message was delivered again since this worker leased it (fencing): stop, change nothing."""


class ShuttingDown(WorkerError):
    """The worker is stopping; a job that has not called the AI yet is given back to the queue."""
