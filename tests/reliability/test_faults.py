"""Fault injection at volume: 1,000 assessments per scenario through real worker processes and a fake AI.

Each scenario ends with every assessment completed exactly once, and prints its line (see harness.py).
Run: `scripts/run-tests --reliability` (or `pytest tests/reliability -m reliability -p no:cacheprovider`).
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from devkit import localdb
from devkit.processes import fake_ai_process, wait_until
from tests.reliability.harness import (
    Workers,
    assert_no_loss,
    completed,
    finish,
    now,
    start_scenario,
    wait_completed,
)
from tests.reliability.threaded_ai import threaded_fake_ai

pytestmark = pytest.mark.reliability


def new_workers(made: list[Workers], database_url: str, ai_url: str, tmp_path: Path, **env: str) -> Workers:
    group = Workers(database_url, ai_url, tmp_path, env)
    made.append(group)
    return group


def test_worker_sigkilled_every_few_seconds_loses_nothing(
    admin: psycopg.Connection, database_url: str, workers_for: list[Workers], tmp_path: Path
) -> None:
    ids = start_scenario(admin, seed=100_000)
    rng = random.Random(7)
    fault_ends: list[datetime] = []
    with fake_ai_process(latency=0.2) as ai_url:
        workers = new_workers(workers_for, database_url, ai_url, tmp_path)
        workers.spawn()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(2.0, 3.0))
            if completed(database_url, ids) == len(ids):
                break
            workers.current.kill()  # SIGKILL: no drain, no lease release, maybe mid-commit
            workers.spawn()
            fault_ends.append(now())
        outcome = finish(database_url, "sigkill_every_2_3s", ids, workers, fault_ends=fault_ends)
    assert_no_loss(outcome, workers)
    assert len(fault_ends) >= 5, f"only {len(fault_ends)} kills: the run was too short to test anything"


def test_postgres_restart_mid_run_loses_nothing(
    admin: psycopg.Connection, database_url: str, workers_for: list[Workers], tmp_path: Path
) -> None:
    ids = start_scenario(admin, seed=200_000)
    admin.close()  # the restart would kill it anyway
    with fake_ai_process(latency=0.2) as ai_url:
        workers = new_workers(workers_for, database_url, ai_url, tmp_path)
        worker = workers.spawn()
        assert wait_completed(database_url, ids, 250, timeout=60), workers.logs_tail()
        localdb.down()
        time.sleep(2)  # long enough for leases (3 s) to run out and every pooled connection to fail
        localdb.up()
        with psycopg.connect(database_url, autocommit=True) as conn:  # reconnect our own side
            row = conn.execute("select pg_postmaster_start_time()").fetchone()
        assert row is not None
        restarted_at: datetime = row[0].astimezone(UTC)
        outcome = finish(database_url, "postgres_restart", ids, workers, fault_ends=[restarted_at])
        assert worker.process.poll() is None, "the worker must survive a database restart"
    assert_no_loss(outcome, workers)
    log = worker.log()
    assert "cannot read or start jobs; retrying" in log or "LISTEN connection lost" in log, workers.logs_tail()


def test_worker_sessions_terminated_repeatedly_loses_nothing(
    admin: psycopg.Connection, database_url: str, workers_for: list[Workers], tmp_path: Path
) -> None:
    ids = start_scenario(admin, seed=300_000)
    fault_ends: list[datetime] = []
    terminated: list[int] = []
    with fake_ai_process(latency=0.3) as ai_url:
        workers = new_workers(workers_for, database_url, ai_url, tmp_path)
        worker = workers.spawn()
        assert wait_completed(database_url, ids, 100, timeout=60), workers.logs_tail()
        for _ in range(3):
            row = admin.execute("""
                select count(*) filter (where pg_terminate_backend(pid))
                from pg_stat_activity where usename = 'assessment_worker'""").fetchone()
            assert row is not None
            terminated.append(int(row[0]))
            fault_ends.append(now())
            time.sleep(3)
        outcome = finish(database_url, "terminate_worker_backends", ids, workers, fault_ends=fault_ends)
        assert worker.process.poll() is None, "the worker must survive losing its sessions"
    assert_no_loss(outcome, workers)
    assert all(count >= 1 for count in terminated), f"nothing to terminate: {terminated}"


def test_ai_failing_30_percent_of_calls_completes_everything(
    admin: psycopg.Connection, database_url: str, workers_for: list[Workers], tmp_path: Path
) -> None:
    ids = start_scenario(admin, seed=400_000)
    with fake_ai_process(latency=0.05, fail_rate=0.3) as ai_url:
        workers = new_workers(workers_for, database_url, ai_url, tmp_path)
        workers.spawn()
        outcome = finish(database_url, "ai_fail_rate_0.3", ids, workers)
    assert_no_loss(outcome, workers)
    assert set(outcome.sources) <= {"ai", "fallback"}, outcome.sources
    assert outcome.sources.get("ai", 0) >= 0.9 * len(ids), outcome.sources  # 4 attempts: 0.3**4 fall back
    print(f"  sources: {outcome.sources}")


def test_burst_of_429_with_retry_after_completes_everything(
    admin: psycopg.Connection, database_url: str, workers_for: list[Workers], tmp_path: Path
) -> None:
    ids = start_scenario(admin, seed=500_000)
    with threaded_fake_ai(latency=0.1) as ai:
        workers = new_workers(workers_for, database_url, ai.base_url, tmp_path)
        workers.spawn()
        assert wait_completed(database_url, ids, 200, timeout=60), workers.logs_tail()
        burst = ai.burst_429(200, retry_after=1)
        burst_started = time.time()
        last = burst.first + burst.count - 1
        assert wait_until(lambda: ai.served() > last, timeout=90), f"burst not consumed: {ai.served()}"
        burst_ended = ai.wall_time_of(last)
        outcome = finish(database_url, "ai_429_burst", ids, workers,
                         fault_ends=[datetime.fromtimestamp(burst_ended, UTC)], recover_source="ai")
    assert_no_loss(outcome, workers)
    assert set(outcome.sources) <= {"ai", "fallback"}, outcome.sources
    print(f"  sources: {outcome.sources}; 200 x 429 served over {burst_ended - burst_started:.1f}s")


def test_idle_in_transaction_session_held_all_run_completes_everything(
    admin: psycopg.Connection, database_url: str, workers_for: list[Workers], tmp_path: Path
) -> None:
    ids = start_scenario(admin, seed=600_000)
    with psycopg.connect(database_url) as idle:  # not autocommit: the select opens a transaction
        # Repeatable read keeps the snapshot (and so the xmin horizon) for the whole transaction, the
        # harmful kind of idle session: vacuum cannot remove the queue's dead rows while it lasts.
        idle.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        idle.execute("select id from public.test_assessment limit 1").fetchall()
        idle_pid = idle.info.backend_pid
        with fake_ai_process(latency=0.1) as ai_url:
            workers = new_workers(workers_for, database_url, ai_url, tmp_path)
            workers.spawn()
            outcome = finish(database_url, "idle_in_transaction", ids, workers)
        row = admin.execute("""
            select state, backend_xmin is not null,
                   exists (select from pg_locks l where l.pid = a.pid and l.granted
                           and l.relation = 'public.test_assessment'::regclass)
            from pg_stat_activity a where pid = %s""", (idle_pid,)).fetchone()
        assert row == ("idle in transaction", True, True), f"the idle transaction did not last the run: {row}"
        idle.rollback()
    assert_no_loss(outcome, workers)
