"""Processes the tests, the benchmark and `make run` start: the worker, the fake AI, Prometheus; and waiting
for things.

`WorkerProcess` runs `python -m worker run` exactly as it is deployed (its own process, settings from
the environment, JSON logs to a file) with an ops port known in advance, so /ready and /metrics can be
read; its CPU time and memory come from /proc.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devkit import REPO

PYTHON = sys.executable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; returns whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time process `pid` has used (utime + stime from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # fields 14 and 15 of the line


def process_tree_cpu_seconds(root: int) -> float:
    """CPU time of process `root`, of its live children, and of its children that exited (which `root`
    reaped: cutime + cstime). For a PostgreSQL server's postmaster, that is the whole server's CPU."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited while we looked
        pid, parent = int(stat.parent.name), int(fields[1])
        if pid == root:
            total += sum(int(value) for value in fields[11:15]) / tick  # utime stime cutime cstime
        elif parent == root:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


class FakeAiProcess:
    """`python -m devkit.fake_openai` in its own process; `url` is its OpenAI base URL. `port` 0 picks a free
    one; give the port of a stopped one to bring "the same AI" back. `requests_per_minute` and
    `tokens_per_minute` turn on its rate limits (429 beyond them); `chars_per_second` paces its streams and
    `recommendations` sets how many an answer holds; `stats()` reads its counts."""

    def __init__(self, latency: float = 0.0, fail_rate: float = 0.0, port: int = 0,
                 requests_per_minute: int | None = None, tokens_per_minute: int | None = None,
                 chars_per_second: float | None = None, recommendations: int = 2) -> None:
        limits = [*(["--requests-per-minute", str(requests_per_minute)] if requests_per_minute else []),
                  *(["--tokens-per-minute", str(tokens_per_minute)] if tokens_per_minute else []),
                  *(["--chars-per-second", str(chars_per_second)] if chars_per_second else [])]
        self.process = subprocess.Popen(
            [PYTHON, "-m", "devkit.fake_openai", "--port", str(port), "--latency", str(latency),
             "--fail-rate", str(fail_rate), "--recommendations", str(recommendations), *limits],
            cwd=REPO, stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        self.pid = self.process.pid

    def stats(self) -> dict[str, Any]:
        """GET /health: requests, rate_limited, completed, first_completed_at, last_completed_at."""
        with urllib.request.urlopen(self.url.removesuffix("/v1") + "/health", timeout=5) as response:
            return dict(json.loads(response.read()))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@contextmanager
def fake_ai_process(latency: float = 0.0, fail_rate: float = 0.0) -> Iterator[str]:
    """A FakeAiProcess for the duration of the block; yields its base URL."""
    fake = FakeAiProcess(latency, fail_rate)
    try:
        yield fake.url
    finally:
        fake.stop()


class PrometheusProcess:
    """A real Prometheus server (Debian's `prometheus`) on 127.0.0.1 with `config` (prometheus.yml text), its
    data in `folder`; `api(path)` reads its HTTP API."""

    def __init__(self, config: str, folder: Path) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise FileNotFoundError("prometheus is missing: run scripts/install-system-packages")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "prometheus.yml").write_text(config)
        self.port = free_port()
        self.log_path = folder / "prometheus.log"
        self._log_file = self.log_path.open("w")
        self.process = subprocess.Popen(
            [binary, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            cwd=folder, stdout=self._log_file, stderr=subprocess.STDOUT,
        )
        if not wait_until(self._ready, timeout=30, interval=0.1):
            self.stop()
            raise RuntimeError(f"prometheus did not become ready; see {self.log_path}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def api(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/{path}", timeout=5) as response:
            return json.loads(response.read())["data"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self._log_file.close()


class WorkerExited(Exception):
    """The worker process ended (or never became ready); the message carries its last log lines."""


class WorkerProcess:
    """`python -m worker run` as a child process with `env` on top of this process's environment.

    The ops server listens on `ops_port` (a free port unless WORKER_OPS_PORT is given); stdout and
    stderr go to `log_path`. `new_session` puts it in its own process group (a Ctrl-C in the terminal
    then reaches only the parent, which stops it in order); `max_open_files` caps its file descriptors.
    `source` is the tree whose `worker` package runs (its directory comes first on the module path), so a
    benchmark can run an older commit's worker beside this one.
    """

    def __init__(self, log_path: Path, env: Mapping[str, str], *, new_session: bool = False,
                 max_open_files: int | None = None, source: Path = REPO) -> None:
        self.ops_port = int(env.get("WORKER_OPS_PORT") or free_port())
        self.log_path = log_path
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = log_path.open("w")
        environment = dict(os.environ) | dict(env) | {"WORKER_OPS_PORT": str(self.ops_port)}
        def limit_open_files() -> None:  # as a container's ulimit would (the hard limit binds the worker too)
            if max_open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max_open_files, max_open_files))

        self.process = subprocess.Popen(
            [PYTHON, "-m", "worker", "run"], cwd=source, env=environment, preexec_fn=limit_open_files,
            stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=new_session,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def ops_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ops_port}{path}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until GET /ready answers 200; WorkerExited if the process ends or the time runs out."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise WorkerExited(f"the worker exited with status {self.process.returncode} before it was "
                                   f"ready. Last lines of {self.log_path}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.ops_url("/ready"), timeout=1) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                last = exc.read().decode(errors="replace")
            except OSError as exc:
                last = str(exc)
            time.sleep(0.05)
        raise WorkerExited(f"the worker was not ready after {timeout:g} s ({last}). See {self.log_path}.")

    def metric(self, name: str) -> float | None:
        """The value of an unlabelled sample `name` on /metrics, or None if it is not exported."""
        with urllib.request.urlopen(self.ops_url("/metrics"), timeout=2) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(f"{name} "):
                    return float(line.split()[1])
        return None

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def memory_mb(self, key: str = "VmRSS") -> float:
        """VmRSS (now) or VmHWM (peak resident set) of the worker process, in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
        raise KeyError(f"{key} is not in /proc/{self.pid}/status")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM (the worker finishes jobs in flight first); SIGKILL if it has not exited by `timeout`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def log(self) -> str:
        self._log_file.flush()
        return self.log_path.read_text()

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join("    " + line for line in self.log().splitlines()[-lines:])

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        self._log_file.close()
