"""What the worker retries when its database is away is counted (assessment_database_errors_total), so an
operator's alerts (monitoring/alerts.yml: commits retrying, lease extensions failing) can see it. The
database here is really unreachable: a closed port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.factories import message, result_row
from tests.worker_support import eventually
from worker.committer import Committer
from worker.db import Database
from worker.leases import LeaseKeeper
from worker.metrics import REGISTRY


@pytest.fixture
async def unreachable() -> AsyncIterator[Database]:
    db = await Database.open("postgresql://assessment_worker@127.0.0.1:9/postgres", size=1, timeout=0.2)
    yield db
    await db.close()


def _errors(operation: str, kind: str = "transient") -> float:
    return REGISTRY.get_sample_value("assessment_database_errors_total", {"operation": operation, "kind": kind}) or 0.0


async def test_a_commit_the_database_cannot_take_is_retried_and_counted(unreachable: Database) -> None:
    before = _errors("commit")
    committer = Committer(unreachable)
    running = asyncio.create_task(committer.run())
    commit = asyncio.create_task(committer.commit(result_row()))
    try:
        assert await eventually(lambda: _errors("commit") >= before + 2, timeout=10)
        assert not commit.done()  # still retrying: a computed result waits for the database to come back
    finally:
        running.cancel()
        commit.cancel()
        await asyncio.gather(running, commit, return_exceptions=True)


async def test_a_lease_extension_the_database_cannot_take_is_counted(unreachable: Database) -> None:
    before = _errors("extend_leases")
    leases = LeaseKeeper(unreachable, 3)
    held = [leases.hold(message(1)), leases.hold(message(2))]
    for lease in held:
        await lease.__aenter__()
    keeper = asyncio.create_task(leases.run())  # extends every second
    try:
        assert await eventually(lambda: _errors("extend_leases") >= before + 1, timeout=10)
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
