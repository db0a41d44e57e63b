"""An attack on the ops port, performed: a real worker process with a container-like limit of open files,
thousands of slow clients from the network that send their request head a line at a time. Jobs keep
completing from the AI (not from fallback for lack of sockets), the log stays small, and a local liveness
probe (the container's HEALTHCHECK, a Kubernetes exec probe) answers throughout."""

from __future__ import annotations

import asyncio
import resource
import urllib.request
from pathlib import Path

import psycopg
import pytest

from devkit.processes import fake_ai_process
from devkit.samples import submit_many
from tests.worker_support import wait_for_status, worker_process

pytestmark = pytest.mark.usefixtures("empty_queues")

ATTACKERS = 3000
WORKER_OPEN_FILES = 512  # the review's worker ran out at its limit; this one is far lower


async def slowloris(port: int, stop: asyncio.Event) -> int:
    """Keep reconnecting, sending one header line every second; returns how many connections it made."""
    made = 0
    while not stop.is_set():
        try:
            # From another loopback address: the server counts it as a remote peer, as a pod's neighbour.
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
        except OSError:
            await asyncio.sleep(0.1)
            continue
        made += 1
        try:
            writer.write(b"GET /health HTTP/1.1\r\n")
            while not stop.is_set() and not reader.at_eof():
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
                await asyncio.wait_for(reader.read(1), 1.0)
        except (TimeoutError, OSError):
            pass
        finally:
            writer.close()
    return made


def probe(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
        return int(response.status)


async def test_a_slowloris_flood_changes_neither_job_outcomes_nor_log_volume(
    admin: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, ATTACKERS + 1024), hard))
    with fake_ai_process(latency=0.05) as ai_url:
        worker = worker_process(database_url, ai_url, tmp_path, {"WORKER_CONCURRENCY": "16"},
                                max_open_files=WORKER_OPEN_FILES)
        try:
            await asyncio.to_thread(worker.wait_ready)
            stop = asyncio.Event()
            attack = [asyncio.create_task(slowloris(worker.ops_port, stop)) for _ in range(ATTACKERS)]
            await asyncio.sleep(3)  # the flood is at full strength
            ids = submit_many(admin, 100, seed=7000)
            rows = await wait_for_status(database_url, ids, timeout=60)
            probes = [await asyncio.to_thread(probe, worker.ops_port) for _ in range(5)]  # during the flood
            stop.set()
            made = sum(await asyncio.gather(*attack))
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            log = worker.log()
            worker.close()
    assert made > ATTACKERS
    assert {row["source"] for row in rows} == {"ai"}, "every job got the AI, none fell back for lack of sockets"
    assert probes == [200] * 5
    assert "out of system resource" not in log
    assert len(log.encode()) < 200_000, f"the flood grew the log to {len(log.encode())} bytes"
