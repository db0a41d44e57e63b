"""The provider_limit section: a burst against an AI provider that enforces a request limit, and what asking
the database before every AI call costs.

Burst: the fake provider (its own process) allows `limit` requests a minute (one second's worth at a time,
429 with OpenAI's headers beyond); two `python -m worker run` processes (default WORKER_CONCURRENCY, cache
off) are frozen while pgbench inserts a burst of BURST_FACTOR x the per-second limit from BURST_USERS users,
then let go. Twice, side by side: with AI_REQUESTS_PER_MINUTE set to the limit (`configured`, the figures
the issue judges) and without it (`unconfigured`: the workers only react to the provider's 429s and
headers, which is what they did before). goodput_ratio = successful calls per second from the first to the
last completion, over the limit a second; rejected_share = 429s / all calls; fallback_share = fallback
results / jobs.

Admission cost: pgbench as assessment_worker, one client (the cost of a call, not of waiting for locks); a
transaction is admit_ai_call + settle_ai_call for one of 256 leased jobs, with nothing set (the pause check
and the usage records: what every call pays) and with every limit and budget set (every lock taken),
beside the same round trips doing nothing (`select 1`); database CPU is the server's processes over
each run.
"""

from __future__ import annotations

import json
import time
from typing import Any

from devkit import REPO, localdb
from devkit.bench import pgbench
from devkit.bench.run import Bench, frozen, note
from devkit.processes import FakeAiProcess, process_tree_cpu_seconds

BURST_FACTOR = 30  # jobs = BURST_FACTOR x the per-second limit
BURST_USERS = 30
LEASES = 256

# One AI call's two statements for one of LEASES leased jobs; :limits are the worker's settings (worker/db.py).
# The worker runs them on its progress pool, which commits without waiting for the disk; so does this.
ADMIT_AND_SETTLE = """set synchronous_commit = off;
\\set m :base + random(0, 255)
select reservation from private.admit_ai_call(:m, 1, null, 4000, 0.002, 10, :limits, null) \\gset
select private.settle_ai_call(:reservation, 1, 400, 200, 0.0003, :settle_limits, null);
"""
# What the worker passes with nothing set, and with every limit and budget set (never reached here).
NOTHING_SET = ("null, null, null, null", "null, null, null")
EVERYTHING_SET = ("100000000, 1000000000000, 1000000000000, 1000000000", "1000000000000, 1000000000000, 1000000000")
TWO_ROUND_TRIPS = """set synchronous_commit = off;
select 1;
select 1;
"""


def provider_limit(bench: Bench) -> dict[str, Any]:
    limit = 300 if bench.plan.quick else 120  # a minute: 5 or 2 a second
    jobs = BURST_FACTOR * limit // 60
    configured = burst(bench, limit, jobs, {"AI_REQUESTS_PER_MINUTE": str(limit)}, "configured")
    unconfigured = burst(bench, limit, jobs, {}, "unconfigured")
    return {
        "method": f"the fake provider allows {limit} requests a minute ({limit / 60:g} a second, 429 with OpenAI's "
        f"headers beyond); 2 worker processes (default settings, cache off) frozen while pgbench inserts {jobs} jobs "
        f"({BURST_FACTOR} x the per-second limit) from {BURST_USERS} users, then let go; configured: "
        "AI_REQUESTS_PER_MINUTE set to the limit; unconfigured: not set (the workers only react to 429s and "
        "x-ratelimit-* headers). goodput_ratio = (completions - 1) / (last - first completion) / limit a second; "
        "rejected_share = 429s / requests; fallback_share = fallback results / jobs. admission: pgbench as "
        f"assessment_worker, one client, admit_ai_call + settle_ai_call for one of {LEASES} leased jobs with nothing "
        "set and with every limit and budget set, beside two `select 1` round trips; database CPU = the server's "
        "processes / transactions",
        "limit_per_minute": limit,
        **configured,
        "unconfigured": unconfigured,
        "admission": admission_cost(bench),
    }


def burst(bench: Bench, limit: int, jobs: int, env: dict[str, str], name: str) -> dict[str, Any]:
    note(f"provider_limit ({name}): {jobs} jobs at once against a provider allowing {limit} a minute, 2 workers")
    bench.reset()
    bench.conn.execute("update private.ai_limiter set next_request_at = null, tokens_full_at = null, "
                       "paused_until = null")
    ai = FakeAiProcess(latency=0.05, requests_per_minute=limit)
    try:
        group = [bench.worker(f"provider-limit-{name}-{i}", ai, source=REPO, **env) for i in range(2)]
        try:
            with frozen(group):
                pgbench.run(bench.api_url, pgbench.USER_INSERT, clients=1, transactions=jobs,
                            variables={"users": str(BURST_USERS)})
                started = time.time()
            bench.wait_results(jobs, timeout=jobs * 60 / limit + 120)
            seconds = time.time() - started
        finally:
            for worker in group:
                worker.terminate()
                worker.close()
        stats = ai.stats()
    finally:
        ai.stop()
    fallbacks = int(bench.scalar("select count(*) from public.result_test where user_id = any(%s::uuid[]) "
                                 "and source = 'fallback'", (bench.users,)))
    span = (stats["last_completed_at"] or 0) - (stats["first_completed_at"] or 0)
    bench.reset()
    return {
        "jobs": jobs,
        "seconds": seconds,
        "ideal_seconds": (jobs - 1) * 60 / limit,
        "requests": stats["requests"],
        "rate_limited": stats["rate_limited"],
        "completed": stats["completed"],
        "goodput_ratio": (stats["completed"] - 1) / span / (limit / 60) if span > 0 else 0.0,
        "rejected_share": stats["rate_limited"] / stats["requests"] if stats["requests"] else 0.0,
        "fallback_share": fallbacks / jobs,
    }


def admission_cost(bench: Bench) -> dict[str, Any]:
    seconds = 3 if bench.plan.quick else 8
    note(f"provider_limit: admit + settle (nothing set, everything set) against two `select 1`, {seconds}s each")
    bench.reset()
    today = "(now() at time zone 'UTC')::date"
    before = bench.conn.execute(f"select requests, prompt_tokens, completion_tokens, cost_usd, budget_usd "
                                f"from private.ai_project_usage where day = {today}").fetchone()
    events = [json.dumps({"type": "assessment_submitted", "version": 1,
                          "assessment_id": f"00000000-0000-4000-8000-{i:012d}", "user_id": bench.users[i],
                          "submitted_at": "2026-01-01T00:00:00Z"}) for i in range(LEASES)]
    ids = [row[0] for row in bench.conn.execute(
        "select * from pgmq.send_batch('assessment_submitted', %s::jsonb[])", (events,))]
    assert ids == list(range(ids[0], ids[0] + LEASES)), "the leased jobs' msg_ids must be consecutive"
    bench.conn.execute("update pgmq.q_assessment_submitted set vt = now() + interval '1 hour', read_ct = 1 "
                       "where msg_id = any(%s)", (ids,))
    worker = localdb.url("assessment_worker")
    figures = {}
    try:
        for name, script, (limits, settle_limits) in (("baseline", TWO_ROUND_TRIPS, NOTHING_SET),
                                                      ("nothing_set", ADMIT_AND_SETTLE, NOTHING_SET),
                                                      ("everything_set", ADMIT_AND_SETTLE, EVERYTHING_SET)):
            # The settings go into the script's text: pgbench would send a variable as one parameter.
            text = script.replace(":limits", limits).replace(":settle_limits", settle_limits)
            cpu = process_tree_cpu_seconds(localdb.postmaster_pid())
            result = pgbench.run(worker, text, clients=1, seconds=seconds, variables={"base": str(ids[0])})
            cpu = process_tree_cpu_seconds(localdb.postmaster_pid()) - cpu
            figures[name] = {"per_second": result.tps, "database_cpu_ms": cpu * 1000 / result.transactions}
    finally:
        bench.reset()
        bench.conn.execute("delete from private.ai_reservation where msg_id = any(%s)", (ids,))
        if before is None:
            bench.conn.execute(f"delete from private.ai_project_usage where day = {today}")
        else:  # the benchmark's calls are not the project's spend
            bench.conn.execute(f"update private.ai_project_usage set requests = %s, prompt_tokens = %s, "
                               f"completion_tokens = %s, cost_usd = %s, budget_usd = %s where day = {today}", before)
    return {
        "per_second": figures["nothing_set"]["per_second"],
        "database_cpu_ms_per_call": figures["nothing_set"]["database_cpu_ms"],
        "everything_set_per_second": figures["everything_set"]["per_second"],
        "everything_set_database_cpu_ms_per_call": figures["everything_set"]["database_cpu_ms"],
        "baseline_per_second": figures["baseline"]["per_second"],
        "baseline_database_cpu_ms": figures["baseline"]["database_cpu_ms"],
    }
