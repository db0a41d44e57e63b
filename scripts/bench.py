#!/usr/bin/env python3
"""Benchmarks of the assessment pipeline on the local database; prints each figure beside its baseline.

    .venv/bin/python scripts/bench.py [--quick] [--json] [--py-spy FILE]

Uses the database of `scripts/localdb up` (LOCALDB_PORT is respected), the real worker
(`python -m worker run` as role assessment_worker) and the fake OpenAI server (`python -m
tests.fake_openai`), each in its own process. What each figure means, how it is measured and what bounds
it: docs/performance.md. Progress goes to stderr; the table (or JSON with --json) to stdout.

The benchmark owns the local database while it runs: it turns the submission rate limit off (and restores
it), purges the job queues, and deletes what its `bench-run-*@bench.invalid` users created. The seeded
status-check data (`bench-seed-*@bench.invalid` users, assessment_type `bench_seed`) is kept for reuse.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import os
import platform
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the fake OpenAI server and its process helper live in tests/

from tests.processes import fake_ai_process  # noqa: E402  (needs the path above)
from tests.worker_support import worker_url  # noqa: E402

LOCALDB = REPO / "scripts" / "localdb"
PYTHON = sys.executable

CLIENTS = 8  # client connections of every load generator
RUN_USERS = 256  # users the load is spread over (the rate limit is off, so only RLS cares)
SEED_USERS = 10_000
LATENCY_RATE = 100.0  # offered load of the latency run, inserts per second
POLL_SECONDS = 0.002  # how often the latency run looks for new results
SLOW_AI_SECONDS = 2.0
SLOW_AI_CONCURRENCY = 128

TARGETS = {
    "submit_ratio": 0.6,
    "end_to_end_ratio": 0.5,
    "latency_p50_ms": 10.0,
    "latency_p99_ms": 50.0,
    "slow_ai_in_flight": 100,
    "slow_ai_per_second": 45.0,
    "slow_ai_rss_mb": 200.0,
    "status_p99_ms": 5.0,
}


@dataclass(frozen=True)
class Plan:
    """How much work each section does; --quick shrinks everything to finish in under a minute."""

    quick: bool
    submit_seconds: float
    end_to_end_jobs: int
    latency_seconds: float
    slow_ai_jobs: int  # a multiple of SLOW_AI_CONCURRENCY, so every wave is full
    seed_rows: int
    status_queries: int


FULL = Plan(
    False,
    submit_seconds=10,
    end_to_end_jobs=6000,
    latency_seconds=20,
    slow_ai_jobs=10 * SLOW_AI_CONCURRENCY,
    seed_rows=1_000_000,
    status_queries=10_000,
)
QUICK = Plan(
    True,
    submit_seconds=2.5,
    end_to_end_jobs=1500,
    latency_seconds=5,
    slow_ai_jobs=3 * SLOW_AI_CONCURRENCY,
    seed_rows=100_000,
    status_queries=2000,
)


def note(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- database helpers


def database_url() -> str:
    result = subprocess.run([str(LOCALDB), "up"], capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        raise SystemExit(f"bench: 'scripts/localdb up' failed:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True, application_name="bench")


def md5_uuid(text: str) -> uuid.UUID:
    """The same id as `md5(text)::uuid` in SQL, so seeded rows can be addressed without a query."""
    return uuid.UUID(hashlib.md5(text.encode()).hexdigest())


def answers_json(seq: int) -> str:
    """Four valid answers, distinct per seq (the AI cache never hits, as with real users)."""
    return json.dumps(
        [
            {
                "question_id": "energy",
                "question": "How energised do you feel at work (1-5)?",
                "answer": seq % 5 + 1,
            },
            {"question_id": "mentor", "question": "Do you have a mentor?", "answer": seq % 2 == 0},
            {
                "question_id": "skills",
                "question": "Which skills do you want to grow?",
                "answer": ["SQL", f"skill {seq}"],
            },
            {
                "question_id": "blocker",
                "question": "What blocks you most?",
                "answer": f"Meetings, case {seq}",
            },
        ]
    )


CONTEXT_JSON = json.dumps({"goals": ["Lead a team"], "locale": "en"})
INSERT_SQL = (
    "insert into public.test_assessment (user_id, assessment_type, answers, context) "
    "values (%s, 'career', %s, %s) returning id"
)
PLAIN_SQL = (
    "insert into bench_plain (user_id, assessment_type, answers, context) values (%s, 'career', %s, %s)"
)
STATUS_SQL = """
select a.id, a.status, a.created_at, a.completed_at, a.last_error,
       r.summary, r.recommendations, r.source, r.created_at as result_created_at
from public.test_assessment a
left join public.result_test r on r.assessment_id = a.id
where a.id = %s"""


def claims(user_id: uuid.UUID) -> str:
    return json.dumps({"sub": str(user_id), "role": "authenticated", "aud": "authenticated"})


def as_user(conn: psycopg.Connection[Any], user_id: uuid.UUID, sql: str, params: tuple[Any, ...]) -> Any:
    """One PostgREST request: begin; set local role; the JWT claims; the statement; commit.

    Sent as one pipeline (one round trip), so the comparison with a one-statement plain insert
    measures database work rather than extra client round trips."""
    with conn.pipeline():
        conn.execute("begin")
        conn.execute("set local role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, true)", (claims(user_id),))
        cursor = conn.execute(sql, params)
        conn.execute("commit")
    return cursor.fetchall()


def user_insert(conn: psycopg.Connection[Any], user_id: uuid.UUID, seq: int) -> uuid.UUID:
    rows = as_user(conn, user_id, INSERT_SQL, (user_id, answers_json(seq), CONTEXT_JSON))
    return rows[0][0]  # type: ignore[no-any-return]


def plain_insert(conn: psycopg.Connection[Any], user_id: uuid.UUID, seq: int) -> None:
    conn.execute(PLAIN_SQL, (user_id, answers_json(seq), CONTEXT_JSON))


def run_users() -> list[uuid.UUID]:
    return [md5_uuid(f"bench-run-user-{i}") for i in range(RUN_USERS)]


def prepare(conn: psycopg.Connection[Any], users: list[uuid.UUID]) -> int | None:
    """Create the run users, turn the rate limit off; returns the limit to restore."""
    conn.execute(
        "insert into auth.users (id, email, role, aud) "
        "select md5('bench-run-user-' || i)::uuid, 'bench-run-' || i || '@bench.invalid', "
        "'authenticated', 'authenticated' from generate_series(0, %s - 1) i on conflict (id) do nothing",
        (RUN_USERS,),
    )
    row = conn.execute("select submissions_per_minute from private.settings").fetchone()
    conn.execute("update private.settings set submissions_per_minute = null")
    reset_run_data(conn, users)
    return row[0] if row else None


def reset_run_data(conn: psycopg.Connection[Any], users: list[uuid.UUID]) -> None:
    """Purge the queues and delete the run users' assessments (results cascade) and archived jobs."""
    conn.execute(
        "select pgmq.purge_queue('assessment_submitted'), pgmq.purge_queue('assessment_submitted_dlq')"
    )
    conn.execute(
        "delete from pgmq.a_assessment_submitted where message ->> 'user_id' = any(%s)",
        ([str(u) for u in users],),
    )
    conn.execute("delete from public.test_assessment where user_id = any(%s)", (users,))


def cleanup(conn: psycopg.Connection[Any], users: list[uuid.UUID], limit: int | None) -> None:
    reset_run_data(conn, users)
    conn.execute("delete from auth.users where email like 'bench-run-%%@bench.invalid'")
    conn.execute("drop table if exists bench_plain")
    conn.execute("update private.settings set submissions_per_minute = %s", (limit,))


def results_done(conn: psycopg.Connection[Any], users: list[uuid.UUID]) -> int:
    row = conn.execute("select count(*) from public.result_test where user_id = any(%s)", (users,)).fetchone()
    return int(row[0]) if row else 0


def wait_results(conn: psycopg.Connection[Any], users: list[uuid.UUID], total: int, timeout: float) -> float:
    """Poll until `total` results exist; returns the perf_counter time they were first all seen."""
    deadline = time.perf_counter() + timeout
    while (done := results_done(conn, users)) < total:
        if time.perf_counter() > deadline:
            raise SystemExit(
                f"bench: only {done} of {total} results after {timeout:.0f}s; see the worker log."
            )
        time.sleep(0.05)
    return time.perf_counter()


# ----------------------------------------------------------------------------- load generators


@dataclass
class LoadResult:
    count: int
    seconds: float
    errors: int
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


def closed_loop(
    url: str,
    users: list[uuid.UUID],
    action: Callable[[psycopg.Connection[Any], uuid.UUID, int], Any],
    seconds: float | None = None,
    total: int | None = None,
) -> LoadResult:
    """CLIENTS threads, one connection each, one row per transaction, as fast as they can."""
    connections = [connect(url) for _ in range(CLIENTS)]
    sequence = itertools.count()  # next() on itertools.count is atomic under the GIL
    counts = [0] * CLIENTS
    errors = [0] * CLIENTS
    start = time.perf_counter()
    stop_at = start + seconds if seconds is not None else float("inf")

    def client(index: int) -> None:
        conn = connections[index]
        while time.perf_counter() < stop_at:
            seq = next(sequence)
            if total is not None and seq >= total:
                return
            try:
                action(conn, users[seq % len(users)], seq)
                counts[index] += 1
            except psycopg.Error as exc:
                errors[index] += 1
                if errors[index] == 1:
                    note(f"insert failed: {exc}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    for conn in connections:
        conn.close()
    return LoadResult(sum(counts), elapsed, sum(errors))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


# ----------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Worker:
    """`python -m worker run` as assessment_worker, with a fixed ops port, logging to a file."""

    def __init__(self, url: str, ai_url: str, log_dir: Path, **env: str) -> None:
        self.ops_port = free_port()
        self.env = {
            "DATABASE_URL": worker_url(url),
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_BASE_URL": ai_url,
            "WORKER_OPS_PORT": str(self.ops_port),
        } | env
        self.log_path = log_dir / f"worker-{self.ops_port}.log"
        self.log_file = self.log_path.open("w")
        self.process = subprocess.Popen(
            [PYTHON, "-m", "worker", "run"],
            cwd=REPO,
            env=os.environ | self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()
        self.idle_rss_mb = self.memory_mb("VmRSS")

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(
                    f"bench: the worker exited; see {self.log_path}:\n{self.log_path.read_text()[-2000:]}"
                )
            ready = f"http://127.0.0.1:{self.ops_port}/ready"
            with contextlib.suppress(OSError), urllib.request.urlopen(ready, timeout=1) as response:
                if response.status == 200:
                    return
            time.sleep(0.05)
        raise SystemExit(f"bench: the worker was not ready after {timeout:.0f}s; see {self.log_path}.")

    def in_flight(self) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ops_port}/metrics", timeout=2) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("assessment_jobs_in_flight "):
                    return float(line.split()[1])
        return 0.0

    def memory_mb(self, key: str) -> float:
        """VmRSS (now) or VmHWM (peak resident set) of the worker process, in MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()


@contextlib.contextmanager
def profiler(pid: int, output: str | None) -> Iterator[None]:
    """py-spy record on the worker while the block runs, when --py-spy was given and py-spy exists."""
    if not output:
        yield
        return
    binary = Path(PYTHON).parent / "py-spy"
    command = str(binary) if binary.exists() else "py-spy"
    kind = "speedscope" if output.endswith(".json") else "raw" if output.endswith(".txt") else "flamegraph"
    process = subprocess.Popen(
        [command, "record", "-p", str(pid), "-o", output, "-r", "200", "-f", kind],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        note(f"py-spy wrote {output}")


# ----------------------------------------------------------------------------- sections


def bench_submit(
    url: str, conn: psycopg.Connection[Any], users: list[uuid.UUID], plan: Plan
) -> dict[str, Any]:
    note(
        f"submit: {CLIENTS} clients, {plan.submit_seconds:g}s plain inserts, "
        f"then {plan.submit_seconds:g}s as users"
    )
    plain = closed_loop(url, users, plain_insert, seconds=plan.submit_seconds)
    submitted = closed_loop(url, users, user_insert, seconds=plan.submit_seconds)
    reset_run_data(conn, users)
    conn.execute("truncate bench_plain")
    return {
        "method": f"{CLIENTS} client connections, one row per transaction, closed loop for "
        f"{plan.submit_seconds:g}s each; users: begin + set local role authenticated + "
        "request.jwt.claims + insert (RLS, validation, "
        "guard, enqueue triggers; rate limit off) + commit, pipelined; plain: autocommit insert into "
        "bench_plain (same columns, defaults and indexes; no triggers, FKs or RLS)",
        "plain_per_second": plain.rate,
        "user_per_second": submitted.rate,
        "ratio": submitted.rate / plain.rate if plain.rate else 0.0,
        "errors": plain.errors + submitted.errors,
    }


def bench_end_to_end(
    url: str,
    conn: psycopg.Connection[Any],
    users: list[uuid.UUID],
    plan: Plan,
    worker: Worker,
    profile: str | None,
) -> dict[str, Any]:
    jobs = plan.end_to_end_jobs
    note(f"end to end: {jobs} plain inserts, then {jobs} assessments through the worker (AI latency 0)")
    plain = closed_loop(url, users, plain_insert, total=jobs)
    conn.execute("truncate bench_plain")
    with profiler(worker.process.pid, profile):
        inserted = closed_loop(url, users, user_insert, total=jobs)
        wait_results(conn, users, jobs, timeout=300)
    row = conn.execute(
        "select extract(epoch from max(r.created_at) - min(a.created_at))::float8 "
        "from public.test_assessment a join public.result_test r on r.assessment_id = a.id "
        "where a.user_id = any(%s)",
        (users,),
    ).fetchone()
    span = float(row[0]) if row and row[0] else float("nan")
    reset_run_data(conn, users)
    rate = jobs / span
    return {
        "method": f"{jobs} assessments inserted as users by {CLIENTS} clients as fast as possible with "
        "the worker running; rate = jobs / (last result_test.created_at - first test_assessment.created_at), "
        f"database clock; baseline: {jobs} plain inserts by {CLIENTS} clients",
        "jobs": jobs,
        "raw_insert_per_second": plain.rate,
        "insert_per_second_with_worker": inserted.rate,
        "end_to_end_per_second": rate,
        "seconds": span,
        "ratio": rate / plain.rate if plain.rate else 0.0,
        "errors": plain.errors + inserted.errors,
    }


def bench_latency(
    url: str, conn: psycopg.Connection[Any], users: list[uuid.UUID], plan: Plan
) -> dict[str, Any]:
    total = int(LATENCY_RATE * plan.latency_seconds)
    note(f"latency: {total} assessments at {LATENCY_RATE:g}/s (open loop)")
    work: queue.Queue[tuple[int, float] | None] = queue.Queue()
    lock = threading.Lock()
    committed: dict[uuid.UUID, float] = {}
    pending: set[uuid.UUID] = set()
    seen: dict[uuid.UUID, float] = {}
    insert_seconds: list[float] = []
    late_seconds: list[float] = []
    poll_cycles: list[float] = []
    errors = 0
    senders_done = threading.Event()

    def sender() -> None:
        nonlocal errors
        with connect(url) as sender_conn:
            while (item := work.get()) is not None:
                seq, due = item
                started = time.perf_counter()
                try:
                    assessment_id = user_insert(sender_conn, users[seq % len(users)], 10_000_000 + seq)
                except psycopg.Error as exc:
                    errors += 1
                    note(f"insert failed: {exc}")
                    continue
                now = time.perf_counter()
                with lock:
                    committed[assessment_id] = now
                    pending.add(assessment_id)
                insert_seconds.append(now - started)
                late_seconds.append(started - due)

    def poller() -> None:
        with connect(url) as poll_conn:
            deadline = time.perf_counter() + plan.latency_seconds + 60
            while time.perf_counter() < deadline:
                tick = time.perf_counter()
                with lock:
                    ids = list(pending)
                if ids:
                    rows = poll_conn.execute(
                        "select assessment_id from public.result_test where assessment_id = any(%s)", (ids,)
                    ).fetchall()
                    now = time.perf_counter()
                    with lock:
                        for (assessment_id,) in rows:
                            seen[assessment_id] = now
                            pending.discard(assessment_id)
                elif senders_done.is_set():
                    return
                poll_cycles.append(time.perf_counter() - tick)
                time.sleep(max(0.0, tick + POLL_SECONDS - time.perf_counter()))

    senders = [threading.Thread(target=sender) for _ in range(CLIENTS)]
    watcher = threading.Thread(target=poller)
    for thread in [*senders, watcher]:
        thread.start()
    start = time.perf_counter() + 0.1
    for seq in range(total):
        due = start + seq / LATENCY_RATE
        time.sleep(max(0.0, due - time.perf_counter()))
        work.put((seq, due))
    for _ in senders:
        work.put(None)
    for thread in senders:
        thread.join()
    senders_done.set()
    watcher.join()
    reset_run_data(conn, users)
    latencies = [(seen[i] - committed[i]) * 1000 for i in seen]
    missing = len(committed) - len(seen)
    cycle_ms = sum(poll_cycles) / len(poll_cycles) * 1000 if poll_cycles else float("nan")
    return {
        "method": f"open loop: {total} inserts scheduled at {LATENCY_RATE:g}/s by {CLIENTS} sender "
        "connections; "
        "latency = time a dedicated connection first sees the result_test row (polling every "
        f"{POLL_SECONDS * 1000:g} ms) - time the insert's commit returned to its client, both on the "
        "client's monotonic clock",
        "resolution_ms": POLL_SECONDS * 1000 + cycle_ms,
        "mean_poll_cycle_ms": cycle_ms,
        "samples": len(latencies),
        "missing": missing,
        "errors": errors,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
        "insert_p50_ms": percentile(insert_seconds, 50) * 1000,
        "insert_p99_ms": percentile(insert_seconds, 99) * 1000,
        "schedule_late_p99_ms": percentile(late_seconds, 99) * 1000,
    }


def bench_slow_ai(
    url: str, conn: psycopg.Connection[Any], users: list[uuid.UUID], plan: Plan, log_dir: Path
) -> dict[str, Any]:
    jobs = plan.slow_ai_jobs
    note(
        f"slow AI: {jobs} queued assessments, AI latency {SLOW_AI_SECONDS:g}s, "
        f"WORKER_CONCURRENCY={SLOW_AI_CONCURRENCY}"
    )
    prefill = closed_loop(url, users, user_insert, total=jobs)
    peak = 0.0
    with fake_ai_process(latency=SLOW_AI_SECONDS) as ai_url:
        worker = Worker(url, ai_url, log_dir, WORKER_CONCURRENCY=str(SLOW_AI_CONCURRENCY))
        try:
            deadline = time.perf_counter() + jobs / 10 + 60
            while results_done(conn, users) < jobs:
                if time.perf_counter() > deadline:
                    raise SystemExit(f"bench: slow AI jobs did not finish; see {worker.log_path}.")
                with contextlib.suppress(OSError):
                    peak = max(peak, worker.in_flight())
                time.sleep(0.1)
            hwm = worker.memory_mb("VmHWM")
            idle = worker.idle_rss_mb
        finally:
            worker.stop()
    row = conn.execute(
        "select extract(epoch from max(r.created_at) - min(a.started_at))::float8, "
        "count(*) filter (where r.source = 'ai') "
        "from public.test_assessment a join public.result_test r on r.assessment_id = a.id "
        "where a.user_id = any(%s)",
        (users,),
    ).fetchone()
    assert row is not None
    span, from_ai = float(row[0]), int(row[1])
    reset_run_data(conn, users)
    ideal = SLOW_AI_CONCURRENCY / SLOW_AI_SECONDS
    return {
        "method": f"{jobs} assessments queued before a worker with "
        f"WORKER_CONCURRENCY={SLOW_AI_CONCURRENCY} starts; "
        f"the fake AI answers after {SLOW_AI_SECONDS:g}s; in flight = max of assessment_jobs_in_flight "
        "scraped from /metrics every 100 ms; rate = jobs / (last result_test.created_at - first "
        "test_assessment.started_at); RSS = VmHWM of the worker process at the end",
        "jobs": jobs,
        "from_ai": from_ai,
        "prefill_errors": prefill.errors,
        "peak_in_flight": peak,
        "concurrency": SLOW_AI_CONCURRENCY,
        "per_second": jobs / span,
        "ideal_per_second": ideal,
        "seconds": span,
        "idle_rss_mb": idle,
        "peak_rss_mb": hwm,
    }


SEED_SQL = """
insert into public.test_assessment (id, user_id, assessment_type, answers, context, status, attempts,
                                    created_at, started_at, completed_at, updated_at)
select md5('bench-seed-assessment-' || g)::uuid, md5('bench-seed-user-' || (g %% {users}))::uuid,
       'bench_seed',
       jsonb_build_array(
         jsonb_build_object('question_id', 'energy', 'question', 'How energised do you feel at work (1-5)?',
                            'answer', g %% 5 + 1),
         jsonb_build_object('question_id', 'mentor', 'question', 'Do you have a mentor?',
                            'answer', g %% 2 = 0),
         jsonb_build_object('question_id', 'skills', 'question', 'Which skills do you want to grow?',
                            'answer', jsonb_build_array('SQL', 'skill ' || g)),
         jsonb_build_object('question_id', 'blocker', 'question', 'What blocks you most?',
                            'answer', 'Meetings, case ' || g)),
       '{{"locale": "en"}}', 'completed', 1, t, t, t + interval '2 seconds', t + interval '2 seconds'
from generate_series(%(lo)s::int, %(hi)s::int - 1) g,
     lateral (select timestamptz '2025-01-01' + make_interval(secs => g * 30)) s(t)
on conflict (id) do nothing
"""

SEED_RESULTS_SQL = """
insert into public.result_test (assessment_id, user_id, summary, recommendations, source, model,
                                prompt_version, cache_key, prompt_tokens, completion_tokens, latency_ms,
                                created_at)
select md5('bench-seed-assessment-' || g)::uuid, md5('bench-seed-user-' || (g %% {users}))::uuid,
       'Seeded result ' || g || ' of the status-check benchmark: two steps.',
       jsonb_build_array(
         jsonb_build_object('title', 'Plan one small weekly step', 'category', 'Planning', 'priority', 1,
                            'description', 'Choose one small action for each week and schedule it.',
                            'rationale', 'Seeded for the status-check benchmark.'),
         jsonb_build_object('title', 'Review your progress monthly', 'category', 'Review', 'priority', 3,
                            'description', 'Once a month, compare where you are with where you started.',
                            'rationale', 'Regular reviews show which changes are working.')),
       'ai', 'fake-model', 'v1', md5('bench-seed-cache-' || g), 120, 80, 2000,
       timestamptz '2025-01-01' + make_interval(secs => g * 30 + 2)
from generate_series(%(lo)s::int, %(hi)s::int - 1) g
on conflict (assessment_id) do nothing
"""


def seeded_rows(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "select count(*) from public.test_assessment where assessment_type = 'bench_seed'"
    ).fetchone()
    return int(row[0]) if row else 0


def seed(conn: psycopg.Connection[Any], wanted: int) -> int:
    """Make sure rows 0..wanted-1 exist (ids are md5 of the row number, so seeding can resume)."""
    have = seeded_rows(conn)
    if have >= wanted:
        note(f"status check: reusing {have} seeded assessments")
        return have
    note(f"status check: seeding assessments {have}..{wanted - 1} and their results (once; kept for reuse)")
    started = time.perf_counter()
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")  # skip triggers, FK checks included
        conn.execute(
            "insert into auth.users (id, email, role, aud) select md5('bench-seed-user-' || u)::uuid, "
            "'bench-seed-' || u || '@bench.invalid', 'authenticated', 'authenticated' "
            "from generate_series(0, %s - 1) u on conflict (id) do nothing",
            (SEED_USERS,),
        )
    chunk = 100_000
    for lo in range(have, wanted, chunk):
        with conn.transaction():
            conn.execute("set local session_replication_role = replica")
            bounds = {"lo": lo, "hi": min(wanted, lo + chunk)}
            conn.execute(SEED_SQL.format(users=SEED_USERS), bounds)
            conn.execute(SEED_RESULTS_SQL.format(users=SEED_USERS), bounds)
        note(f"status check: seeded {min(wanted, lo + chunk)} of {wanted}")
    conn.execute("vacuum (analyze) public.test_assessment, public.result_test")
    note(f"status check: seeding took {time.perf_counter() - started:.1f}s")
    return seeded_rows(conn)


def plan_summary(plan: dict[str, Any]) -> dict[str, Any]:
    nodes: list[str] = []

    def walk(node: dict[str, Any], depth: int) -> None:
        name = node["Node Type"]
        if node.get("Parent Relationship") == "InitPlan":
            name = f"InitPlan {node.get('Subplan Name', '')}: {name}"  # (select auth.uid()) of a policy
        if "Index Name" in node:
            name += f" using {node['Index Name']}"
        if "Relation Name" in node:
            name += f" on {node['Relation Name']}"
        hit, read = node.get("Shared Hit Blocks", 0), node.get("Shared Read Blocks", 0)
        nodes.append(
            f"{'  ' * depth}{name} (rows={node.get('Actual Rows')}, "
            f"time={node.get('Actual Total Time')} ms, shared hit={hit} read={read})"
        )
        for child in node.get("Plans", []):
            walk(child, depth + 1)

    walk(plan["Plan"], 0)
    scans = [line.strip() for line in nodes if "Scan" in line]
    return {
        "nodes": nodes,
        "index_scans_only": all("Index" in scan for scan in scans),
        "planning_ms": plan.get("Planning Time"),
        "execution_ms": plan.get("Execution Time"),
    }


def bench_status(url: str, conn: psycopg.Connection[Any], plan: Plan) -> dict[str, Any]:
    rows = seed(conn, plan.seed_rows)
    queries = plan.status_queries
    note(f"status check: {queries} reads as the owner and {queries} as postgres over {rows} assessments")
    samples = [
        (md5_uuid(f"bench-seed-assessment-{g}"), md5_uuid(f"bench-seed-user-{g % SEED_USERS}"))
        for g in (int.from_bytes(os.urandom(4), "big") % rows for _ in range(queries + 200))
    ]
    owner: list[float] = []
    superuser: list[float] = []
    misses = 0
    with connect(url) as reader:
        for n, (assessment_id, user_id) in enumerate(samples):
            started = time.perf_counter()
            found = as_user(reader, user_id, STATUS_SQL, (assessment_id,))
            if n >= 200:  # the first 200 warm the connection and the plan cache
                owner.append((time.perf_counter() - started) * 1000)
                misses += len(found) != 1
        for n, (assessment_id, _) in enumerate(samples):
            started = time.perf_counter()
            reader.execute(STATUS_SQL, (assessment_id,)).fetchall()
            if n >= 200:
                superuser.append((time.perf_counter() - started) * 1000)
        assessment_id, user_id = samples[0]
        explained = as_user(
            reader, user_id, "explain (analyze, buffers, format json)" + STATUS_SQL, (assessment_id,)
        )
    owner_p99, base_p99 = percentile(owner, 99), percentile(superuser, 99)
    return {
        "method": f"one connection, {queries} sequential reads of a random seeded assessment with its "
        "result: as its owner (begin + set local role authenticated + claims + select + commit, "
        "pipelined, RLS on "
        "both tables) vs the same select as postgres (no RLS, autocommit); client-side round-trip time",
        "assessments": rows,
        "seeded_for": plan.seed_rows,
        "queries": queries,
        "misses": misses,
        "p50_ms": percentile(owner, 50),
        "p99_ms": owner_p99,
        "baseline_p50_ms": percentile(superuser, 50),
        "baseline_p99_ms": base_p99,
        "plan": plan_summary(explained[0][0][0]),
    }


# ----------------------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def table(report: dict[str, Any]) -> str:
    s, e, lat, slow, st = (report[k] for k in ("submit", "end_to_end", "latency", "slow_ai", "status_check"))
    t = TARGETS
    rows = [
        (
            "submit, inserts/s",
            f"{s['plain_per_second']:.0f} plain",
            f"{s['user_per_second']:.0f} as users",
            f"{s['ratio']:.2f}",
            f">= {t['submit_ratio']} x plain",
            verdict(s["ratio"] >= t["submit_ratio"]),
        ),
        (
            "end to end (AI 0 s), jobs/s",
            f"{e['raw_insert_per_second']:.0f} raw inserts",
            f"{e['end_to_end_per_second']:.0f} completed",
            f"{e['ratio']:.2f}",
            f">= {t['end_to_end_ratio']} x raw",
            verdict(e["ratio"] >= t["end_to_end_ratio"]),
        ),
        (
            "latency p50 @100/s, ms",
            f"{lat['insert_p50_ms']:.1f} insert",
            f"{lat['p50_ms']:.1f} to result",
            f"{lat['p50_ms'] / lat['insert_p50_ms']:.1f}",
            f"<= {t['latency_p50_ms']:g} ms",
            verdict(lat["p50_ms"] <= t["latency_p50_ms"]),
        ),
        ("latency p95 @100/s, ms", "", f"{lat['p95_ms']:.1f} to result", "", "", ""),
        (
            "latency p99 @100/s, ms",
            f"{lat['insert_p99_ms']:.1f} insert",
            f"{lat['p99_ms']:.1f} to result",
            f"{lat['p99_ms'] / lat['insert_p99_ms']:.1f}",
            f"<= {t['latency_p99_ms']:g} ms",
            verdict(lat["p99_ms"] <= t["latency_p99_ms"]),
        ),
        (
            "slow AI (2 s): peak in flight",
            f"{slow['concurrency']} concurrency",
            f"{slow['peak_in_flight']:.0f}",
            f"{slow['peak_in_flight'] / slow['concurrency']:.2f}",
            f">= {t['slow_ai_in_flight']}",
            verdict(slow["peak_in_flight"] >= t["slow_ai_in_flight"]),
        ),
        (
            "slow AI (2 s): jobs/s",
            f"{slow['ideal_per_second']:.0f} ideal",
            f"{slow['per_second']:.1f}",
            f"{slow['per_second'] / slow['ideal_per_second']:.2f}",
            f">= {t['slow_ai_per_second']:g}/s",
            verdict(slow["per_second"] >= t["slow_ai_per_second"]),
        ),
        (
            "slow AI (2 s): worker RSS, MB",
            f"{slow['idle_rss_mb']:.0f} idle",
            f"{slow['peak_rss_mb']:.0f} peak",
            f"{slow['peak_rss_mb'] / slow['idle_rss_mb']:.2f}",
            f"<= {t['slow_ai_rss_mb']:g} MB",
            verdict(slow["peak_rss_mb"] <= t["slow_ai_rss_mb"]),
        ),
        (
            f"status check p50 ({st['assessments'] // 1000}k rows), ms",
            f"{st['baseline_p50_ms']:.2f} no RLS",
            f"{st['p50_ms']:.2f} as owner",
            f"{st['p50_ms'] / st['baseline_p50_ms']:.1f}",
            "",
            "",
        ),
        (
            f"status check p99 ({st['assessments'] // 1000}k rows), ms",
            f"{st['baseline_p99_ms']:.2f} no RLS",
            f"{st['p99_ms']:.2f} as owner",
            f"{st['p99_ms'] / st['baseline_p99_ms']:.1f}",
            f"<= {t['status_p99_ms']:g} ms",
            verdict(st["p99_ms"] <= t["status_p99_ms"]),
        ),
    ]
    header = ("figure", "baseline", "value", "ratio", "target", "")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "-" * len(lines[0]))
    m = report["machine"]
    scans = "index scans only" if st["plan"]["index_scans_only"] else "NOT index scans only"
    return "\n".join(
        [
            f"Assessment pipeline benchmark{' (--quick)' if report['quick'] else ''}: {m['cpus']} CPUs, "
            f"PostgreSQL {m['postgres']}, fsync={m['fsync']}, synchronous_commit={m['synchronous_commit']}, "
            f"{CLIENTS} client connections",
            "",
            *lines,
            "",
            f"latency: insert commit -> result first seen by a poller every {POLL_SECONDS * 1000:g} ms "
            f"(resolution ~{lat['resolution_ms']:.1f} ms), {lat['samples']} samples, "
            f"{lat['missing']} missing, "
            f"schedule lateness p99 {lat['schedule_late_p99_ms']:.1f} ms",
            f"end to end: {e['jobs']} jobs in {e['seconds']:.1f}s; inserts ran at "
            f"{e['insert_per_second_with_worker']:.0f}/s "
            "beside the worker",
            f"status check: {st['assessments']} seeded assessments"
            f"{' (--quick seeds 100k unless more exist)' if report['quick'] else ''}; "
            f"plan: {scans}; {'; '.join(line.strip() for line in st['plan']['nodes'] if 'Scan' in line)}",
            f"errors: {sum(report[k].get('errors', 0) for k in ('submit', 'end_to_end', 'latency'))}; "
            f"elapsed {report['elapsed_seconds']:.0f}s",
        ]
    )


def machine(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    def setting(name: str) -> str:
        row = conn.execute("select current_setting(%s)", (name,)).fetchone()
        return str(row[0]) if row else "?"

    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "postgres": setting("server_version").split()[0],
        "fsync": setting("fsync"),
        "synchronous_commit": setting("synchronous_commit"),
        "shared_buffers": setting("shared_buffers"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small runs; finishes in under a minute")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument(
        "--py-spy",
        metavar="FILE",
        help="record the worker with py-spy during the end-to-end run "
        "(FILE.json: speedscope, FILE.txt: collapsed stacks, else a flame graph SVG)",
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()
    url = database_url()
    users = run_users()
    report: dict[str, Any] = {"quick": plan.quick, "clients": CLIENTS, "targets": TARGETS}
    with connect(url) as conn, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        log_dir = Path(tmp)
        report["machine"] = machine(conn)
        limit = prepare(conn, users)
        try:
            conn.execute("drop table if exists bench_plain")
            conn.execute(
                "create table bench_plain (like public.test_assessment including defaults including indexes)"
            )
            report["submit"] = bench_submit(url, conn, users, plan)
            with fake_ai_process(latency=0.0) as ai_url:
                worker = Worker(url, ai_url, log_dir)
                try:
                    report["end_to_end"] = bench_end_to_end(url, conn, users, plan, worker, args.py_spy)
                    report["latency"] = bench_latency(url, conn, users, plan)
                    report["instant_ai_worker_peak_rss_mb"] = worker.memory_mb("VmHWM")
                finally:
                    worker.stop()
            report["slow_ai"] = bench_slow_ai(url, conn, users, plan, log_dir)
            report["status_check"] = bench_status(url, conn, plan)
        finally:
            cleanup(conn, users, limit)
    report["elapsed_seconds"] = time.perf_counter() - started
    print(json.dumps(report, indent=2, default=str) if args.json else table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
