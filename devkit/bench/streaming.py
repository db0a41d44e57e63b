"""The streaming section: how soon the owner sees the first recommendation, and what streaming costs the
worker in CPU.

- first draft vs completion: ASSESSMENTS assessments against a fake provider that streams at
  CHARS_PER_SECOND (about 50 tokens/s) and writes RECOMMENDATIONS recommendations; for each, the time from
  its `assessment_processing` broadcast to its first `recommendation_streamed` and to its
  `recommendation_completed` (each message's occurred_at: the time of the transaction that sent it).
- CPU: the drain (one worker, a fast streaming fake: no pacing) with AI_STREAM=true and AI_STREAM=false,
  alternating, ROUNDS times each; the worker's CPU per job of each, and the difference.
"""

from __future__ import annotations

import statistics
from typing import Any

from devkit.bench import pgbench
from devkit.bench.run import RUN_USERS, Bench, note, percentile
from devkit.bench.sections import drain
from devkit.processes import FakeAiProcess

ASSESSMENTS = 20
CHARS_PER_SECOND = 200.0
RECOMMENDATIONS = 6
ROUNDS = 2


def streaming(bench: Bench) -> dict[str, Any]:
    return {**first_draft(bench), "cpu": cpu(bench)}


def first_draft(bench: Bench) -> dict[str, Any]:
    note(f"streaming: {ASSESSMENTS} assessments, fake AI streaming {RECOMMENDATIONS} recommendations at "
         f"{CHARS_PER_SECOND:g} characters/s")
    bench.reset()
    ai = FakeAiProcess(chars_per_second=CHARS_PER_SECOND, recommendations=RECOMMENDATIONS)
    try:
        worker = bench.worker("streaming", ai, WORKER_CONCURRENCY=str(ASSESSMENTS))
        try:
            pgbench.run(bench.api_url, pgbench.USER_INSERT, clients=1, transactions=ASSESSMENTS,
                        variables={"users": str(RUN_USERS)})
            bench.wait_results(ASSESSMENTS, timeout=120)
        finally:
            worker.terminate()
            worker.close()
    finally:
        ai.stop()
    rows = bench.conn.execute("""
        select a.id,
               min((m.payload ->> 'occurred_at')::timestamptz) filter (where m.event = 'assessment_processing'),
               min((m.payload ->> 'occurred_at')::timestamptz) filter (where m.event = 'recommendation_streamed'),
               max((m.payload ->> 'occurred_at')::timestamptz) filter (where m.event = 'recommendation_completed'),
               count(*) filter (where m.event = 'recommendation_streamed'),
               max(r.source::text)
        from public.test_assessment a
        join public.result_test r on r.assessment_id = a.id
        join realtime.messages m on m.topic = 'assessment:' || a.id
        where a.user_id = any(%s::uuid[])
        group by a.id""", (bench.users,)).fetchall()
    bench.reset()
    missing = [row for row in rows if row[2] is None or row[5] != "ai"]
    if len(rows) != ASSESSMENTS or missing:
        raise SystemExit(f"bench: streaming: {len(rows)} results, {len(missing)} without a draft or not from the "
                         f"AI; see {bench.log_dir}.")
    first = [(row[2] - row[1]).total_seconds() * 1000 for row in rows]
    completed = [(row[3] - row[1]).total_seconds() * 1000 for row in rows]
    first_p50, completed_p50 = percentile(first, 50), percentile(completed, 50)
    return {
        "method": f"{ASSESSMENTS} assessments inserted by pgbench as users; one worker (WORKER_CONCURRENCY="
        f"{ASSESSMENTS}, AI_STREAM=true) against the fake AI streaming {RECOMMENDATIONS} recommendations at "
        f"{CHARS_PER_SECOND:g} characters/s in chunks of 4; per assessment, from the occurred_at of its "
        "assessment_processing broadcast to that of its first recommendation_streamed and of its "
        "recommendation_completed (realtime.messages): transaction times, not delivery to a client (drafts "
        "commit with synchronous_commit = off, so Realtime may see them up to a WAL writer delay later)",
        "assessments": ASSESSMENTS,
        "first_recommendation_ms_p50": first_p50,
        "completed_ms_p50": completed_p50,
        "ratio": first_p50 / completed_p50,
        "drafts_per_assessment": statistics.mean(row[4] for row in rows),
    }


def cpu(bench: Bench) -> dict[str, Any]:
    ai = FakeAiProcess(latency=0.0)
    runs: dict[str, list[dict[str, Any]]] = {"true": [], "false": []}
    try:
        for _ in range(ROUNDS):
            for stream in ("false", "true"):
                runs[stream].append(drain(bench, 1, ai, AI_STREAM=stream))
    finally:
        ai.stop()

    def median(stream: str, key: str) -> float:
        return float(statistics.median(run[key] for run in runs[stream]))

    streamed, whole = median("true", "cpu_ms_per_job"), median("false", "cpu_ms_per_job")
    return {
        "method": f"the drain (one worker, the fake AI answering at once with 2 recommendations) with AI_STREAM="
        f"false and AI_STREAM=true, alternating, {ROUNDS} runs each; medians of the worker's CPU per job",
        "streamed_cpu_ms_per_job": streamed,
        "unstreamed_cpu_ms_per_job": whole,
        "extra_cpu_ms_per_job": streamed - whole,
        "streamed_jobs_per_second": median("true", "jobs_per_second"),
        "unstreamed_jobs_per_second": median("false", "jobs_per_second"),
    }
