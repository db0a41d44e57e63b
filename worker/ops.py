"""The ops HTTP server: GET /health (liveness), /ready (readiness, with the reason), /metrics (Prometheus).

A deliberately small HTTP/1.1 server on asyncio streams, because the port must stay harmless whoever
reaches it: one request per connection (`Connection: close`), no request bodies, the request head must
arrive within HEAD_TIMEOUT_SECONDS and fit in MAX_HEAD_BYTES, at most MAX_CONNECTIONS are open at once, and
the answer must be taken within WRITE_TIMEOUT_SECONDS. A new connection beyond the cap evicts the oldest one
still sending its head if that one has had EVICT_AFTER_SECONDS (a probe sends its head at once and is
answered well within that), else the newcomer is closed: slow clients can neither hold the port for long
nor exhaust the worker's file descriptors. It binds 127.0.0.1 unless WORKER_OPS_HOST says otherwise; keep
it off the public network, since no cap can keep a flood from crowding out a probe now and then.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.db import Database
from worker.exceptions import DatabaseUnavailable
from worker.metrics import OPS_CONNECTIONS_DROPPED, READY, REGISTRY

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 2.0
HEAD_TIMEOUT_SECONDS = 5.0
WRITE_TIMEOUT_SECONDS = 5.0
MAX_HEAD_BYTES = 8192
MAX_CONNECTIONS = 64
EVICT_AFTER_SECONDS = 0.25
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           413: "Content Too Large", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes

    @classmethod
    def json(cls, status: int, payload: dict[str, str]) -> Answer:
        return cls(status, "application/json", json.dumps(payload).encode())


Route = Callable[[], Awaitable[Answer]]


def routes(db: Database, alive: Callable[[], bool]) -> dict[str, Route]:
    async def health() -> Answer:
        # Liveness: fails only when a restart helps. Answering at all shows the event loop is not stuck.
        if alive():
            return Answer.json(200, {"status": "ok"})
        return Answer.json(503, {"status": "down", "reason": "the consume loop has stopped"})

    async def ready() -> Answer:
        reason = await not_ready_reason(db)
        READY.set(0 if reason else 1)
        if reason:
            return Answer.json(503, {"status": "not ready", "reason": reason})
        return Answer.json(200, {"status": "ready"})

    async def metrics() -> Answer:
        return Answer(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))

    return {"/health": health, "/ready": ready, "/metrics": metrics}


async def not_ready_reason(db: Database) -> str | None:
    """Why the worker cannot do its job right now (None: it can). Always a non-empty sentence."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            queue_present = await db.ready()
    except TimeoutError:
        return f"database unreachable: no answer within {READY_TIMEOUT_SECONDS:g}s"
    except (DatabaseUnavailable, psycopg.Error) as exc:
        detail = str(exc).strip() or type(exc).__name__
        return detail if detail.startswith("database unreachable") else f"database error: {detail}"
    if not queue_present:
        return "queue assessment_submitted is missing; run the migrations"
    return None


class OpsServer:
    """Serves `routes` on host:port; `start()` returns the bound port (useful with port 0)."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self._server: asyncio.Server | None = None
        # Insertion order is age; the value is when it connected, or None once its head has been read.
        self._open: dict[asyncio.StreamWriter, float | None] = {}

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._accept, host, port, limit=MAX_HEAD_BYTES,
                                                  reuse_address=True)
        bound = int(self._server.sockets[0].getsockname()[1])
        log.info("ops server listening", extra={"host": host, "port": bound})
        return bound

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._open):
                writer.transport.abort()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._open) >= MAX_CONNECTIONS and not self._evict_oldest_reader():
            OPS_CONNECTIONS_DROPPED.labels("over_limit").inc()
            writer.transport.abort()
            return
        self._open[writer] = time.monotonic()
        try:
            answer = await self._read_request(reader)
            self._open[writer] = None
            if answer is None:
                return
            head = (f"HTTP/1.1 {answer.status} {REASONS.get(answer.status, '')}\r\n"
                    f"Content-Type: {answer.content_type}\r\nContent-Length: {len(answer.body)}\r\n"
                    "Cache-Control: no-store\r\nConnection: close\r\n\r\n").encode()
            writer.write(head + answer.body)
            async with asyncio.timeout(WRITE_TIMEOUT_SECONDS):
                await writer.drain()
        except (TimeoutError, ConnectionError):
            OPS_CONNECTIONS_DROPPED.labels("slow_client").inc()
        except Exception:  # a bug here must never reach the worker: log (rate-limited) and drop the connection
            log.exception("ops request failed")
        finally:
            self._open.pop(writer, None)
            writer.transport.abort()

    def _evict_oldest_reader(self) -> bool:
        """Evict the oldest connection still sending its head, if it has had its chance; False if none has."""
        patience_ends = time.monotonic() - EVICT_AFTER_SECONDS
        for writer, connected_at in self._open.items():
            if connected_at is not None:
                if connected_at > patience_ends:
                    return False  # the oldest reader is recent, so all are
                OPS_CONNECTIONS_DROPPED.labels("evicted").inc()
                writer.transport.abort()  # its handler wakes with an error and cleans up
                del self._open[writer]
                return True
        return False

    async def _read_request(self, reader: asyncio.StreamReader) -> Answer | None:
        """The answer to the request on `reader`, or None when the client gave up or was too slow."""
        try:
            async with asyncio.timeout(HEAD_TIMEOUT_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            OPS_CONNECTIONS_DROPPED.labels("slow_client").inc()
            return None
        except asyncio.LimitOverrunError:
            return Answer.json(431, {"error": f"the request head is over {MAX_HEAD_BYTES} bytes"})
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return Answer.json(400, {"error": "expected a request line such as 'GET /health HTTP/1.1'"})
        method, target = parts[0], parts[1].split("?", 1)[0]
        headers = {name.strip().lower(): value.strip()
                   for name, _, value in (line.partition(":") for line in lines[1:] if line)}
        if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
            return Answer.json(413, {"error": "request bodies are not accepted"})
        if method != "GET":
            return Answer.json(405, {"error": "only GET is served"})
        route = self.routes.get(target)
        if route is None:
            return Answer.json(404, {"error": f"unknown path; try {', '.join(sorted(self.routes))}"})
        return await route()
