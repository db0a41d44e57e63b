"""The ops server: what /health, /ready and /metrics answer, and that slow or hostile clients cannot hold
the port (request head deadline, no bodies, a connection cap that evicts the oldest slow client)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import psycopg
import pytest

from devkit.fake_openai import FakeOpenAI
from devkit.samples import answers, submit
from devkit.users import create_user
from tests.worker_support import recommender_for, running_worker, settings_for, wait_for_status
from worker import ops
from worker.db import Database
from worker.ops import OpsServer, routes

pytestmark = pytest.mark.usefixtures("empty_queues")


async def get(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `request` as it is; returns (status, headers, body) of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: worker\r\n\r\n".encode()


@pytest.fixture
async def unreachable() -> AsyncIterator[Database]:
    db = await Database.open("postgresql://assessment_worker@127.0.0.1:9/postgres", size=1, timeout=0.5)
    yield db
    await db.close()


@pytest.fixture
async def server(unreachable: Database) -> AsyncIterator[tuple[OpsServer, int]]:
    served = OpsServer(routes(unreachable, alive=lambda: True))
    port = await served.start("127.0.0.1", 0)
    yield served, port
    await served.close()


async def test_ops_health_ready_and_metrics_answer(admin: psycopg.Connection, database_url: str) -> None:
    async with FakeOpenAI() as ai:
        settings = settings_for(database_url, cache_ttl_seconds=0)
        async with running_worker(settings, recommender_for(settings, ai.base_url)) as consumer:
            ids = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(21)}])
            await wait_for_status(database_url, ids)
            served = OpsServer(routes(consumer.db, alive=lambda: True))
            port = await served.start("127.0.0.1", 0)
            try:
                health = await get(port, request("/health"))
                ready = await get(port, request("/ready?verbose=1"))  # a query string is ignored
                metrics = await get(port, request("/metrics"))
            finally:
                await served.close()
    assert (health[0], json.loads(health[2])) == (200, {"status": "ok"})
    assert (ready[0], json.loads(ready[2])) == (200, {"status": "ready"})
    assert metrics[0] == 200 and metrics[1]["content-type"].startswith("text/plain")
    assert health[1]["connection"] == "close" and health[1]["cache-control"] == "no-store"
    text = metrics[2].decode()
    assert 'assessment_jobs_total{outcome="completed",source="ai"}' in text
    for name in ("assessment_queue_wait_seconds_bucket", "assessment_ai_call_seconds_bucket",
                 "assessment_job_seconds_bucket", "assessment_ai_tokens_total", "assessment_jobs_in_flight",
                 "assessment_queue_depth", "assessment_queue_oldest_message_age_seconds", "assessment_worker_ready"):
        assert name in text, name


async def test_ops_ready_says_why_the_database_is_unreachable(server: tuple[OpsServer, int]) -> None:
    status, _, body = await get(server[1], request("/ready"))
    assert status == 503
    reason = json.loads(body)["reason"]
    assert reason.startswith("database unreachable") and len(reason) > len("database unreachable: ")


async def test_ops_ready_says_why_when_the_database_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, unreachable: Database
) -> None:
    async def never() -> bool:
        await asyncio.sleep(60)
        return True

    monkeypatch.setattr(ops, "READY_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(unreachable, "ready", never)
    assert await ops.not_ready_reason(unreachable) == "database unreachable: no answer within 0.2s"


async def test_ops_health_fails_when_the_consume_loop_stopped(unreachable: Database) -> None:
    served = OpsServer(routes(unreachable, alive=lambda: False))
    port = await served.start("127.0.0.1", 0)
    try:
        status, _, body = await get(port, request("/health"))
    finally:
        await served.close()
    assert status == 503 and json.loads(body) == {"status": "down", "reason": "the consume loop has stopped"}


@pytest.mark.parametrize(("raw", "code"), [
    (b"POST /health HTTP/1.1\r\n\r\n", 405),
    (b"GET /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 413),
    (b"GET /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 413),
    (b"GET /secrets HTTP/1.1\r\n\r\n", 404),
    (b"hello\r\n\r\n", 400),
    (b"GET /health HTTP/1.1\r\nX-Filler: " + b"x" * 9000 + b"\r\n\r\n", 431),
])
async def test_ops_refuses_what_it_does_not_serve(server: tuple[OpsServer, int], raw: bytes, code: int) -> None:
    status, _, _ = await get(server[1], raw)
    assert status == code


async def test_ops_drops_a_client_whose_request_head_is_too_slow(
    monkeypatch: pytest.MonkeyPatch, server: tuple[OpsServer, int]
) -> None:
    monkeypatch.setattr(ops, "HEAD_TIMEOUT_SECONDS", 0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server[1])
    writer.write(b"GET /health HTTP/1.1\r\n")  # and never the blank line
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.read(), 5)  # closed without an answer, well before 5 s
    except ConnectionResetError:
        answer = b""
    writer.close()
    assert answer == b""


async def test_ops_connection_cap_evicts_the_oldest_slow_client_and_still_answers(
    monkeypatch: pytest.MonkeyPatch, server: tuple[OpsServer, int]
) -> None:
    monkeypatch.setattr(ops, "MAX_CONNECTIONS", 8)
    monkeypatch.setattr(ops, "EVICT_AFTER_SECONDS", 0.0)  # every slow client has had its chance
    slow = [await asyncio.open_connection("127.0.0.1", server[1]) for _ in range(20)]
    for _, writer in slow:
        writer.write(b"GET /health HTTP/1.1\r\n")  # never finished
        await writer.drain()
    status, _, _ = await get(server[1], request("/health"))  # a probe still gets through

    async def closed_by_server(reader: asyncio.StreamReader) -> bool:
        try:
            return await asyncio.wait_for(reader.read(), 0.5) == b""
        except ConnectionResetError:
            return True  # aborted (RST), which is how the server drops them
        except TimeoutError:
            return False  # still held open by the server

    closed = await asyncio.gather(*(closed_by_server(reader) for reader, _ in slow))
    for _, writer in slow:
        writer.close()
    assert status == 200
    assert closed.count(False) < 8, "the server held more connections open than its cap"
    assert all(closed[:12]), "the oldest slow clients are the ones evicted"


async def test_ops_connection_cap_refuses_a_newcomer_rather_than_evict_a_client_just_connected(
    monkeypatch: pytest.MonkeyPatch, server: tuple[OpsServer, int]
) -> None:
    monkeypatch.setattr(ops, "MAX_CONNECTIONS", 4)
    monkeypatch.setattr(ops, "EVICT_AFTER_SECONDS", 60.0)
    slow = [await asyncio.open_connection("127.0.0.1", server[1]) for _ in range(4)]
    for _, writer in slow:
        writer.write(b"GET /health HTTP/1.1\r\n")
        await writer.drain()
    await asyncio.sleep(0.1)
    with pytest.raises((ConnectionResetError, IndexError, ValueError)):
        await get(server[1], request("/health"))  # closed without an answer
    for reader, writer in slow:
        assert not reader.at_eof()
        writer.close()
