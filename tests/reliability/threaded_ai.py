"""devkit.fake_openai.FakeOpenAI on its own event loop in a thread, so a synchronous test can script it.

The fake server's command line has no way to start a burst of errors mid-run; this wrapper does it with
the server's public API (`script`, `requests`) and reports when the burst was served.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from devkit.fake_openai import Behaviour, FakeOpenAI, status


@dataclass(frozen=True)
class Burst:
    """A scripted run of errors: requests number first .. first + count - 1 of the server get them."""

    first: int
    count: int


class ThreadedFakeOpenAI:
    def __init__(self, latency: float = 0.0) -> None:
        self.server = FakeOpenAI(latency=latency)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-openai", daemon=True)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def burst_429(self, count: int, retry_after: float) -> Burst:
        """The next `count` requests get HTTP 429 with Retry-After."""
        return self.script(*[status(429, retry_after=retry_after) for _ in range(count)])

    def script(self, *behaviours: Behaviour) -> Burst:
        """The next requests get `behaviours`, in order; scripted on the server's own loop so that no
        request slips between reading the request count and queueing them."""

        async def script() -> int:
            self.server.script(*behaviours)
            return len(self.server.requests)

        first = asyncio.run_coroutine_threadsafe(script(), self._loop).result(timeout=10)
        return Burst(first, len(behaviours))

    def served(self) -> int:
        return len(self.server.requests)

    def wall_time_of(self, index: int) -> float:
        """time.time() at which request number `index` arrived (the server records monotonic time)."""
        return time.time() - (time.monotonic() - self.server.requests[index].at)


@contextmanager
def threaded_fake_ai(latency: float = 0.0) -> Iterator[ThreadedFakeOpenAI]:
    fake = ThreadedFakeOpenAI(latency=latency)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
