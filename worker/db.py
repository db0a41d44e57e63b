"""The only module that talks SQL: named queries from worker/sql/queries.sql over a psycopg 3 pool.

Errors are classified once, here at the boundary (worker/db_errors.py): transient ones become
DatabaseUnavailable (retry later), permanent ones DatabaseRefused (an operator must act), and anything
else propagates as the psycopg error it is (a bug; the caller records a failed attempt).

Every write a lease holder makes passes its lease, (msg_id, read_ct), and is fenced by it: it changes
nothing once the message has been delivered again (worker/sql/queries.sql, "Fencing").
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
from typing import Any, Literal
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from worker.db_errors import classify
from worker.exceptions import DatabaseRefused, DatabaseUnavailable
from worker.models import Outcome

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
    """A leased pgmq message; (msg_id, read_ct) is the lease that fences this delivery's writes."""

    msg_id: int
    read_ct: int
    enqueued_at: datetime
    body: Any


# What take_jobs found for each message it leased (worker/sql/queries.sql: take_jobs).
LeaseState = Literal["invalid", "started", "done", "overread", "exhausted", "busy"]


@dataclass(frozen=True)
class Leased:
    """A message take_jobs leased, its state, and its assessment's row (None when it has none)."""

    message: Message
    state: LeaseState
    assessment: dict[str, Any] | None


# What complete_jobs did with each job (worker/sql/queries.sql: complete_jobs).
CommitOutcome = Literal["completed", "finished", "busy", "lease_lost"]
# What dead_letter did (worker/sql/queries.sql: dead_letter).
DeadLetterOutcome = Literal["dead_lettered", "busy", "lease_lost"]


@dataclass(frozen=True)
class ResultRow:
    """One finished job as complete_jobs takes it: its lease, its assessment, and the result to store."""

    message: Message
    assessment_id: UUID
    outcome: Outcome

    def as_json(self) -> dict[str, Any]:
        return {"msg_id": self.message.msg_id, "read_ct": self.message.read_ct,
                "assessment_id": str(self.assessment_id),
                **self.outcome.recommendations.model_dump(mode="json"),
                **self.outcome.model_dump(mode="json", exclude={"recommendations"})}


@dataclass(frozen=True)
class AiLimits:
    """The provider limits and budgets every admission is checked against (the same on every replica)."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    user_daily_tokens: int | None = None
    daily_budget_usd: float | None = None

    def params(self) -> dict[str, Any]:
        return {"requests_per_minute": self.requests_per_minute, "tokens_per_minute": self.tokens_per_minute,
                "user_daily_tokens": self.user_daily_tokens, "daily_budget_usd": self.daily_budget_usd}


# What admit_ai_call decided (worker/sql/queries.sql).
AdmitDecision = Literal["admitted", "deferred", "user_budget_exhausted", "daily_budget_exhausted", "lease_lost"]


@dataclass(frozen=True)
class Admitted:
    """admit_ai_call's answer: the decision, the reservation to settle (admitted), and how long to wait
    (admitted: until the try may start; deferred: a hint for when to ask again)."""

    decision: AdmitDecision
    reservation: int | None
    wait_seconds: float


@dataclass(frozen=True)
class AiUsageToday:
    requests: int
    tokens: int
    cost_usd: float


@dataclass(frozen=True)
class QueueMetrics:
    queue_name: str
    length: int
    oldest_age_seconds: float | None


@asynccontextmanager
async def translate_errors() -> AsyncIterator[None]:
    """Transient errors become DatabaseUnavailable, permanent ones DatabaseRefused; bugs propagate."""
    try:
        yield
    except psycopg.Error as exc:
        kind = classify(exc)
        if kind == "transient":
            what = "database unreachable" if exc.sqlstate is None or exc.sqlstate.startswith("08") else (
                f"database busy ({type(exc).__name__})")
            raise DatabaseUnavailable(f"{what}: {exc}") from exc
        if kind == "permanent":
            raise DatabaseRefused(f"database refused the statement ({type(exc).__name__}): {exc}") from exc
        raise


# Connections per worker, whatever WORKER_CONCURRENCY is: jobs wait for the AI, not for the database. The
# durable pool serves the committer (one batch at a time), the readiness check and the rare failure
# records; the progress pool the intake loop, the lease keeper and the AI admissions (two short statements
# per AI call); plus one LISTEN connection: 8 in all,
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
    acknowledgement of a message that needs no work. That takes a disk flush off every job's path. AI
    admissions and settlements run there too, so the limiter's shared rows are locked for microseconds,
    not for a flush; a database crash can forget its last fraction of a second of them (decision 0013).
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

    async def take_jobs(self, qty: int, lease_seconds: int, max_reads: int, max_attempts: int,
                        in_flight: Collection[int]) -> list[Leased]:
        """Lease up to `qty` messages not in `in_flight` and start the assessments they name
        (worker/sql/queries.sql: take_jobs)."""
        rows = await self._fetch("take_jobs", {"qty": qty, "vt": lease_seconds, "max_reads": max_reads,
                                               "max_attempts": max_attempts, "in_flight": list(in_flight)},
                                 durable=False)
        return [Leased(Message(r["msg_id"], r["read_ct"], r["enqueued_at"], r["message"]), r["state"],
                       None if r["id"] is None else {key: r[key] for key in ASSESSMENT_COLUMNS})
                for r in rows]

    async def extend_leases(self, messages: Sequence[Message], lease_seconds: int) -> set[int]:
        """Move the leases of `messages` `lease_seconds` ahead; returns the msg_ids still held."""
        rows = await self._fetch("extend_leases", _leases(messages) | {"vt": lease_seconds}, durable=False)
        return {row["msg_id"] for row in rows}

    async def release_leases(self, messages: Sequence[Message]) -> set[int]:
        """Make `messages` visible now; returns the msg_ids that were still held."""
        rows = await self._fetch("release_leases", _leases(messages), durable=False)
        return {row["msg_id"] for row in rows}

    async def broadcast_drafts(self, message: Message, drafts: Sequence[dict[str, Any]]) -> int:
        """Send `drafts` ({index, recommendation}) to the owner of the job holding `message`'s lease; how many
        were sent (0: the lease or the processing status is gone). Without a flush: a draft is a hint."""
        [row] = await self._fetch("broadcast_drafts", {"msg_id": message.msg_id, "read_ct": message.read_ct,
                                                       "drafts": Jsonb(list(drafts))}, durable=False)
        return int(row["sent"])

    async def find_cached(self, cache_keys: Sequence[str], ttl_seconds: float) -> dict[str, dict[str, Any]]:
        """{cache_key: the newest AI result for it younger than ttl_seconds}, one query for a batch."""
        rows = await self._fetch("find_cached", {"cache_keys": list(cache_keys), "ttl": ttl_seconds}, durable=False)
        return {row["cache_key"]: row for row in rows}

    async def complete_jobs(self, results: Sequence[ResultRow]) -> dict[int, CommitOutcome]:
        """Commit a batch of results; returns {msg_id: what complete_jobs did with that job}."""
        rows = await self._fetch("complete_jobs", {"jobs": Jsonb([result.as_json() for result in results])})
        return {row["msg_id"]: row["outcome"] for row in rows}

    async def acknowledge(self, messages: Sequence[Message]) -> set[int]:
        """Archive held `messages` that need no work; returns the msg_ids archived."""
        rows = await self._fetch("acknowledge", _leases(messages), durable=False)
        return {row["msg_id"] for row in rows}

    async def record_failure(self, message: Message, assessment_id: UUID, user_message: str,
                             delay_seconds: int) -> bool:
        """Make the held message visible again in `delay_seconds`; the owner reads `user_message` in
        last_error. False (nothing changed) when the message was delivered again since."""
        [row] = await self._fetch(
            "record_failure",
            {"msg_id": message.msg_id, "read_ct": message.read_ct, "assessment_id": assessment_id,
             "error": user_message, "delay": delay_seconds},
        )
        return bool(row["held"])

    async def dead_letter(self, message: Message, assessment_id: UUID | None, reason: str, user_message: str
                          ) -> DeadLetterOutcome:
        """Move the held `message` to the dead-letter queue with `reason` (operators read it); fail
        `assessment_id`, if given, with `user_message` (its owner reads it). Nothing changes when the
        message was delivered again since (lease_lost) or another transaction holds the assessment (busy)."""
        [row] = await self._fetch(
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
        return "lease_lost" if not row["held"] else "busy" if row["busy"] else "dead_lettered"

    async def dlq_list(self, limit: int) -> list[dict[str, Any]]:
        return await self._fetch("dlq_list", {"limit": limit})

    async def dlq_ids(self) -> list[int]:
        return [row["msg_id"] for row in await self._fetch("dlq_ids")]

    async def dlq_requeue(self, msg_id: int) -> dict[str, Any]:
        return (await self._fetch("dlq_requeue", {"msg_id": msg_id}))[0]

    async def admit_ai_call(self, message: Message, limits: AiLimits, *, reservation: int | None, tokens: int,
                            cost_usd: float, wait_limit_seconds: float, pause_seconds: float | None) -> Admitted:
        """Ask to start one try of an AI call for the job holding `message`'s lease (admit_ai_call)."""
        [row] = await self._fetch("admit_ai_call", {
            "msg_id": message.msg_id, "read_ct": message.read_ct, "reservation": reservation, "tokens": tokens,
            "cost_usd": cost_usd, "wait_limit_seconds": wait_limit_seconds, "pause_seconds": pause_seconds,
            **limits.params()}, durable=False)
        return Admitted(row["decision"], row["reservation"], float(row["wait_seconds"]))

    async def settle_ai_call(self, reservation: int, limits: AiLimits, *, requests: int, prompt_tokens: int,
                             completion_tokens: int, cost_usd: float, pause_seconds: float | None) -> bool:
        """Record an admitted call's usage and release its reservation; False when the reservation is gone."""
        [row] = await self._fetch("settle_ai_call", {
            "reservation": reservation, "requests": requests, "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens, "cost_usd": cost_usd, "pause_seconds": pause_seconds,
            **limits.params()}, durable=False)
        return bool(row["settled"])

    async def ai_usage_today(self) -> AiUsageToday:
        [row] = await self._fetch("ai_usage_today", durable=False)
        return AiUsageToday(int(row["requests"]), int(row["tokens"]), float(row["cost_usd"]))

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


def _leases(messages: Sequence[Message]) -> dict[str, list[int]]:
    return {"msg_ids": [m.msg_id for m in messages], "read_cts": [m.read_ct for m in messages]}


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
