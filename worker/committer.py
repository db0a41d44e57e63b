"""Commits finished jobs: results that finish together go into one transaction (one fsync for many jobs).

Each commit inserts the results, marks the assessments completed and archives the messages in one
statement (worker/sql/queries.sql: complete_jobs), so a job's effect and its acknowledgement are atomic.
An unreachable database is retried for up to COMMIT_RETRY_SECONDS; any other database error is isolated
by committing the batch's jobs one by one, so one bad result cannot hold up the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import psycopg

from worker.backoff import backoff
from worker.db import Database
from worker.exceptions import DatabaseUnavailable
from worker.metrics import DATABASE_ERRORS

log = logging.getLogger(__name__)

MAX_BATCH = 100  # results per commit
COMMIT_RETRY_SECONDS = 60.0  # how long a computed result waits for the database to come back

Pending = tuple[dict[str, Any], asyncio.Future[bool]]


class Committer:
    """`commit(job)` resolves to whether that job completed its assessment; `run()` does the work."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: asyncio.Queue[Pending] = asyncio.Queue()

    async def commit(self, job: dict[str, Any]) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self._queue.put((job, future))
        return await future

    async def run(self) -> None:
        """Commit whatever has queued up since the last commit, forever (cancel to stop)."""
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit_batch(batch)
            except Exception as exc:  # this loop must outlive any one batch, or every job would hang
                log.exception("committing a batch failed", extra={"jobs": len(batch)})
                _fail_all(batch, exc)

    async def _commit_batch(self, batch: list[Pending]) -> None:
        deadline = time.monotonic() + COMMIT_RETRY_SECONDS
        failures = 0
        while True:
            try:
                results = await self.db.complete_jobs([job for job, _ in batch])
            except DatabaseUnavailable as exc:
                DATABASE_ERRORS.labels("commit").inc()
                failures += 1
                delay = backoff(failures, base=0.25, cap=4.0)
                if time.monotonic() + delay > deadline:
                    _fail_all(batch, exc)
                    return
                log.warning("cannot commit results; retrying", extra={"jobs": len(batch), "error": str(exc)})
                await asyncio.sleep(delay)
                continue
            except psycopg.Error as exc:
                if len(batch) == 1:
                    _fail_all(batch, exc)
                    return
                for item in batch:  # isolate the job that breaks the batch
                    await self._commit_batch([item])
                return
            for job, future in batch:
                if not future.done():
                    future.set_result(results.get(job["msg_id"], False))
            return


def _fail_all(batch: list[Pending], exc: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
