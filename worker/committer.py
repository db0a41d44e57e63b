"""Commits finished jobs: results that finish together go into one transaction (one fsync for many jobs).

Each commit inserts the results, marks the assessments completed and archives the messages in one
statement (worker/sql/queries.sql: complete_jobs), so a job's effect and its acknowledgement are atomic,
and fenced by each job's lease. A transient database error is retried for COMMIT_RETRY_SECONDS; any other
error is isolated by committing the batch's jobs one by one, so one bad result cannot hold up the others.
A job whose assessment another transaction holds (`busy`) is committed again on its own, shortly, so it
never holds up a batch either, for at most BUSY_COMMIT_SECONDS (worker/retry_policy.py).
"""

from __future__ import annotations

import asyncio
import random
import time

from worker import db_errors
from worker.db import CommitOutcome, Database, ResultRow
from worker.exceptions import DatabaseUnavailable
from worker.leases import note_fenced
from worker.metrics import BUSY_COMMITS
from worker.retry_policy import BUSY_COMMIT_SECONDS, COMMIT_RETRY_SECONDS, busy_commit_delay, commit_retry_delay

MAX_BATCH = 100  # results per commit

Pending = tuple[ResultRow, asyncio.Future[CommitOutcome]]


class Committer:
    """`commit(row)` resolves to what happened to that job; `run()` does the work; `drain()` waits for the
    commits under way (graceful shutdown)."""

    def __init__(self, db: Database, rng: random.Random | None = None) -> None:
        self.db = db
        self._queue: asyncio.Queue[Pending] = asyncio.Queue()
        self._rng = rng or random.Random()
        self._under_way: set[int] = set()  # msg_ids with a commit under way
        self._idle = asyncio.Event()
        self._idle.set()

    async def commit(self, row: ResultRow) -> CommitOutcome:
        """Commit `row`; `busy` only after BUSY_COMMIT_SECONDS of its assessment being held elsewhere."""
        self._under_way.add(row.message.msg_id)
        self._idle.clear()
        try:
            deadline = time.monotonic() + BUSY_COMMIT_SECONDS
            tries = 0
            while True:
                future: asyncio.Future[CommitOutcome] = asyncio.get_running_loop().create_future()
                await self._queue.put((row, future))
                outcome = await future
                if outcome == "busy":
                    BUSY_COMMITS.inc()
                tries += 1
                delay = busy_commit_delay(tries, self._rng)
                if outcome != "busy" or time.monotonic() + delay > deadline:
                    return outcome
                await asyncio.sleep(delay)
        finally:
            self._under_way.discard(row.message.msg_id)
            if not self._under_way:
                self._idle.set()

    @property
    def commits_under_way(self) -> int:
        return len(self._under_way)

    def committing(self, msg_id: int) -> bool:
        """Whether a commit of message `msg_id`'s job is under way (its lease must not be released)."""
        return msg_id in self._under_way

    async def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every commit under way; whether they all ended."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """Commit whatever has queued up since the last commit, forever (cancel to stop)."""
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit_batch(batch)
            except Exception as exc:  # this loop must outlive any one batch, or every job would hang
                db_errors.report("commit", exc, "committing a batch failed", jobs=len(batch))
                _fail_all(batch, exc)

    async def _commit_batch(self, batch: list[Pending]) -> None:
        deadline = time.monotonic() + COMMIT_RETRY_SECONDS
        failures = 0
        while True:
            try:
                outcomes = await self.db.complete_jobs([row for row, _ in batch])
            except DatabaseUnavailable as exc:
                failures += 1
                delay = commit_retry_delay(failures)
                if time.monotonic() + delay > deadline:
                    db_errors.report("commit", exc, "cannot commit results; giving up, the jobs return when "
                                     "their leases end", jobs=len(batch))
                    _fail_all(batch, exc)
                    return
                db_errors.report("commit", exc, "cannot commit results; retrying", jobs=len(batch))
                await asyncio.sleep(delay)
                continue
            except Exception as exc:
                if len(batch) == 1:
                    _fail_all(batch, exc)
                    return
                for item in batch:  # isolate the job that breaks the batch
                    await self._commit_batch([item])
                return
            note_fenced("commit", [row.message for row, _ in batch if outcomes.get(row.message.msg_id) == "lease_lost"])
            for row, future in batch:
                if not future.done():
                    future.set_result(outcomes.get(row.message.msg_id, "lease_lost"))
            return


def _fail_all(batch: list[Pending], exc: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
