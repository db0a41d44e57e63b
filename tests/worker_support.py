"""Helpers for worker tests: submitting as users, running a worker, waiting for results."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tests.support import REPO, acting_as, create_user
from worker.ai import Recommender
from worker.config import Settings, load_settings
from worker.consumer import Consumer
from worker.db import Database

EXAMPLE = json.loads((REPO / "examples" / "assessment.json").read_text()) if (
    REPO / "examples" / "assessment.json").exists() else None


def worker_url(database_url: str) -> str:
    """The same database, as the least-privilege role the worker runs as in production."""
    return database_url.replace("postgresql://postgres@", "postgresql://assessment_worker@", 1)


def answers(seed: int, count: int = 4) -> list[dict[str, Any]]:
    """Distinct, valid answers (seed changes them, so the cache does not join unrelated tests)."""
    items: list[dict[str, Any]] = [
        {"question_id": "energy", "question": "How energised do you feel at work (1-5)?", "answer": seed % 5 + 1},
        {"question_id": "mentor", "question": "Do you have a mentor?", "answer": seed % 2 == 0},
        {"question_id": "skills", "question": "Which skills do you want to grow?", "answer": ["SQL", f"skill {seed}"]},
        {"question_id": "blocker", "question": "What blocks you most?", "answer": f"Meetings, case {seed}"},
    ]
    return items[:count]


def submit(conn: psycopg.Connection, user_id: uuid.UUID, bodies: Iterable[dict[str, Any]]) -> list[uuid.UUID]:
    """Insert assessments as the user (committed), as a frontend would; returns their ids."""
    ids = []
    with acting_as(conn, user_id, commit=True) as cur:
        for body in bodies:
            columns = list(body)
            cur.execute(
                f"insert into public.test_assessment ({', '.join(columns)}) "  # column names from the test
                f"values ({', '.join('%s' for _ in columns)}) returning id",
                [json.dumps(v) if isinstance(v, (list, dict)) else v for v in body.values()],
            )
            row = cur.fetchone()
            assert row is not None and isinstance(row["id"], uuid.UUID)
            ids.append(row["id"])
    return ids


def submit_many(conn: psycopg.Connection, total: int, seed: int = 0, per_user: int = 10) -> list[uuid.UUID]:
    """`total` assessments spread over fresh users (the rate limit is per user)."""
    ids: list[uuid.UUID] = []
    while len(ids) < total:
        user = create_user(conn)
        count = min(per_user, total - len(ids))
        ids += submit(conn, user, [
            {"assessment_type": "career", "answers": answers(seed + len(ids) + i)} for i in range(count)
        ])
    return ids


def purge_queues(conn: psycopg.Connection) -> None:
    conn.execute("select pgmq.purge_queue('assessment_submitted'), pgmq.purge_queue('assessment_submitted_dlq')")


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"database_url": worker_url(database_url), "poll_interval_seconds": 0.2,
                              "lease_seconds": 5, "ops_port": 0, "shutdown_grace_seconds": 5}
    return load_settings({}, **(values | overrides))


def recommender_for(settings: Settings, base_url: str | None, api_key: str | None = "sk-test") -> Recommender:
    return Recommender(api_key=api_key, base_url=base_url, model=settings.openai_model,
                       deadline_seconds=settings.ai_deadline_seconds, max_connections=settings.concurrency)


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
