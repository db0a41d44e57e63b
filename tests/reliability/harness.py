"""Shared machinery of the fault-injection scenarios: submit, watch, measure, report.

Every scenario ends in `finish`, which counts what became of the submitted assessments and returns the
one line the suite prints: `scenario=<name> submitted=N completed=N lost=N duplicates=N recover_seconds=X`.

- lost: submitted assessments that are not `completed` when the scenario gives up waiting;
- duplicates: assessments with more than one result_test row (the unique constraint forbids it; we
  count anyway, because that constraint is exactly what these scenarios lean on);
- recover_seconds: for a fault with an end (a kill, a restart, terminated sessions, a 429 burst) the
  time from the fault's end to the next completed job, the worst over all faults of the scenario; for
  a fault that lasts the whole run (random AI failures, an idle transaction) there is no end, so it is
  the longest stall instead: the largest gap between the workers' start and the first completion or
  between two consecutive completions.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from devkit.processes import WorkerProcess, wait_until
from devkit.samples import submit_many
from tests.worker_support import purge_queues, worker_process

SUBMITTED = 1000
LINES: list[str] = []  # collected for the terminal summary (tests/reliability/conftest.py)


def now() -> datetime:
    """Wall-clock time, comparable with the database's timestamptz columns (same host, same clock)."""
    return datetime.now(UTC)


def start_scenario(conn: psycopg.Connection, seed: int, total: int = SUBMITTED) -> list[uuid.UUID]:
    """Empty queues, then `total` committed assessments submitted by users (10 per user: the rate limit)."""
    purge_queues(conn)
    return submit_many(conn, total, seed=seed)


def progress(url: str, ids: Sequence[uuid.UUID]) -> dict[str, int]:
    """How many of `ids` are in each status (a fresh connection: the server may have restarted)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "select status::text, count(*) from public.test_assessment where id = any(%s) group by 1",
            (list(ids),)).fetchall()
    return {status: int(count) for status, count in rows}


def completed(url: str, ids: Sequence[uuid.UUID]) -> int:
    try:
        return progress(url, ids).get("completed", 0)
    except psycopg.OperationalError:
        return -1  # database away (a restart scenario); the caller keeps waiting


def wait_completed(url: str, ids: Sequence[uuid.UUID], at_least: int, timeout: float) -> bool:
    return wait_until(lambda: completed(url, ids) >= at_least, timeout, interval=0.2)


@dataclass
class Workers:
    """`python -m worker run` processes of one scenario; every log is kept for the failure report."""

    database_url: str
    ai_url: str
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    processes: list[WorkerProcess] = field(default_factory=list)
    started_at: datetime | None = None

    def spawn(self) -> WorkerProcess:
        process = worker_process(self.database_url, self.ai_url, self.log_dir, self.env)
        self.processes.append(process)
        if self.started_at is None:
            self.started_at = now()
        return process

    @property
    def current(self) -> WorkerProcess:
        return self.processes[-1]

    def logs_tail(self, lines: int = 15) -> str:
        parts = []
        for process in self.processes[-3:]:
            tail = process.log().splitlines()[-lines:]
            parts.append(f"--- {process.log_path.name} (exit {process.process.poll()})\n" + "\n".join(tail))
        return "\n".join(parts)

    def close(self) -> None:
        for process in self.processes:
            process.close()


@dataclass(frozen=True)
class Outcome:
    name: str
    submitted: int
    completed: int
    lost: int
    duplicates: int
    recover_seconds: float
    sources: dict[str, int]
    unfinished: list[dict[str, Any]]

    @property
    def line(self) -> str:
        return (f"scenario={self.name} submitted={self.submitted} completed={self.completed} "
                f"lost={self.lost} duplicates={self.duplicates} recover_seconds={self.recover_seconds:.1f}")


def recover_after(times: Sequence[datetime], fault_ends: Sequence[datetime]) -> float:
    """Worst time from a fault's end to the next completion (faults after the last completion: none left)."""
    worst = 0.0
    for end in fault_ends:
        later = [t for t in times if t >= end]
        if later:
            worst = max(worst, (min(later) - end).total_seconds())
    return worst


def longest_stall(times: Sequence[datetime], started_at: datetime) -> float:
    points = [started_at, *sorted(times)]
    return max((b - a).total_seconds() for a, b in itertools.pairwise(points)) if times else 0.0


def finish(
    url: str, name: str, ids: Sequence[uuid.UUID], workers: Workers, *,
    fault_ends: Sequence[datetime] | None = None, recover_source: str | None = None, timeout: float = 60.0,
) -> Outcome:
    """Wait (up to `timeout`) for every assessment to complete, then measure and record the scenario;
    `recover_source` counts only completions from that source as recovered (e.g. "ai" after an AI
    fault, where fallback results also complete jobs while the fault lasts)."""
    wait_completed(url, ids, len(ids), timeout)
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("""
            select a.id, a.status::text as status, a.attempts, a.last_error, a.completed_at,
                   (select count(*) from public.result_test r where r.assessment_id = a.id) as results,
                   (select r.source::text from public.result_test r where r.assessment_id = a.id limit 1)
                     as source
            from public.test_assessment a where a.id = any(%s)""", (list(ids),)).fetchall()
    columns = ("id", "status", "attempts", "last_error", "completed_at", "results", "source")
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    done = [r for r in records if r["status"] == "completed"]
    times = [r["completed_at"] for r in done if recover_source is None or r["source"] == recover_source]
    assert workers.started_at is not None
    recover = recover_after(times, fault_ends) if fault_ends is not None else longest_stall(
        times, workers.started_at)
    sources: dict[str, int] = {}
    for r in done:
        sources[str(r["source"])] = sources.get(str(r["source"]), 0) + 1
    outcome = Outcome(
        name=name, submitted=len(ids), completed=len(done), lost=len(ids) - len(done),
        duplicates=sum(1 for r in records if r["results"] > 1), recover_seconds=recover, sources=sources,
        unfinished=[r for r in records if r["status"] != "completed"][:5],
    )
    LINES.append(outcome.line)
    print(outcome.line, flush=True)
    return outcome


def assert_no_loss(outcome: Outcome, workers: Workers) -> None:
    assert outcome.lost == 0 and outcome.completed == outcome.submitted, (
        f"{outcome.line}\nunfinished (first 5): {outcome.unfinished}\n{workers.logs_tail()}")
    assert outcome.duplicates == 0, outcome.line
