"""Keeps the leases of jobs in flight: every third of the lease, extends all of them in one statement.

A job holds its lease with `async with keeper.hold(message)`; leaving the block stops the extensions and
waits out a round that is extending it right now, so a failure recorded after the block (with its retry
backoff) cannot be overwritten by an extension. Extensions are fenced (worker/sql/queries.sql): a lease
that lapsed and whose message another worker has leased since is not taken back; it is dropped here and
counted (assessment_fenced_writes_total{operation="extend_leases"}), and the job's commit will change
nothing. A crashed worker's jobs come back when their lease ends, at most `lease_seconds` later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from worker import db_errors
from worker.db import Database, Message
from worker.metrics import FENCED_WRITES

log = logging.getLogger(__name__)


def note_fenced(operation: str, messages: list[Message]) -> None:
    """Count and log writes that changed nothing because their messages were delivered again since."""
    if not messages:
        return
    FENCED_WRITES.labels(operation).inc(len(messages))
    log.warning("messages were delivered again since this worker leased them; left to their new holder",
                extra={"operation": operation, "msg_ids": [m.msg_id for m in messages]})


class LeaseKeeper:
    """The leases this worker holds; `run()` extends them until cancelled."""

    def __init__(self, db: Database, lease_seconds: int) -> None:
        self.db = db
        self.lease_seconds = lease_seconds
        self._held: dict[int, Message] = {}
        self._round = asyncio.Lock()  # held while an extension round runs

    @asynccontextmanager
    async def hold(self, message: Message) -> AsyncIterator[None]:
        self._held[message.msg_id] = message
        try:
            yield
        finally:
            self._held.pop(message.msg_id, None)
            async with self._round:  # a round that included this lease has ended
                pass

    async def run(self) -> None:
        """Extend the held leases every third of the lease, forever (cancel to stop)."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            await self.extend_once()

    async def extend_once(self) -> None:
        """One round: extend every held lease in one statement."""
        async with self._round:
            await self._extend()

    async def _extend(self) -> None:
        messages = list(self._held.values())
        if not messages:
            return
        try:
            held = await self.db.extend_leases(messages, self.lease_seconds)
        except Exception as exc:  # keep extending: the next round may succeed
            db_errors.report("extend_leases", exc, "could not extend leases", jobs=len(messages))
            return
        lost = [m for m in messages if m.msg_id not in held]
        for message in lost:
            if self._held.get(message.msg_id) is message:
                del self._held[message.msg_id]
        note_fenced("extend_leases", lost)
