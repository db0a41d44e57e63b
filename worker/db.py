"""The only module that talks SQL: named queries from worker/sql/queries.sql over a psycopg 3 pool.

psycopg errors that mean "the database is not reachable" become DatabaseUnavailable; other database
errors propagate as psycopg errors for the caller to record as a failed attempt.
"""

from __future__ import annotations

import re
import time
import weakref
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from worker.exceptions import DatabaseUnavailable

NOTIFY_CHANNEL = "assessment_submitted"
ASSESSMENT_COLUMNS = ("id", "user_id", "assessment_type", "answers", "context", "status", "attempts", "created_at")


def load_queries(text: str) -> dict[str, str]:
    """Split a file of `-- name: <name>` blocks into {name: sql}."""
    queries: dict[str, str] = {}
    for block in re.split(r"^-- name: ", text, flags=re.MULTILINE)[1:]:
        name, _, body = block.partition("\n")
        queries[name.strip()] = body.strip()
    return queries


# Package data, so an installed wheel carries it (pyproject.toml [tool.setuptools.package-data]).
QUERIES = load_queries(resources.files("worker").joinpath("sql", "queries.sql").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Message:
    """A leased pgmq message."""

    msg_id: int
    read_ct: int
    enqueued_at: datetime
    body: Any


@dataclass(frozen=True)
class Leased:
    """A message take_jobs leased: whether it is well formed, whether the assessment it names is held by
    another transaction (busy), and the assessment's row if take_jobs started it or it is finished."""

    message: Message
    well_formed: bool
    busy: bool
    assessment: dict[str, Any] | None


@dataclass(frozen=True)
class QueueMetrics:
    queue_name: str
    length: int
    oldest_age_seconds: float | None


@asynccontextmanager
async def translate_errors() -> AsyncIterator[None]:
    """Connection-level failures become DatabaseUnavailable (retry later); the rest propagate."""
    try:
        yield
    except psycopg.OperationalError as exc:  # includes AdminShutdown and psycopg_pool.PoolTimeout
        raise DatabaseUnavailable(f"database unreachable: {exc}") from exc


# Connections per worker, whatever WORKER_CONCURRENCY is: jobs wait for the AI, not for the database. The
# durable pool serves the committer (one batch at a time), the readiness check and the rare failure
# records; the progress pool the intake loop and the lease keeper; plus one LISTEN connection: 8 in all,
# inside the 15 clients Supavisor's session mode allows a role on the smallest computes.
POOL_SIZE = 4
PROGRESS_POOL_SIZE = 3
# A connection idle longer than this is checked (an empty query) before use: after a database restart it
# would fail its first statement. A busy connection is not: the check would add a round trip to every
# statement of every job.
CHECK_AFTER_IDLE_SECONDS = 2.0


# When each pooled connection last finished a statement. Recorded by Database._fetch rather than by a pool
# `reset` callback: with one, psycopg_pool returns every connection through a background task.
_last_used: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = weakref.WeakKeyDictionary()


async def _check_if_idle(conn: psycopg.AsyncConnection[Any]) -> None:
    used = _last_used.get(conn)
    if used is None or time.monotonic() - used > CHECK_AFTER_IDLE_SECONDS:
        await AsyncConnectionPool.check_connection(conn)


async def _asynchronous_commit(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute("set synchronous_commit = off")


def _pool(url: str, size: int, timeout: float, **kwargs: Any) -> AsyncConnectionPool:
    return AsyncConnectionPool(
        url,
        min_size=1,
        max_size=size,
        kwargs={"autocommit": True, "row_factory": dict_row, "application_name": "assessment-worker"},
        check=_check_if_idle,
        timeout=timeout,
        # Keep reconnecting (1 s, 2 s, 4 s, ...) through a restart; with 0 the pool gives up at once
        # and a waiting query sits out its whole timeout (tests/reliability: 8 s instead of ~3 s).
        reconnect_timeout=30,
        open=False,
        **kwargs,
    )


class Database:
    """Named queries over two connection pools. Create with `Database.open(url, size)`.

    `pool` commits durably: results, failures, dead letters, operator commands. `progress` commits
    without waiting for the disk (synchronous_commit = off) and runs only what a crash may lose at no
    cost, because the message is then simply delivered again: leases, the processing status, the
    acknowledgement of a message that needs no work. That takes a disk flush off every job's path.
    """

    def __init__(self, pool: AsyncConnectionPool, progress: AsyncConnectionPool) -> None:
        self.pool = pool
        self.progress = progress

    @classmethod
    async def open(cls, url: str, size: int = POOL_SIZE, timeout: float = 10.0) -> Database:
        pool = _pool(url, size, timeout)
        progress = _pool(url, PROGRESS_POOL_SIZE, timeout, configure=_asynchronous_commit)
        await pool.open(wait=False)
        await progress.open(wait=False)
        return cls(pool, progress)

    async def close(self) -> None:
        await self.progress.close()
        await self.pool.close()

    async def _fetch(self, name: str, params: dict[str, Any] | None = None, *, durable: bool = True
                     ) -> list[dict[str, Any]]:
        async with translate_errors(), (self.pool if durable else self.progress).connection() as conn:
            cursor = await conn.execute(QUERIES[name], params or {})
            rows = await cursor.fetchall()
            _last_used[conn] = time.monotonic()
            return rows  # type: ignore[return-value]

    async def take_jobs(self, qty: int, lease_seconds: int, max_reads: int, in_flight: Collection[int]
                        ) -> list[Leased]:
        """Lease up to `qty` messages and start the assessments they name (worker/sql/queries.sql:
        take_jobs)."""
        rows = await self._fetch("take_jobs", {"qty": qty, "vt": lease_seconds, "max_reads": max_reads,
                                               "in_flight": list(in_flight)}, durable=False)
        return [Leased(Message(r["msg_id"], r["read_ct"], r["enqueued_at"], r["message"]), r["well_formed"],
                       r["busy"], None if r["id"] is None else {key: r[key] for key in ASSESSMENT_COLUMNS})
                for r in rows]

    async def extend_leases(self, msg_ids: Sequence[int], lease_seconds: int) -> None:
        await self._fetch("set_leases", {"msg_ids": list(msg_ids), "vt": lease_seconds}, durable=False)

    async def release_leases(self, msg_ids: Sequence[int]) -> None:
        await self.extend_leases(msg_ids, 0)

    async def find_cached(self, cache_keys: Sequence[str], ttl_seconds: float) -> dict[str, dict[str, Any]]:
        """{cache_key: the newest AI result for it younger than ttl_seconds}, one query for a batch."""
        rows = await self._fetch("find_cached", {"cache_keys": list(cache_keys), "ttl": ttl_seconds}, durable=False)
        return {row["cache_key"]: row for row in rows}

    async def complete_jobs(self, jobs: Sequence[dict[str, Any]]) -> dict[int, bool]:
        """Commit a batch of results; returns {msg_id: whether that message's job completed its assessment}."""
        rows = await self._fetch("complete_jobs", {"jobs": Jsonb(list(jobs))})
        return {row["msg_id"]: row["completed"] for row in rows}

    async def acknowledge(self, msg_ids: Sequence[int]) -> None:
        await self._fetch("acknowledge", {"msg_ids": list(msg_ids)}, durable=False)

    async def record_failure(self, msg_id: int, assessment_id: UUID, user_message: str, delay_seconds: int) -> None:
        """Make the message visible again in `delay_seconds`; the owner reads `user_message` in last_error."""
        await self._fetch(
            "record_failure",
            {"msg_id": msg_id, "assessment_id": assessment_id, "error": user_message, "delay": delay_seconds},
        )

    async def dead_letter(self, message: Message, assessment_id: UUID | None, reason: str, user_message: str) -> None:
        """Move `message` to the dead-letter queue with `reason` (operators read it); fail `assessment_id`, if
        given, with `user_message` (its owner reads it)."""
        await self._fetch(
            "dead_letter",
            {
                "message": Jsonb(message.body),
                "reason": reason[:2000],
                "user_message": user_message,
                "msg_id": message.msg_id,
                "read_ct": message.read_ct,
                "assessment_id": assessment_id,
            },
        )

    async def dlq_list(self, limit: int) -> list[dict[str, Any]]:
        return await self._fetch("dlq_list", {"limit": limit})

    async def dlq_ids(self) -> list[int]:
        return [row["msg_id"] for row in await self._fetch("dlq_ids")]

    async def dlq_requeue(self, msg_id: int) -> dict[str, Any]:
        return (await self._fetch("dlq_requeue", {"msg_id": msg_id}))[0]

    async def queue_metrics(self) -> list[QueueMetrics]:
        rows = await self._fetch("queue_metrics")
        return [
            QueueMetrics(
                r["queue_name"],
                r["queue_length"],
                float(r["oldest_msg_age_sec"]) if r["oldest_msg_age_sec"] is not None else None,
            )
            for r in rows
        ]

    async def status_counts(self) -> dict[str, int]:
        return {row["status"]: row["count"] for row in await self._fetch("status_counts")}


async def listen(url: str) -> psycopg.AsyncConnection[Any]:
    """A dedicated session connection LISTENing for enqueue hints (needs a session, not a tx pooler).

    TCP keepalives make a silently dropped connection fail within about a minute instead of never.
    """
    async with translate_errors():
        conn = await psycopg.AsyncConnection.connect(
            url, autocommit=True, application_name="assessment-worker-listen",
            keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3,
        )
        try:
            await conn.execute(f"listen {NOTIFY_CHANNEL}")  # a fixed identifier, not a runtime value
        except BaseException:
            await conn.close()
            raise
        return conn
