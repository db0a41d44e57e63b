"""The CLI against the real database: stats, dlq list, dlq requeue, and a start that cannot serve /health."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import psycopg
import pytest

from devkit import REPO
from devkit.fake_openai import FakeOpenAI
from devkit.localdb import worker_url
from devkit.samples import answers, submit
from devkit.users import create_user
from tests.worker_support import fetch, recommender_for, running_worker, settings_for, wait_for_status

pytestmark = pytest.mark.usefixtures("empty_queues")


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"DATABASE_URL": worker_url(database_url), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "worker", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_without_database_url_says_what_to_set() -> None:
    result = subprocess.run([sys.executable, "-m", "worker", "stats"], cwd="/", env={"PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "DATABASE_URL is not set. Run 'scripts/localdb up'" in result.stderr


def test_cli_stats_prints_queues_and_statuses(admin: psycopg.Connection, database_url: str) -> None:
    submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(22)}])
    result = run_cli(database_url, "stats")
    assert result.returncode == 0, result.stderr
    assert "queue assessment_submitted: 1 messages, oldest" in result.stdout
    assert "queue assessment_submitted_dlq: 0 messages" in result.stdout
    for status in ("queued", "processing", "completed", "failed"):
        assert f"assessments {status}: " in result.stdout


async def test_cli_dlq_requeue_gives_a_job_that_used_its_attempts_a_full_set_again(
    admin: psycopg.Connection, database_url: str
) -> None:
    """The operator's recovery step (docs/operations.md, dead letters): the cause is fixed, the job is
    requeued, and the same worker settings complete it. Requeue restores every attempt."""
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(23)}])
    settings = settings_for(database_url, max_attempts=1, cache_ttl_seconds=0)
    # The cause: every result is refused, so the job's one attempt fails.
    admin.execute("alter table public.result_test add constraint test_reject_all check (latency_ms < 0) not valid")
    try:
        async with FakeOpenAI() as ai:
            async with running_worker(settings, recommender_for(settings, ai.base_url)):
                [failed] = await wait_for_status(database_url, [assessment_id], statuses=("failed",))
            assert failed["attempts"] == 1
            listed = await asyncio.to_thread(run_cli, database_url, "dlq", "list")
            assert listed.returncode == 0 and str(assessment_id) in listed.stdout
            assert '"reason": "attempt 1 of 1 failed: CheckViolation' in listed.stdout

            admin.execute("alter table public.result_test drop constraint test_reject_all")  # the fix
            requeued = await asyncio.to_thread(run_cli, database_url, "dlq", "requeue", "--all")
            assert requeued.returncode == 0 and "requeued dead letter" in requeued.stdout
            [row] = await fetch(database_url, "select status::text, attempts, last_error from public.test_assessment "
                                "where id = %s", (assessment_id,))
            assert row == {"status": "queued", "attempts": 0, "last_error": None}

            async with running_worker(settings, recommender_for(settings, ai.base_url)):  # the same settings
                [done] = await wait_for_status(database_url, [assessment_id])
    finally:
        admin.execute("alter table public.result_test drop constraint if exists test_reject_all")
    assert (done["source"], done["results"], done["attempts"]) == ("ai", 1, 1)
    assert await fetch(database_url, "select 1 from pgmq.q_assessment_submitted_dlq") == []
    empty = await asyncio.to_thread(run_cli, database_url, "dlq", "requeue", "--all")
    assert "the dead-letter queue is empty" in empty.stdout


def test_cli_dlq_requeue_of_an_unknown_id_says_what_to_do(database_url: str) -> None:
    result = run_cli(database_url, "dlq", "requeue", "999999999")
    assert result.returncode == 1
    assert "No dead-lettered job with msg_id 999999999" in result.stderr and "dlq list" in result.stderr


def test_cli_run_with_a_taken_ops_port_exits_and_says_what_to_set(database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"DATABASE_URL": worker_url(database_url), "PATH": "/usr/bin:/bin", "WORKER_OPS_PORT": str(port)}
        result = subprocess.run([sys.executable, "-m", "worker", "run"], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"Cannot serve /health on 127.0.0.1:{port}: Address already in use." in result.stderr
    assert "Set WORKER_OPS_PORT to a free port." in result.stderr
