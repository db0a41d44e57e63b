"""The measured sections: submit, drain (end to end and scale-out), latency, slow AI.

Each returns a dict of figures and the method that produced them; docs/performance.md explains them.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devkit import REPO, localdb
from devkit.bench import pgbench
from devkit.bench.run import CLIENTS, RUN_USERS, Bench, frozen, machine_busy_seconds, note, percentile
from devkit.postgrest import acting_as
from devkit.processes import FakeAiProcess, cpu_seconds, process_tree_cpu_seconds

LATENCY_RATE = 100.0  # offered load of the latency section, inserts per second
SLOW_AI_SECONDS = 2.0
SLOW_AI_CONCURRENCY = 128


def submit(bench: Bench) -> dict[str, Any]:
    """Users' inserts against plain inserts of the same rows, alternating rounds, pgbench driving both; the
    request's envelope alone in between; what each trigger costs from EXPLAIN ANALYZE."""
    plan = bench.plan
    note(f"submit: {plan.submit_rounds} rounds of {plan.submit_seconds:g}s plain inserts, the request envelope "
         f"alone, then as users ({CLIENTS} pgbench clients)")
    rounds: list[dict[str, float]] = []
    variables = {"users": str(RUN_USERS)}
    for _ in range(plan.submit_rounds):
        def rate(url: str, script: str) -> float:
            return pgbench.run(url, script, clients=CLIENTS, seconds=plan.submit_seconds, variables=variables).tps

        rounds.append({"plain_per_second": rate(bench.url, pgbench.PLAIN_INSERT),
                       "envelope_per_second": rate(bench.api_url, pgbench.ENVELOPE_INSERT),
                       "user_per_second": rate(bench.api_url, pgbench.USER_INSERT)})
        bench.reset()

    def median(key: str) -> float:
        values = sorted(r[key] for r in rounds)
        return values[len(values) // 2]

    def median_ratio(key: str) -> float:
        values = sorted(r[key] / r["plain_per_second"] for r in rounds)
        return values[len(values) // 2]

    return {
        "method": f"pgbench -M prepared, {CLIENTS} clients, {plan.submit_rounds} alternating rounds of "
        f"{plan.submit_seconds:g}s; users: begin + set local role authenticated + request.jwt.claims + insert "
        "... returning id + commit, logged in as authenticator (RLS, validation, guard and enqueue triggers, "
        "foreign key; rate limit off); envelope: the same request into bench_plain; plain: autocommit insert of "
        "the same row into bench_plain (like test_assessment including defaults and indexes; no triggers, "
        "foreign keys or RLS). ratios = medians of the rounds' ratios to plain. trigger_ms: EXPLAIN ANALYZE of "
        f"{TRIGGER_SAMPLES} inserts as a user (rolled back), median per trigger",
        "plain_per_second": median("plain_per_second"),
        "envelope_per_second": median("envelope_per_second"),
        "user_per_second": median("user_per_second"),
        "rounds": rounds,
        "ratio": median_ratio("user_per_second"),
        "envelope_ratio": median_ratio("envelope_per_second"),
        **trigger_costs(bench),
    }


TRIGGER_SAMPLES = 50
_TRIGGER_LINE = re.compile(r"^Trigger (?:for constraint )?(\S+)(?: on \S+)?: time=([\d.]+) calls=\d+$")


def trigger_costs(bench: Bench) -> dict[str, Any]:
    """Median execution time of one user's insert and of each trigger in it (EXPLAIN ANALYZE, rolled back)."""
    executions: list[float] = []
    triggers: dict[str, list[float]] = {}
    user = bench.users[0]
    with acting_as(bench.conn, uuid.UUID(user)) as cur:  # as PostgREST would run it; rolled back
        for n in range(TRIGGER_SAMPLES + 5):  # the first few plan and warm the caches
            answers = pgbench.ANSWERS_SQL.replace(":n", str(n))
            plan = [row["QUERY PLAN"] for row in cur.execute(
                "explain (analyze, costs off) insert into public.test_assessment (assessment_type, answers, context) "
                f"values ('career', {answers}, {pgbench.CONTEXT_SQL}) returning id")]
            if n < 5:
                continue
            for line in plan:
                if line.startswith("Execution Time:"):
                    executions.append(float(line.split()[2]))
                elif match := _TRIGGER_LINE.match(line):
                    triggers.setdefault(match.group(1), []).append(float(match.group(2)))
    return {"insert_execution_ms": percentile(executions, 50),
            "trigger_ms": {name: percentile(times, 50) for name, times in triggers.items()}}


@contextlib.contextmanager
def profiled(pid: int, output: str | None) -> Iterator[None]:
    """py-spy record on `pid` while the block runs, when --py-spy FILE was given."""
    if not output:
        yield
        return
    kind = "speedscope" if output.endswith(".json") else "raw" if output.endswith(".txt") else "flamegraph"
    py_spy = Path(sys.executable).parent / "py-spy"  # installed with the dev extras
    process = subprocess.Popen([str(py_spy), "record", "-p", str(pid), "-o", output, "-r", "250", "-f", kind],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        note(f"py-spy wrote {output}")


def drain(bench: Bench, workers: int, ai: FakeAiProcess, profile: str | None = None, source: Path = REPO,
          **env: str) -> dict[str, Any]:
    """`workers` worker processes (with `env` on top of the defaults) drain a queue that pgbench filled while
    they were frozen (SIGSTOP)."""
    jobs = bench.plan.drain_jobs - bench.plan.drain_jobs % CLIENTS
    settings = "".join(f", {name}={value}" for name, value in env.items())
    note(f"drain: {jobs} queued jobs, {workers} worker process(es), instant AI{settings}")
    bench.reset()
    group = [bench.worker(f"drain-{workers}-{i}", ai, source=source, **env) for i in range(workers)]
    try:
        with frozen(group):
            pgbench.run(bench.api_url, pgbench.USER_INSERT, clients=CLIENTS, transactions=jobs // CLIENTS,
                        variables={"users": str(RUN_USERS)})
            cpu_before = [w.cpu_seconds() for w in group]
            ai_before, busy_before = cpu_seconds(ai.pid), machine_busy_seconds()
            db_before = process_tree_cpu_seconds(localdb.postmaster_pid())
            started = time.time()
        with profiled(group[0].pid, profile):
            bench.wait_results(jobs, timeout=600)
        cpu = sum(w.cpu_seconds() for w in group) - sum(cpu_before)
        ai_cpu, busy = cpu_seconds(ai.pid) - ai_before, machine_busy_seconds() - busy_before
        db_cpu = process_tree_cpu_seconds(localdb.postmaster_pid()) - db_before
    finally:
        for worker in group:
            worker.terminate()
            worker.close()
    last_commit = float(bench.scalar(
        "select extract(epoch from max(pg_xact_commit_timestamp(xmin))) from public.result_test "
        "where user_id = any(%s::uuid[])", (bench.users,)))
    seconds = last_commit - started
    bench.reset()
    return {
        "workers": workers,
        "jobs": jobs,
        "seconds": seconds,
        "jobs_per_second": jobs / seconds,
        "cpu_ms_per_job": cpu * 1000 / jobs,
        "fake_ai_cpu_ms_per_job": ai_cpu * 1000 / jobs,
        "database_cpu_ms_per_job": db_cpu * 1000 / jobs,
        "machine_busy_cores": busy / seconds,
    }


def scale_out(bench: Bench, counts: list[int], profile: str | None) -> dict[str, Any]:
    """drain() for each worker count, side by side with one fake AI; efficiency against N x one worker."""
    ai = FakeAiProcess(latency=0.0)
    try:
        runs = [drain(bench, n, ai, profile if n == counts[0] else None) for n in counts]
    finally:
        ai.stop()
    base = next((run for run in runs if run["workers"] == 1), None)
    for run in runs:
        run["efficiency"] = run["jobs_per_second"] / (run["workers"] * base["jobs_per_second"]) if base else None
    return {
        "method": "per worker count N: N `python -m worker run` processes (as assessment_worker, default settings, "
        "cache off) are started and frozen with SIGSTOP; pgbench inserts the jobs as users; SIGCONT; "
        "jobs/s = jobs / (commit time of the last result (track_commit_timestamp) - SIGCONT); CPU/job = the "
        "workers' utime + stime (/proc/<pid>/stat) over the drain / jobs; the fake AI answers at once in its "
        "own process (its CPU is reported, not counted); database CPU/job = the PostgreSQL server's processes "
        "(the postmaster's tree in /proc, exited backends included) over the drain / jobs, which includes the "
        "benchmark's own polling for the last result (one count every 50 ms); efficiency = jobs/s(N) / (N x jobs/s(1))",
        "runs": runs,
    }


def latency(bench: Bench, source: Path = REPO) -> dict[str, Any]:
    """Insert commit to result commit at LATENCY_RATE inserts/s, one worker, instant AI."""
    seconds = bench.plan.latency_seconds
    note(f"latency: pgbench at {LATENCY_RATE:g} inserts/s for {seconds:g}s, one worker, instant AI")
    bench.reset()
    ai = FakeAiProcess(latency=0.0)
    worker = bench.worker("latency", ai, source=source)
    try:
        load = pgbench.run(bench.api_url, pgbench.USER_INSERT, clients=1, seconds=seconds, rate=LATENCY_RATE,
                           variables={"users": str(RUN_USERS)}, log=True)
        bench.wait_results(load.transactions, timeout=60)
    finally:
        worker.terminate()
        worker.close()
        ai.stop()
    # One pgbench client sends its inserts one after another, so the n-th completed insert is the n-th
    # assessment by created_at; the result's commit time is when a reader can first see it.
    rows = bench.conn.execute(
        "select extract(epoch from a.started_at), extract(epoch from r.created_at), "
        "extract(epoch from pg_xact_commit_timestamp(r.xmin)) from public.test_assessment a "
        "join public.result_test r on r.assessment_id = a.id where a.user_id = any(%s::uuid[]) "
        "order by a.created_at, a.id", (bench.users,)).fetchall()
    assert len(rows) == len(load.ends), f"{len(rows)} results for {len(load.ends)} inserts"
    latencies, pickup, work, commit = [], [], [], []
    for (started, result_started, done), inserted in zip(rows, load.ends, strict=True):
        latencies.append((float(done) - inserted) * 1000)
        pickup.append((float(started) - inserted) * 1000)  # woken, leased, marked processing
        work.append((float(result_started) - float(started)) * 1000)  # prompt, cache, AI, queued for commit
        commit.append((float(done) - float(result_started)) * 1000)  # the completing transaction
    bench.reset()
    return {
        "method": f"pgbench --rate {LATENCY_RATE:g} with one client (a Poisson schedule) for {seconds:g}s, inserting "
        "as users while one worker runs (instant AI); latency = commit time of the result_test row "
        "(pg_xact_commit_timestamp, the moment a reader can see it) - the time the insert's commit returned to "
        "pgbench (its per-transaction log); both on this host's clock, microsecond resolution",
        "samples": len(latencies),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
        "insert_p50_ms": percentile(load.latencies_ms, 50),
        "insert_p99_ms": percentile(load.latencies_ms, 99),
        "parts_ms": {name: {"p50": percentile(values, 50), "p99": percentile(values, 99)}
                     for name, values in (("pickup", pickup), ("work", work), ("commit", commit))},
    }


def slow_ai(bench: Bench) -> dict[str, Any]:
    """A queue of jobs against an AI that takes SLOW_AI_SECONDS: concurrency held, memory bounded."""
    jobs = bench.plan.slow_ai_jobs
    note(f"slow AI: {jobs} queued jobs, AI latency {SLOW_AI_SECONDS:g}s, WORKER_CONCURRENCY={SLOW_AI_CONCURRENCY}")
    bench.reset()
    pgbench.run(bench.api_url, pgbench.USER_INSERT, clients=CLIENTS, transactions=jobs // CLIENTS,
                variables={"users": str(RUN_USERS)})
    ai = FakeAiProcess(latency=SLOW_AI_SECONDS)
    peak = 0.0
    try:
        worker = bench.worker("slow-ai", ai, WORKER_CONCURRENCY=str(SLOW_AI_CONCURRENCY))
        idle_mb = worker.memory_mb("VmRSS")
        try:
            deadline = time.monotonic() + jobs / 10 + 60
            while bench.results() < jobs:
                if time.monotonic() > deadline:
                    raise SystemExit(f"bench: slow AI jobs did not finish; see {worker.log_path}.")
                with contextlib.suppress(OSError):
                    peak = max(peak, worker.metric("assessment_jobs_in_flight") or 0.0)
                time.sleep(0.1)
            peak_mb = worker.memory_mb("VmHWM")
        finally:
            worker.terminate()
            worker.close()
    finally:
        ai.stop()
    span = float(bench.scalar(
        "select extract(epoch from max(pg_xact_commit_timestamp(r.xmin)) - min(a.started_at)) "
        "from public.test_assessment a join public.result_test r on r.assessment_id = a.id "
        "where a.user_id = any(%s::uuid[])", (bench.users,)))
    bench.reset()
    return {
        "method": f"{jobs} jobs queued (pgbench) before one worker with WORKER_CONCURRENCY={SLOW_AI_CONCURRENCY} "
        f"starts; the fake AI answers after {SLOW_AI_SECONDS:g}s; in flight = max of assessment_jobs_in_flight "
        "read from /metrics every 100 ms; rate = jobs / (last result commit - first started_at); RSS = VmRSS "
        "when ready and VmHWM at the end, from /proc/<pid>/status",
        "jobs": jobs,
        "concurrency": SLOW_AI_CONCURRENCY,
        "peak_in_flight": peak,
        "per_second": jobs / span,
        "ideal_per_second": SLOW_AI_CONCURRENCY / SLOW_AI_SECONDS,
        "idle_rss_mb": idle_mb,
        "peak_rss_mb": peak_mb,
    }
