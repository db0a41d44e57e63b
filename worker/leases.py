"""Keeps the leases of in-flight jobs: every third of the lease, extends all of them in one statement.

A live job is therefore never handed to a second worker; a crashed worker's jobs come back when their
lease ends, at most `lease_seconds` later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

from worker.db import Database
from worker.metrics import DATABASE_ERRORS

log = logging.getLogger(__name__)


async def keep_leases(db: Database, lease_seconds: int, in_flight: Callable[[], Collection[int]]) -> None:
    """Extend the leases of the message ids `in_flight()` returns, forever (cancel to stop)."""
    interval = lease_seconds / 3
    while True:
        await asyncio.sleep(interval)
        msg_ids = list(in_flight())
        if not msg_ids:
            continue
        try:
            await db.extend_leases(msg_ids, lease_seconds)
        except Exception as exc:  # keep extending: the next round may succeed
            DATABASE_ERRORS.labels("extend_leases").inc()
            log.warning("could not extend leases", extra={"jobs": len(msg_ids), "error": str(exc)})
