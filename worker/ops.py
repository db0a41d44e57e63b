"""The ops HTTP server: GET /health (process alive), /ready (database and queue), /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.db import Database
from worker.exceptions import DatabaseUnavailable
from worker.metrics import REGISTRY

log = logging.getLogger(__name__)
READY_TIMEOUT_SECONDS = 2.0


def build_app(db: Database, alive: Callable[[], bool]) -> web.Application:
    async def health(_: web.Request) -> web.Response:
        if alive():
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "down", "reason": "the consumer loop has stopped"}, status=503)

    async def ready(_: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                queue_present = await db.ready()
        except (TimeoutError, DatabaseUnavailable, psycopg.Error) as exc:
            return web.json_response({"status": "not ready", "reason": f"database unreachable: {exc}"}, status=503)
        if not queue_present:
            return web.json_response(
                {"status": "not ready", "reason": "queue assessment_submitted is missing; run the migrations"},
                status=503,
            )
        return web.json_response({"status": "ready"})

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    return app


async def start_ops_server(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (for cleanup) and the bound port (useful when port is 0)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # the bound socket is not public API of aiohttp
    bound = server.sockets[0].getsockname()[1] if server and server.sockets else port  # type: ignore[attr-defined]
    log.info("ops server listening", extra={"host": host, "port": bound})
    return runner, int(bound)
