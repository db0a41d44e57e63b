"""How a worker process stops: the grace covers an AI call in flight, a grace shorter than the AI deadline
is refused at start, and a second signal stops it at once, leaving its jobs to redelivery."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from devkit import REPO
from devkit.localdb import worker_url
from devkit.processes import WorkerProcess, fake_ai_process, wait_until
from devkit.samples import submit_many
from tests.worker_support import fetch, wait_for_status, worker_process
from worker.config import load_settings

pytestmark = pytest.mark.usefixtures("empty_queues")


def _processing(url: str, ids: list[uuid.UUID]) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("select count(*) from public.test_assessment where id = any(%s) and status = 'processing'",
                           (ids,)).fetchone()
    assert row is not None
    return int(row[0])


def test_default_grace_covers_the_ai_deadline_and_a_commit() -> None:
    defaults = load_settings({"DATABASE_URL": "postgresql://x@127.0.0.1/postgres"})
    assert defaults.shutdown_grace_seconds >= defaults.ai_deadline_seconds + 5


def test_a_grace_shorter_than_the_ai_deadline_is_refused_at_start(database_url: str) -> None:
    env = {"DATABASE_URL": worker_url(database_url), "PATH": "/usr/bin:/bin",
           "WORKER_SHUTDOWN_GRACE_SECONDS": "20", "AI_DEADLINE_SECONDS": "25"}
    result = subprocess.run([sys.executable, "-m", "worker", "run"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "WORKER_SHUTDOWN_GRACE_SECONDS=20 is shorter than AI_DEADLINE_SECONDS=25" in result.stderr


async def test_sigterm_during_an_ai_call_lets_it_finish_and_commit(
    admin: psycopg.Connection, database_url: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """Today's defaults scaled down: a call that takes most of the deadline, SIGTERM soon after it starts."""
    ids = submit_many(admin, 3, seed=7100)
    with fake_ai_process(latency=3.0) as ai_url:
        worker = worker_process(database_url, ai_url, tmp_path,
                                {"AI_DEADLINE_SECONDS": "4", "WORKER_SHUTDOWN_GRACE_SECONDS": "6"})
        workers.append(worker)
        assert wait_until(lambda: _processing(database_url, ids) == 3, timeout=20)
        assert worker.terminate() == 0
    rows = await wait_for_status(database_url, ids, timeout=1)
    assert {(row["source"], row["attempts"]) for row in rows} == {("ai", 1)}  # finished, not paid for twice


async def test_a_second_signal_stops_at_once_and_leaves_jobs_to_redelivery(
    admin: psycopg.Connection, database_url: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    ids = submit_many(admin, 3, seed=7200)
    with fake_ai_process(latency=3600) as never:
        worker = worker_process(database_url, never, tmp_path,
                                {"AI_DEADLINE_SECONDS": "30", "WORKER_SHUTDOWN_GRACE_SECONDS": "35"})
        workers.append(worker)
        assert wait_until(lambda: _processing(database_url, ids) == 3, timeout=20)
        worker.process.send_signal(signal.SIGTERM)
        assert wait_until(lambda: "finishing in-flight jobs" in worker.log(), timeout=5)
        stopped_at = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        code = worker.process.wait(timeout=10)
        elapsed = time.monotonic() - stopped_at
    assert code == 128 + signal.SIGTERM and elapsed < 3, (code, elapsed, worker.log_tail())
    assert "second signal: stopping at once" in worker.log()
    # Nothing was released or failed: the jobs come back when their leases (3 s) end.
    leases = await fetch(database_url, "select count(*) as n from pgmq.q_assessment_submitted "
                         "where vt > clock_timestamp()")
    assert leases == [{"n": 3}] and _processing(database_url, ids) == 3
    with fake_ai_process() as ai_url:
        workers.append(worker_process(database_url, ai_url, tmp_path))
        rows = await wait_for_status(database_url, ids, timeout=30)
    assert {(row["source"], row["attempts"], row["results"]) for row in rows} == {("ai", 2, 1)}
