"""The ops HTTP server: GET /health (liveness), /ready (readiness, with the reason), /metrics (Prometheus).

A deliberately small HTTP/1.1 server on asyncio streams, because the port must stay harmless whoever
reaches it: one request per connection (`Connection: close`), no request bodies, the request head must
arrive within HEAD_TIMEOUT_SECONDS and fit in MAX_HEAD_BYTES, the answer must be taken within
WRITE_TIMEOUT_SECONDS, and no answer touches the database (/ready reports worker/health.py's last check).
Connections from other hosts share MAX_CONNECTIONS: a newcomer beyond the cap evicts the oldest one still
sending its head if that one has had EVICT_AFTER_SECONDS (a probe sends its head at once), else the
newcomer is closed, so slow clients can neither hold the port nor exhaust the worker's file descriptors.
Connections from 127.0.0.1 / ::1 (the container's HEALTHCHECK, a Kubernetes exec probe) have LOCAL_CONNECTIONS
of their own, so a flood from the network cannot fail a liveness check and get a healthy worker restarted.
It binds 127.0.0.1 unless WORKER_OPS_HOST says otherwise.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.metrics import OPS_CONNECTIONS_DROPPED, REGISTRY

log = logging.getLogger(__name__)

HEAD_TIMEOUT_SECONDS = 5.0
WRITE_TIMEOUT_SECONDS = 5.0
MAX_HEAD_BYTES = 8192
MAX_CONNECTIONS = 64
LOCAL_CONNECTIONS = 8
LOCAL_PEERS = ("127.0.0.1", "::1")
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


def routes(alive: Callable[[], bool], not_ready_reason: Callable[[], str | None]) -> dict[str, Route]:
    async def health() -> Answer:
        # Liveness: fails only when a restart helps. Answering at all shows the event loop is not stuck.
        if alive():
            return Answer.json(200, {"status": "ok"})
        return Answer.json(503, {"status": "down", "reason": "the consume loop has stopped"})

    async def ready() -> Answer:
        reason = not_ready_reason()
        if reason:
            return Answer.json(503, {"status": "not ready", "reason": reason})
        return Answer.json(200, {"status": "ready"})

    async def metrics() -> Answer:
        return Answer(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))

    return {"/health": health, "/ready": ready, "/metrics": metrics}


class OpsServer:
    """Serves `routes` on host:port; `start()` returns the bound port (useful with port 0)."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self._server: asyncio.Server | None = None
        # Connections from other hosts, oldest first: when each connected, or None once its head is read.
        self._open: dict[asyncio.StreamWriter, float | None] = {}
        self._local = 0

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
        peer = writer.get_extra_info("peername")
        local = bool(peer) and peer[0] in LOCAL_PEERS
        if (local and self._local >= LOCAL_CONNECTIONS) or (
                not local and len(self._open) >= MAX_CONNECTIONS and not self._evict_oldest_reader()):
            OPS_CONNECTIONS_DROPPED.labels("over_limit").inc()
            writer.transport.abort()
            return
        if local:
            self._local += 1
        else:
            self._open[writer] = time.monotonic()
        answered = False
        try:
            route = await self._read_request(reader)
            if route is None:
                return
            if writer in self._open:
                self._open[writer] = None  # its head is in: no longer evictable while it is answered
            answer = route if isinstance(route, Answer) else await route()
            head = (f"HTTP/1.1 {answer.status} {REASONS.get(answer.status, '')}\r\n"
                    f"Content-Type: {answer.content_type}\r\nContent-Length: {len(answer.body)}\r\n"
                    "Cache-Control: no-store\r\nConnection: close\r\n\r\n").encode()
            writer.transport.set_write_buffer_limits(0)  # so drain() returns only once all of it is sent
            writer.write(head + answer.body)
            async with asyncio.timeout(WRITE_TIMEOUT_SECONDS):
                await writer.drain()
                writer.close()
                await writer.wait_closed()
            answered = True
        except (TimeoutError, ConnectionError):
            OPS_CONNECTIONS_DROPPED.labels("slow_client").inc()
        except Exception:  # a bug here must never reach the worker: log and drop the connection
            log.exception("ops request failed")
        finally:
            if local:
                self._local -= 1
            self._open.pop(writer, None)
            if not answered:
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

    async def _read_request(self, reader: asyncio.StreamReader) -> Answer | Route | None:
        """The route for the request on `reader`, an error Answer, or None when the client gave up or was
        too slow."""
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
        return route
