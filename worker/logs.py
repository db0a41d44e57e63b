"""Structured logs: one JSON object per line, with the current assessment id on every line of a job.

Warnings and errors that are not about one job are rate-limited: such a message (by logger and template)
logged more than BURST times within WINDOW_SECONDS is dropped for the rest of that window, and the next
line of it says how many were dropped. A flood (an attacker on the ops port, a database that is down for
an hour) cannot grow the log without bound, the first lines of every kind still get through, and every
line about a job (it carries the assessment id) is kept: those grow with the work, not with a flood.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

current_assessment: contextvars.ContextVar[str | None] = contextvars.ContextVar("assessment_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        assessment_id = current_assessment.get()
        if assessment_id is not None:
            entry["assessment_id"] = assessment_id
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


BURST = 20
WINDOW_SECONDS = 60.0


class RateLimit(logging.Filter):
    """Lets through at most BURST warnings or errors of one (logger, message template) per WINDOW_SECONDS,
    unless they are about a job."""

    def __init__(self, burst: int = BURST, window_seconds: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst, self.window, self.clock = burst, window_seconds, clock
        self._windows: dict[tuple[str, object], list[float | int]] = {}  # key -> [window start, seen, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or current_assessment.get() is not None:
            return True
        key = (record.name, record.msg)
        now = self.clock()
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.window:
            dropped = int(window[2]) if window else 0
            if len(self._windows) > 10_000:  # templates are fixed strings; this only guards against misuse
                self._windows.clear()
            self._windows[key] = [now, 1, 0]
            if dropped:
                record.suppressed_before = dropped  # logged as a field: "N like this were dropped"
            return True
        window[1] = int(window[1]) + 1
        if window[1] <= self.burst:
            return True
        window[2] = int(window[2]) + 1
        return False


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RateLimit())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries log request details (URLs, sometimes bodies) at INFO/DEBUG: keep them quiet.
    for noisy in ("aiohttp.access", "psycopg", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
