"""LISTENs for enqueue hints on a dedicated session connection and reconnects by itself when it drops.

A notification only wakes the consumer (worker/db.py listen); polling covers every hint that is missed
while the connection is down (docs/decisions/0006).
"""

from __future__ import annotations

import asyncio
import logging

from worker.backoff import backoff
from worker.db import listen
from worker.metrics import LISTEN_CONNECTED

log = logging.getLogger(__name__)


class Listener:
    """`run()` sets `wake` on every notification and on every (re)connection; `connected` says whether it listens."""

    def __init__(self, database_url: str, wake: asyncio.Event) -> None:
        self.database_url = database_url
        self.wake = wake
        self.connected = False

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                conn = await listen(self.database_url)
                async with conn:
                    self.connected = True
                    LISTEN_CONNECTED.set(1)
                    failures = 0
                    self.wake.set()  # anything enqueued while we were not listening
                    async for _ in conn.notifies():
                        self.wake.set()
            except Exception as exc:  # any failure: reconnect; polling covers the gap
                failures += 1
                log.warning("LISTEN connection lost; reconnecting",
                            extra={"error": str(exc), "retry_in_seconds": backoff(failures, base=0.25, cap=10.0)})
            finally:
                self.connected = False
                LISTEN_CONNECTED.set(0)
            await asyncio.sleep(backoff(max(failures, 1), base=0.25, cap=10.0))
