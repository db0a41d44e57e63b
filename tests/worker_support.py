"""Helpers for tests that run the worker: in this event loop (running_worker) or as a process."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from devkit.localdb import worker_url
from devkit.processes import WorkerProcess
from worker.ai import Recommender
from worker.config import Settings, load_settings
from worker.consumer import Consumer
from worker.db import Database


def purge_queues(conn: psycopg.Connection[Any]) -> None:
    conn.execute("select pgmq.purge_queue('assessment_submitted'), pgmq.purge_queue('assessment_submitted_dlq')")


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"database_url": worker_url(database_url), "poll_interval_seconds": 0.2,
                              "lease_seconds": 5, "ops_port": 0, "ai_deadline_seconds": 5}
    values |= overrides
    values.setdefault("shutdown_grace_seconds", values["ai_deadline_seconds"])  # the least the worker accepts
    return load_settings({}, **values)


def recommender_for(settings: Settings, base_url: str | None, api_key: str | None = "sk-test") -> Recommender:
    return Recommender(api_key=api_key, base_url=base_url, model=settings.openai_model,
                       deadline_seconds=settings.ai_deadline_seconds, max_connections=settings.concurrency,
                       stream=settings.ai_stream)


def worker_process(
    database_url: str, ai_url: str, log_dir: Path, env: Mapping[str, str] | None = None,
    max_open_files: int | None = None,
) -> WorkerProcess:
    """`python -m worker run` as assessment_worker with settings that make faults show quickly."""
    settings = {
        "DATABASE_URL": worker_url(database_url), "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": ai_url,
        "WORKER_LEASE_SECONDS": "3", "WORKER_POLL_INTERVAL_SECONDS": "0.2", "CACHE_TTL_SECONDS": "0",
        "AI_DEADLINE_SECONDS": "10",
    } | dict(env or {})
    # The least grace the worker accepts: the AI deadline.
    settings.setdefault("WORKER_SHUTDOWN_GRACE_SECONDS", settings["AI_DEADLINE_SECONDS"])
    return WorkerProcess(log_dir / f"worker-{time.monotonic_ns()}.log", settings, max_open_files=max_open_files)


@asynccontextmanager
async def running_worker(settings: Settings, recommender: Recommender) -> AsyncIterator[Consumer]:
    """Run a Consumer in this event loop; stop it gracefully on exit."""
    db = await Database.open(settings.database_url, size=4)
    consumer = Consumer(settings, db, recommender)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        yield consumer
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=settings.shutdown_grace_seconds + 10)
        await recommender.aclose()
        await db.close()


async def eventually(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """devkit.processes.wait_until for code that shares the event loop with what it waits for."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(interval)
    return condition()


async def fetch(url: str, query: str, params: Any = None) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        cursor = await conn.execute(query, params)
        return await cursor.fetchall()


async def wait_for_status(
    url: str, ids: list[uuid.UUID], statuses: tuple[str, ...] = ("completed",), timeout: float = 30.0
) -> list[dict[str, Any]]:
    """Poll until every assessment has one of `statuses`; returns rows joined with their results."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await fetch(url, """
            select a.id, a.status::text, a.attempts, a.last_error, a.created_at, a.completed_at,
                   r.source::text, r.fallback_reason, r.id as result_id,
                   (select count(*) from public.result_test x where x.assessment_id = a.id) as results
            from public.test_assessment a left join public.result_test r on r.assessment_id = a.id
            where a.id = any(%s)""", (ids,))
        if len(rows) == len(ids) and all(row["status"] in statuses for row in rows):
            return rows
        if time.monotonic() > deadline:
            pending = [row for row in rows if row["status"] not in statuses]
            raise AssertionError(f"{len(pending)} of {len(ids)} not in {statuses} after {timeout}s: {pending[:3]}")
        await asyncio.sleep(0.1)
