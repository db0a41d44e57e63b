"""A job that takes longer than its lease keeps it: the worker extends leases while the job is in flight.

Small on purpose (it needs slow AI calls, not volume): 20 assessments, AI latency 8 s, lease 3 s, two
workers. Without working lease extension every job's message becomes visible again after 3 s, is read
again (by the other worker, or counted as another delivery by the same one), and with
WORKER_MAX_ATTEMPTS=2 the third read dead-letters a job that is still being processed.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.reliability.harness import Workers, assert_no_loss, finish, start_scenario
from tests.reliability.threaded_ai import threaded_fake_ai

pytestmark = pytest.mark.reliability




def test_jobs_slower_than_the_lease_are_not_redelivered(
    admin: psycopg.Connection, database_url: str, workers_for: list[Workers], tmp_path: Path
) -> None:
    ids = start_scenario(admin, seed=700_000, total=20)
    with threaded_fake_ai(latency=8.0) as ai:
        env = {"WORKER_LEASE_SECONDS": "3", "WORKER_MAX_ATTEMPTS": "2", "AI_DEADLINE_SECONDS": "30"}
        group = Workers(database_url, ai.base_url, tmp_path, env)
        workers_for.append(group)
        group.spawn()
        group.spawn()
        outcome = finish(database_url, "ai_slower_than_lease", ids, group, fault_ends=[], timeout=40)
        ai_calls = ai.served()
    assert_no_loss(outcome, group)
    with psycopg.connect(database_url) as conn:
        attempts = conn.execute("select max(attempts) from public.test_assessment where id = any(%s)",
                                (ids,)).fetchone()
    assert attempts == (1,) and ai_calls == len(ids), (
        f"jobs were handed out again while in flight: max attempts {attempts}, {ai_calls} AI calls for "
        f"{len(ids)} jobs\n{group.logs_tail(5)}")
    assert "could not extend leases" not in "".join(p.log() for p in group.processes), group.logs_tail()
