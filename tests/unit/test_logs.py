"""Structured logs: JSON lines with the job's assessment id, and repeated lines rate-limited."""

from __future__ import annotations

import json
import logging

from worker.logs import JsonFormatter, RateLimit, current_assessment


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("worker.test", logging.WARNING, __file__, 1, message, args, None)


def test_rate_limit_lets_a_burst_through_then_drops_and_counts() -> None:
    now = [0.0]
    limit = RateLimit(burst=3, window_seconds=10, clock=lambda: now[0])
    passed = [limit.filter(record("socket.accept() out of system resource")) for _ in range(1000)]
    assert passed.count(True) == 3
    now[0] = 10.0
    first = record("socket.accept() out of system resource")
    assert limit.filter(first)
    assert first.suppressed_before == 997  # type: ignore[attr-defined]


def test_rate_limit_keeps_every_line_about_a_job_and_every_info_line() -> None:
    limit = RateLimit(burst=1, window_seconds=10, clock=lambda: 0.0)
    info = [limit.filter(logging.LogRecord("worker", logging.INFO, __file__, 1, "job completed", (), None))
            for _ in range(50)]
    token = current_assessment.set("a-1")
    try:
        about_a_job = [limit.filter(record("job attempt failed")) for _ in range(50)]
    finally:
        current_assessment.reset(token)
    assert all(info) and all(about_a_job)


def test_rate_limit_counts_each_message_template_on_its_own() -> None:
    limit = RateLimit(burst=1, window_seconds=10, clock=lambda: 0.0)
    assert limit.filter(record("job %s failed", 1))
    assert not limit.filter(record("job %s failed", 2))  # same template, other argument
    assert limit.filter(record("another message"))


def test_json_formatter_adds_the_assessment_id_and_extra_fields() -> None:
    token = current_assessment.set("a-1")
    try:
        entry = record("job completed")
        entry.source = "ai"
        line = json.loads(JsonFormatter().format(entry))
    finally:
        current_assessment.reset(token)
    assert (line["event"], line["assessment_id"], line["source"], line["level"]) == ("job completed", "a-1", "ai",
                                                                                     "warning")
