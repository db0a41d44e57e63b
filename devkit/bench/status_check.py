"""The status check: a user reads one assessment and its result, over many rows, under RLS.

Seeded once and kept (ids are md5 of the row number, so a larger run adds only the missing rows): users
`bench-seed-N@bench.invalid`, assessments of type `bench_seed` with their results. Remove them with
`delete from auth.users where email like 'bench-seed-%@bench.invalid'` (the rest cascades).
"""

from __future__ import annotations

import time
from typing import Any

from devkit.bench import pgbench
from devkit.bench.run import Bench, note, percentile

SEED_USERS = 10_000
CHUNK = 100_000

SEED_ASSESSMENTS = """
insert into public.test_assessment (id, user_id, assessment_type, answers, context, status, attempts,
                                    created_at, started_at, completed_at, updated_at)
select md5('bench-seed-assessment-' || g)::uuid, md5('bench-seed-user-' || (g %% %(users)s))::uuid, 'bench_seed',
       jsonb_build_array(
         jsonb_build_object('question_id', 'energy', 'question', 'How energised do you feel at work (1-5)?',
                            'answer', g %% 5 + 1),
         jsonb_build_object('question_id', 'blocker', 'question', 'What blocks you most?',
                            'answer', 'Meetings, case ' || g)),
       '{"locale": "en"}', 'completed', 1, t, t, t + interval '2 seconds', t + interval '2 seconds'
from generate_series(%(lo)s::int, %(hi)s::int - 1) g,
     lateral (select timestamptz '2025-01-01' + make_interval(secs => g * 30)) s(t)
on conflict (id) do nothing
"""

SEED_RESULTS = """
insert into public.result_test (assessment_id, user_id, summary, recommendations, source, model,
                                prompt_version, cache_key, prompt_tokens, completion_tokens, latency_ms, created_at)
select md5('bench-seed-assessment-' || g)::uuid, md5('bench-seed-user-' || (g %% %(users)s))::uuid,
       'Seeded result ' || g || ' of the status-check benchmark: two steps.',
       jsonb_build_array(
         jsonb_build_object('title', 'Plan one small weekly step', 'category', 'Planning', 'priority', 1,
                            'description', 'Choose one small action for each week and schedule it.',
                            'rationale', 'Seeded for the status-check benchmark.'),
         jsonb_build_object('title', 'Review your progress monthly', 'category', 'Review', 'priority', 3,
                            'description', 'Once a month, compare where you are with where you started.',
                            'rationale', 'Regular reviews show which changes are working.')),
       'ai', 'fake-model', 'v1', encode(sha256(('bench-seed-cache-' || g)::bytea), 'hex'), 120, 80, 2000,
       timestamptz '2025-01-01' + make_interval(secs => g * 30 + 2)
from generate_series(%(lo)s::int, %(hi)s::int - 1) g
on conflict (assessment_id) do nothing
"""

READ = """select a.id, a.status, a.created_at, a.completed_at, a.last_error,
       r.summary, r.recommendations, r.source, r.created_at as result_created_at
from public.test_assessment a left join public.result_test r on r.assessment_id = a.id
where a.id = md5('bench-seed-assessment-' || :g)::uuid;"""

AS_OWNER = f"""\\set g random(0, :rows - 1)
begin;
set local role authenticated;
select set_config('request.jwt.claims', json_build_object(
  'sub', md5('bench-seed-user-' || (:g::int % :users::int))::uuid, 'role', 'authenticated', 'aud', 'authenticated'
)::text, true);
{READ}
commit;
"""

AS_POSTGRES = f"""\\set g random(0, :rows - 1)
{READ}
"""


def seed(bench: Bench, wanted: int) -> int:
    """Make sure seeded rows 0..wanted-1 exist; returns how many there are."""
    count = "select count(*) from public.test_assessment where assessment_type = 'bench_seed'"
    have = int(bench.scalar(count))
    if have >= wanted:
        note(f"status check: reusing {have} seeded assessments")
        return have
    note(f"status check: seeding assessments {have}..{wanted - 1} and their results (once; kept for reuse)")
    started = time.perf_counter()
    bench.conn.execute(
        "insert into auth.users (id, email, role, aud) select md5('bench-seed-user-' || u)::uuid, "
        "'bench-seed-' || u || '@bench.invalid', 'authenticated', 'authenticated' "
        "from generate_series(0, %s - 1) u on conflict (id) do nothing", (SEED_USERS,))
    for lo in range(have, wanted, CHUNK):
        with bench.conn.transaction():
            # Skip triggers (validation, enqueue, broadcasts) and foreign-key checks: these rows are history.
            bench.conn.execute("set local session_replication_role = replica")
            bounds = {"lo": lo, "hi": min(wanted, lo + CHUNK), "users": SEED_USERS}
            bench.conn.execute(SEED_ASSESSMENTS, bounds)
            bench.conn.execute(SEED_RESULTS, bounds)
        note(f"status check: seeded {min(wanted, lo + CHUNK)} of {wanted}")
    bench.conn.execute("vacuum (analyze) public.test_assessment, public.result_test")
    note(f"status check: seeding took {time.perf_counter() - started:.1f}s")
    return int(bench.scalar(count))


def status_check(bench: Bench) -> dict[str, Any]:
    rows = seed(bench, bench.plan.seed_rows)
    queries = bench.plan.status_queries
    note(f"status check: {queries} reads as the owner and {queries} as postgres over {rows} assessments")
    variables = {"rows": str(rows), "users": str(SEED_USERS)}
    for script, url in ((AS_OWNER, bench.api_url), (AS_POSTGRES, bench.url)):  # warm the cache and plans
        pgbench.run(url, script, clients=1, transactions=200, variables=variables)
    owner = pgbench.run(bench.api_url, AS_OWNER, clients=1, transactions=queries, variables=variables, log=True)
    plain = pgbench.run(bench.url, AS_POSTGRES, clients=1, transactions=queries, variables=variables, log=True)
    return {
        "method": f"pgbench, one client, {queries} reads of a random seeded assessment with its result: as its owner "
        "(logged in as authenticator: begin + set local role authenticated + claims + select + commit, RLS on "
        "both tables) vs the same select as postgres (no role switch, no RLS, autocommit); per-transaction "
        "latency from pgbench's log, after 200 warm-up reads of each",
        "assessments": rows,
        "queries": queries,
        "p50_ms": percentile(owner.latencies_ms, 50),
        "p99_ms": percentile(owner.latencies_ms, 99),
        "baseline_p50_ms": percentile(plain.latencies_ms, 50),
        "baseline_p99_ms": percentile(plain.latencies_ms, 99),
    }
