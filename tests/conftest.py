"""Shared fixtures: the migrated local database (devkit.localdb) and connections to it.

Every fixture here is lazy: tests/unit requests none of them, so it runs without a database.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest

from devkit import localdb
from devkit.fake_openai import FakeOpenAI
from devkit.users import create_user
from tests.worker_support import purge_queues


@pytest.fixture(scope="session")
def database_url() -> str:
    return localdb.up()


@pytest.fixture(autouse=True)
def fresh_ai_limiter(request: pytest.FixtureRequest) -> None:
    """A test that uses the database starts with no provider pause or pace left by another: every worker
    shares them on purpose (worker/admission.py), so one test's 429 would make the next one wait."""
    if "database_url" not in request.fixturenames:
        return
    with psycopg.connect(request.getfixturevalue("database_url"), autocommit=True) as conn:
        conn.execute("update private.ai_limiter set next_request_at = null, tokens_full_at = null, paused_until = null")


@pytest.fixture
def admin(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """postgres (not a superuser, as on Supabase) in autocommit mode: what migrations and operators use."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def user_id(admin: psycopg.Connection[Any]) -> uuid.UUID:
    return create_user(admin)


@pytest.fixture
def other_user_id(admin: psycopg.Connection[Any]) -> uuid.UUID:
    return create_user(admin)


@pytest.fixture
def no_submission_limits(admin: psycopg.Connection[Any]) -> Iterator[None]:
    """The per-user submission limits (per minute, per day, stored) off for one test, then restored."""
    names = ("submissions_per_minute", "submissions_per_day", "stored_assessments_per_user")
    before = admin.execute(f"select {', '.join(names)} from private.settings").fetchone()
    assert before is not None
    admin.execute("update private.settings set " + ", ".join(f"{name} = null" for name in names))
    yield
    admin.execute("update private.settings set " + ", ".join(f"{name} = %s" for name in names), before)


@pytest.fixture
def empty_queues(admin: psycopg.Connection[Any]) -> None:
    """Worker tests start from empty job and dead-letter queues (tests run one at a time)."""
    purge_queues(admin)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    """A real OpenAI-compatible HTTP server on a free local port (devkit.fake_openai), answering well by default."""
    async with FakeOpenAI() as server:
        yield server
