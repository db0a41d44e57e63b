"""What every section of the benchmark shares: the plan, the run users, the database, the processes."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from devkit import REPO, localdb
from devkit.processes import FakeAiProcess, WorkerProcess

CLIENTS = 8  # pgbench connections of every closed-loop load
RUN_USERS = 256  # users the load is spread over (the per-user limits are off, so only RLS cares)
# The per-user limits in private.settings the benchmark turns off while it runs (and restores).
SUBMISSION_LIMITS = ("submissions_per_minute", "submissions_per_day", "stored_assessments_per_user")


@dataclass(frozen=True)
class Plan:
    """How much work each section does; --quick shrinks everything to finish in about two minutes."""

    quick: bool
    submit_seconds: float
    submit_rounds: int
    drain_jobs: int
    latency_seconds: float
    slow_ai_jobs: int
    seed_rows: int
    status_queries: int


FULL = Plan(False, submit_seconds=10, submit_rounds=3, drain_jobs=3000, latency_seconds=20, slow_ai_jobs=1280,
            seed_rows=1_000_000, status_queries=10_000)
QUICK = Plan(True, submit_seconds=3, submit_rounds=2, drain_jobs=800, latency_seconds=5, slow_ai_jobs=384,
             seed_rows=100_000, status_queries=2_000)


def note(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle (all cores), from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Bench:
    """The database (as postgres, its owner), the URLs each actor uses, and where logs go."""

    url: str
    log_dir: Path
    plan: Plan
    conn: psycopg.Connection[Any] = field(init=False)
    users: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.conn = psycopg.connect(self.url, autocommit=True, application_name="bench")
        self.users = [str(u) for (u,) in self.conn.execute(
            "select md5('bench-run-user-' || i)::uuid from generate_series(0, %s - 1) i", (RUN_USERS,))]

    @property
    def api_url(self) -> str:
        """PostgREST logs in as authenticator and switches to the request's role; so does the load."""
        return localdb.url("authenticator")

    def scalar(self, query: str, params: Any = None) -> Any:
        row = self.conn.execute(query, params).fetchone()
        return row[0] if row else None

    def prepare(self) -> dict[str, Any]:
        """Create the run users and bench_plain, turn the per-user limits off; returns them to restore."""
        self.conn.execute(
            "insert into auth.users (id, email, role, aud) "
            "select md5('bench-run-user-' || i)::uuid, 'bench-run-' || i || '@bench.invalid', 'authenticated', "
            "'authenticated' from generate_series(0, %s - 1) i on conflict (id) do nothing", (RUN_USERS,))
        limits = self.conn.execute(f"select {', '.join(SUBMISSION_LIMITS)} from private.settings").fetchone()
        assert limits is not None
        self.conn.execute("update private.settings set " + ", ".join(f"{name} = null" for name in SUBMISSION_LIMITS))
        self.conn.execute("drop table if exists bench_plain")
        self.conn.execute("create table bench_plain (like public.test_assessment including defaults including indexes)")
        self.conn.execute("grant insert, select on bench_plain to authenticated")  # for pgbench.ENVELOPE_INSERT
        self.reset()
        return dict(zip(SUBMISSION_LIMITS, limits, strict=True))

    def reset(self) -> None:
        """Empty the queues, and delete the run users' assessments (results cascade) and archived jobs."""
        self.conn.execute("select pgmq.purge_queue('assessment_submitted'), "
                          "pgmq.purge_queue('assessment_submitted_dlq')")
        self.conn.execute("delete from pgmq.a_assessment_submitted where message ->> 'user_id' = any(%s)",
                          (self.users,))
        self.conn.execute("delete from public.test_assessment where user_id = any(%s::uuid[])", (self.users,))
        self.conn.execute("truncate bench_plain")

    def cleanup(self, limits: dict[str, Any]) -> None:
        self.reset()
        self.conn.execute("delete from auth.users where email like 'bench-run-%%@bench.invalid'")
        self.conn.execute("drop table if exists bench_plain")
        self.conn.execute("update private.settings set " + ", ".join(f"{name} = %({name})s" for name in limits),
                          limits)
        self.conn.close()

    def results(self) -> int:
        return int(self.scalar("select count(*) from public.result_test where user_id = any(%s::uuid[])",
                               (self.users,)))

    def wait_results(self, total: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (done := self.results()) < total:
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: only {done} of {total} results after {timeout:.0f}s; see {self.log_dir}.")
            time.sleep(0.05)

    def worker(self, name: str, ai: FakeAiProcess, *, source: Path = REPO, **env: str) -> WorkerProcess:
        """A worker as assessment_worker against `ai`, ready (its /ready answered 200); `source` is the tree
        whose worker runs (this one unless a comparison asks for another)."""
        worker = WorkerProcess(self.log_dir / f"{name}.log", {
            "DATABASE_URL": localdb.url("assessment_worker"), "OPENAI_API_KEY": "sk-bench",
            "OPENAI_BASE_URL": ai.url, "CACHE_TTL_SECONDS": "0"} | env, source=source)
        worker.wait_ready()
        return worker


@contextmanager
def frozen(workers: list[WorkerProcess]) -> Iterator[None]:
    """SIGSTOP the workers for the block (they read nothing while a queue is filled), then SIGCONT."""
    for worker in workers:
        os.kill(worker.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for worker in workers:
            os.kill(worker.pid, signal.SIGCONT)
