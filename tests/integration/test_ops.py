"""The ops server: what /health, /ready and /metrics answer, and that slow or hostile clients cannot hold
the port (request head deadline, no bodies, a connection cap that evicts the oldest slow client, slots of
its own for local probes), while every answer arrives whole."""

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
from worker import health as health_module
from worker import ops
from worker.db import Database
from worker.health import Health
from worker.metrics import QUEUE_DEPTH, QUEUE_OLDEST_AGE_SECONDS, REGISTRY
from worker.ops import Answer, OpsServer, routes

pytestmark = pytest.mark.usefixtures("empty_queues")


REMOTE = ("127.0.0.2", 0)  # another loopback address: a peer the server counts as remote


async def get(port: int, request: bytes, source: tuple[str, int] | None = None) -> tuple[int, dict[str, str], bytes]:
    """Send `request` as it is; returns (status, headers, body) of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=source)
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


async def slow() -> Answer:
    await asyncio.sleep(1.0)
    return Answer.json(200, {"status": "slow"})


async def large() -> Answer:
    return Answer(200, "text/plain", b"x" * (8 * 1024 * 1024))


@pytest.fixture
async def server() -> AsyncIterator[tuple[OpsServer, int]]:
    served = OpsServer(routes(alive=lambda: True, not_ready_reason=lambda: None) | {"/slow": slow, "/large": large})
    port = await served.start("127.0.0.1", 0)
    yield served, port
    await served.close()


async def test_ops_health_ready_and_metrics_answer(admin: psycopg.Connection, database_url: str) -> None:
    async with FakeOpenAI() as ai:
        settings = settings_for(database_url, cache_ttl_seconds=0)
        async with running_worker(settings, recommender_for(settings, ai.base_url)) as consumer:
            ids = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(21)}])
            await wait_for_status(database_url, ids)
            served = OpsServer(routes(alive=lambda: True, not_ready_reason=consumer.health.not_ready_reason))
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
                 "assessment_queue_depth", "assessment_queue_oldest_message_age_seconds", "assessment_worker_ready",
                 "assessment_ai_cost_usd_total", "assessment_worker_listen_connected",
                 'assessment_database_errors_total{kind="transient",operation="commit"}',
                 'assessment_fenced_writes_total{operation="commit"}'):
        assert name in text, name


async def test_ops_ready_says_why_the_database_is_unreachable_without_its_error_text(unreachable: Database) -> None:
    health = Health(unreachable)
    served = OpsServer(routes(alive=lambda: True, not_ready_reason=health.not_ready_reason))
    port = await served.start("127.0.0.1", 0)
    try:
        before = await get(port, request("/ready"))
        await health.check()
        after = await get(port, request("/ready"))
    finally:
        await served.close()
    assert (before[0], json.loads(before[2])["reason"]) == (503, "not checked yet")
    assert after[0] == 503
    reason = json.loads(after[2])["reason"]
    assert reason.startswith("database unreachable")
    assert "127.0.0.1" not in reason and "assessment_worker" not in reason  # no server detail for the port


async def test_ops_ready_says_why_when_the_database_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, unreachable: Database
) -> None:
    async def never() -> list[object]:
        await asyncio.sleep(60)
        return []

    monkeypatch.setattr(health_module, "CHECK_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(unreachable, "queue_metrics", never)
    health = Health(unreachable)
    await health.check()
    assert health.not_ready_reason() == "database unreachable: no answer within 0.2s"


async def test_ops_ready_turns_stale_when_the_checks_stop(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    db = await Database.open(settings_for(database_url).database_url, size=1)
    try:
        health = Health(db)
        await health.check()
        assert health.not_ready_reason() is None
        monkeypatch.setattr(health_module, "STALE_AFTER_SECONDS", 0.0)
        assert "has not run for a while" in (health.not_ready_reason() or "")
    finally:
        await db.close()


async def test_ops_health_fails_when_the_consume_loop_stopped() -> None:
    served = OpsServer(routes(alive=lambda: False, not_ready_reason=lambda: None))
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
    slow = [await asyncio.open_connection("127.0.0.1", server[1], local_addr=REMOTE) for _ in range(20)]
    for _, writer in slow:
        writer.write(b"GET /health HTTP/1.1\r\n")  # never finished
        await writer.drain()
    status, _, _ = await get(server[1], request("/health"), REMOTE)  # a probe still gets through

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
    slow = [await asyncio.open_connection("127.0.0.1", server[1], local_addr=REMOTE) for _ in range(4)]
    for _, writer in slow:
        writer.write(b"GET /health HTTP/1.1\r\n")
        await writer.drain()
    await asyncio.sleep(0.1)
    with pytest.raises((ConnectionResetError, IndexError, ValueError)):
        await get(server[1], request("/health"), REMOTE)  # closed without an answer
    status, _, _ = await get(server[1], request("/health"))  # a local probe has slots of its own
    for reader, writer in slow:
        assert not reader.at_eof()
        writer.close()
    assert status == 200


async def test_ops_a_request_being_answered_is_never_evicted(
    monkeypatch: pytest.MonkeyPatch, server: tuple[OpsServer, int]
) -> None:
    monkeypatch.setattr(ops, "MAX_CONNECTIONS", 2)
    monkeypatch.setattr(ops, "EVICT_AFTER_SECONDS", 0.0)
    answers = [asyncio.create_task(get(server[1], request("/slow"), REMOTE)) for _ in range(2)]
    await asyncio.sleep(0.3)  # both heads are in; both answers take a second
    newcomer = await asyncio.open_connection("127.0.0.1", server[1], local_addr=REMOTE)
    statuses = [status for status, _, _ in await asyncio.gather(*answers)]
    newcomer[1].close()
    assert statuses == [200, 200]


async def test_ops_a_large_answer_arrives_whole_at_a_slow_reader(server: tuple[OpsServer, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server[1])
    writer.write(request("/large"))
    await writer.drain()
    await asyncio.sleep(0.5)  # let the server fill every buffer it can before we read
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and len(body) == 8 * 1024 * 1024


async def test_a_failed_check_withdraws_the_queue_figures_instead_of_keeping_old_ones(unreachable: Database) -> None:
    """A replica that lost the database must not keep reporting the depth it saw last: the alerts take the
    max over replicas and would page on a queue the others have drained."""
    QUEUE_DEPTH.labels("assessment_submitted").set(400)
    QUEUE_OLDEST_AGE_SECONDS.labels("assessment_submitted").set(400)
    await Health(unreachable).check()
    assert REGISTRY.get_sample_value("assessment_queue_depth", {"queue": "assessment_submitted"}) is None
    assert REGISTRY.get_sample_value("assessment_queue_oldest_message_age_seconds",
                                     {"queue": "assessment_submitted"}) is None
    assert REGISTRY.get_sample_value("assessment_worker_ready") == 0
