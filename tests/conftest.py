"""Shared fixtures: a migrated local database (scripts/localdb) and connections to it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.support import create_user, local_database_url
from tests.worker_support import purge_queues


@pytest.fixture(scope="session")
def database_url() -> str:
    return local_database_url()


@pytest.fixture
def admin(database_url: str) -> Iterator[psycopg.Connection]:
    """A superuser connection in autocommit mode (what `supabase db push` and operators use)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def user_id(admin: psycopg.Connection) -> uuid.UUID:
    return create_user(admin)


@pytest.fixture
def other_user_id(admin: psycopg.Connection) -> uuid.UUID:
    return create_user(admin)


@pytest.fixture
def empty_queues(admin: psycopg.Connection) -> None:
    """Worker tests start from empty job and dead-letter queues (tests run one at a time)."""
    purge_queues(admin)
