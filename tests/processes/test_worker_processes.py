"""Worker processes under faults: SIGKILL, two workers on one queue, SIGTERM, a database restart."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import psycopg
import pytest

from devkit import localdb
from devkit.processes import WorkerProcess, fake_ai_process, wait_until
from devkit.samples import submit_many
from tests.worker_support import wait_for_status, worker_process

pytestmark = pytest.mark.usefixtures("empty_queues")


def count_status(url: str, ids: list[uuid.UUID], status: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("select count(*) from public.test_assessment where id = any(%s) and status = %s",
                           (ids, status)).fetchone()
    assert row is not None
    return int(row[0])


async def test_worker_killed_mid_job_is_redelivered_and_completed_exactly_once(
    admin: psycopg.Connection, database_url: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    ids = submit_many(admin, 10, seed=3000)
    with fake_ai_process(latency=2.0) as ai_url:
        first = worker_process(database_url, ai_url, tmp_path)
        workers.append(first)
        assert wait_until(lambda: count_status(database_url, ids, "processing") == 10, timeout=20)
        first.kill()  # every job is in flight: all of them die with the process
        assert count_status(database_url, ids, "completed") == 0
        workers.append(worker_process(database_url, ai_url, tmp_path))
        rows = await wait_for_status(database_url, ids, timeout=30)
    assert all(row["results"] == 1 for row in rows)
    assert all(row["attempts"] == 2 for row in rows)  # taken by the killed worker, then redelivered once
    assert {row["source"] for row in rows} == {"ai"}


async def test_two_worker_processes_give_every_assessment_exactly_one_result(
    admin: psycopg.Connection, database_url: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    ids = submit_many(admin, 200, seed=4000)
    with fake_ai_process(latency=0.05) as ai_url:
        workers += [worker_process(database_url, ai_url, tmp_path) for _ in range(2)]
        rows = await wait_for_status(database_url, ids, timeout=60)
    assert len(rows) == 200 and all(row["results"] == 1 for row in rows)
    assert all(row["attempts"] == 1 for row in rows)  # leases held: no job was handed out twice
    assert all("job completed" in worker.log() for worker in workers)  # both did work


async def test_sigterm_during_a_batch_loses_nothing(
    admin: psycopg.Connection, database_url: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    ids = submit_many(admin, 40, seed=5000)
    with fake_ai_process(latency=1.0) as ai_url:
        first = worker_process(database_url, ai_url, tmp_path, {"WORKER_CONCURRENCY": "16"})
        workers.append(first)
        assert wait_until(lambda: count_status(database_url, ids, "processing") >= 10, timeout=20)
        assert first.terminate() == 0
        log = first.log()
        assert "finishing in-flight jobs" in log and "worker stopped" in log
        finished_by_first = count_status(database_url, ids, "completed")
        assert finished_by_first >= 10  # the in-flight jobs were finished, not dropped
        workers.append(worker_process(database_url, ai_url, tmp_path))
        rows = await wait_for_status(database_url, ids, timeout=30)
    assert all(row["results"] == 1 for row in rows)


async def test_worker_reconnects_after_the_database_restarts(
    admin: psycopg.Connection, database_url: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    with fake_ai_process() as ai_url:
        worker = worker_process(database_url, ai_url, tmp_path)
        workers.append(worker)
        before = submit_many(admin, 10, seed=6000)
        await wait_for_status(database_url, before, timeout=20)
        admin.close()
        await asyncio.to_thread(localdb.down)
        await asyncio.sleep(1)  # the worker sees the database gone
        await asyncio.to_thread(localdb.up)
        with psycopg.connect(database_url, autocommit=True) as conn:
            after = submit_many(conn, 10, seed=6100)
        rows = await wait_for_status(database_url, after, timeout=30)
        assert worker.process.poll() is None, "the worker must survive a database restart"
    assert all(row["results"] == 1 for row in rows)
    assert "cannot read or start jobs; retrying" in worker.log() or "LISTEN connection lost" in worker.log()
