"""Structured logs: one JSON object per line, with the current assessment id on every line of a job."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
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


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries log request details (URLs, sometimes bodies) at INFO/DEBUG: keep them quiet.
    for noisy in ("httpx", "httpx2", "openai", "psycopg", "psycopg.pool", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
