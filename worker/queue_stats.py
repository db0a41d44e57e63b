"""Publishes the queues' depth and oldest message age as metrics, refreshed every few seconds; whether
that worked is the readiness gauge Prometheus sees (the same check /ready makes on request)."""

from __future__ import annotations

import asyncio
import logging

from worker.db import Database
from worker.metrics import QUEUE_DEPTH, QUEUE_OLDEST_AGE_SECONDS, READY

log = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0


async def refresh_queue_metrics(db: Database) -> None:
    """Forever (cancel to stop); metrics are best effort, so errors are logged at DEBUG and retried."""
    while True:
        try:
            for queue in await db.queue_metrics():
                QUEUE_DEPTH.labels(queue.queue_name).set(queue.length)
                QUEUE_OLDEST_AGE_SECONDS.labels(queue.queue_name).set(queue.oldest_age_seconds or 0)
            READY.set(1)
        except Exception as exc:
            READY.set(0)
            log.debug("queue metrics unavailable", extra={"error": str(exc)})
        await asyncio.sleep(REFRESH_SECONDS)
