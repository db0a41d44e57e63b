"""Database errors, classified once: transient (retry), permanent (an operator must act), or a bug.

Contract: `classify(exc)` decides from the SQLSTATE alone; worker/db.py turns transient errors into
DatabaseUnavailable and permanent ones into DatabaseRefused at the boundary, and `report` is how every
call site counts (assessment_database_errors_total{operation, kind}) and logs one: only a transient error
is "retrying"; a permanent one says what is missing; a bug carries its traceback.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import psycopg

from worker.exceptions import DatabaseRefused, DatabaseUnavailable
from worker.metrics import DATABASE_ERRORS

log = logging.getLogger(__name__)

ErrorKind = Literal["transient", "permanent", "bug"]

# Connection exceptions (08), insufficient resources (53: too many connections, out of memory, disk full),
# operator intervention (57: query cancelled, admin shutdown, crash shutdown, cannot connect now).
_TRANSIENT_CLASSES = ("08", "53", "57")
_TRANSIENT_STATES = frozenset({
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available (lock_timeout)
    "55006",  # object_in_use
})
_PERMANENT_CLASSES = ("54",)  # program limit exceeded
_PERMANENT_STATES = frozenset({
    "42501",  # insufficient_privilege: a grant is missing
    "42P01",  # undefined_table
    "42883",  # undefined_function
    "42704",  # undefined_object
    "42703",  # undefined_column
    "3F000",  # invalid_schema_name
})


def classify(exc: BaseException) -> ErrorKind:
    """transient, permanent or bug, for a psycopg error or one of the worker's database errors."""
    if isinstance(exc, DatabaseUnavailable):
        return "transient"
    if isinstance(exc, DatabaseRefused):
        return "permanent"
    if not isinstance(exc, psycopg.Error):
        return "bug"
    state = exc.sqlstate
    if state is None:  # no server answer: the connection failed or the pool had none to give
        return "transient" if isinstance(exc, psycopg.OperationalError) else "bug"
    if state in _TRANSIENT_STATES or state.startswith(_TRANSIENT_CLASSES):
        return "transient"
    if state in _PERMANENT_STATES or state.startswith(_PERMANENT_CLASSES):
        return "permanent"
    return "bug"


def describe(exc: BaseException) -> str:
    """A short, fixed description of a permanent error for /ready and logs (no database text)."""
    state = exc.__cause__.sqlstate if isinstance(exc.__cause__, psycopg.Error) else getattr(exc, "sqlstate", None)
    if state == "42501":
        return "the worker's role lacks a privilege (grant it: docs/deployment.md, the worker's role)"
    if state in ("42P01", "42883", "42704", "42703", "3F000"):
        return "a table, function or schema the worker needs is missing (apply the migrations)"
    return "the database refuses the worker's statements (a program limit; see the worker's log)"


def report(operation: str, exc: BaseException, consequence: str, **extra: Any) -> ErrorKind:
    """Count `exc` under `operation` and log it with `consequence` (what happens to the work now)."""
    kind = classify(exc)
    DATABASE_ERRORS.labels(operation, kind).inc()
    fields = {"operation": operation, "error": str(exc), "error_kind": kind, **extra}
    if kind == "transient":
        log.warning(consequence, extra=fields)
    elif kind == "permanent":
        log.error("%s; %s", consequence, describe(exc), extra=fields)
    else:
        log.error(consequence, exc_info=exc, extra=fields)
    return kind
