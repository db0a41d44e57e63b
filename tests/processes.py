"""Worker and fake-AI processes for tests that kill, stop or outlive them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support import REPO


@contextmanager
def fake_ai_process(latency: float = 0.0, fail_rate: float = 0.0) -> Iterator[str]:
    """`python -m tests.fake_openai` in its own process; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_openai", "--port", "0", "--latency", str(latency),
         "--fail-rate", str(fail_rate)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(timeout=10)


class WorkerProcess:
    """`python -m worker run` as a child process, logging to a file."""

    def __init__(self, database_url: str, ai_url: str, log_dir: Path, **env: str) -> None:
        self.log_path = log_dir / f"worker-{time.monotonic_ns()}.log"
        environment = os.environ | {
            "DATABASE_URL": database_url, "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": ai_url,
            "WORKER_OPS_PORT": "0", "WORKER_LEASE_SECONDS": "3", "WORKER_POLL_INTERVAL_SECONDS": "0.2",
            "CACHE_TTL_SECONDS": "0", "WORKER_SHUTDOWN_GRACE_SECONDS": "10",
        } | env
        self.log_file = self.log_path.open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "worker", "run"], cwd=REPO, env=environment,
                                        stdout=self.log_file, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def log(self) -> str:
        self.log_file.flush()
        return self.log_path.read_text()

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        self.log_file.close()
