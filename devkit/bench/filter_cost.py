"""What one API request can cost: a user's own filter over the free text of their own rows.

Through PostgREST a signed-in user may filter their rows with `like`, `ilike`, `match` (~) and `imatch`
(~*) on any column, JSON paths included. This section stores one assessment and one result at the
largest sizes the validation allows, then runs each operator's worst pattern on each free-text field as
that user, exactly as PostgREST would (devkit.postgrest.acting_as, so the role's own statement timeout
applies), and reports how long each took and whether the timeout ended it. One run of each: a request
that hits the timeout costs the timeout, however it is repeated.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import psycopg

from devkit.bench.run import Bench, note
from devkit.postgrest import acting_as, role_settings

TEXT = "abcdefghij" * 200  # 2,000 characters: the longest text answer, and summary, the rules allow
NOTES = TEXT[:1000]  # context.notes: at most 1,000
# PostgREST filter (column path) -> the SQL PostgREST generates for it.
FIELDS = {
    "test_assessment?answers->0->>answer": ("public.test_assessment", "answers -> 0 ->> 'answer'"),
    "test_assessment?context->>notes": ("public.test_assessment", "context ->> 'notes'"),
    "result_test?summary": ("public.result_test", "summary"),
    "result_test?recommendations->0->>description": ("public.result_test", "recommendations -> 0 ->> 'description'"),
}
# Each operator's most expensive pattern we know of on text that does not match it.
OPERATORS = {
    "like": ("like", "%a%b%c%d%e%f%g%h%i%j%k%"),
    "ilike": ("ilike", "%A%B%C%D%E%F%G%H%I%J%K%"),
    "match": ("~", r"^(.*)(.*)(.*)(.*)(.*)\5\4\3\2\1$"),
    "imatch": ("~*", r"^(.*)(.*)(.*)(.*)(.*)\5\4\3\2\1$"),
}


def filter_cost(bench: Bench) -> dict[str, Any]:
    user = uuid.UUID(bench.users[0])
    assessment_id = _store_largest_rows(bench.conn, user)
    with bench.conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        timeout = dict(role_settings(cur, "authenticated")).get("statement_timeout", "none")
    note(f"filter_cost: {len(FIELDS) * len(OPERATORS)} filters as a user, statement_timeout {timeout}")
    costs: dict[str, dict[str, Any]] = {}
    try:
        for field, (table, expression) in FIELDS.items():
            for name, (operator, pattern) in OPERATORS.items():
                started = time.perf_counter()
                outcome = "finished"
                try:
                    with acting_as(bench.conn, user) as cur:  # rolled back
                        cur.execute(f"select count(*) from {table} where {expression} {operator} %s",  # fixed text
                                    (pattern,))
                except psycopg.errors.QueryCanceled:
                    outcome = "statement_timeout"
                costs[f"{field}={name}"] = {"ms": round((time.perf_counter() - started) * 1000, 1),
                                            "ended_by": outcome}
    finally:
        bench.conn.execute("delete from public.test_assessment where id = %s", (assessment_id,))
    worst = max(costs.values(), key=lambda cost: cost["ms"])
    return {"statement_timeout": timeout, "worst_ms": worst["ms"], "filters": costs,
            "method": "one user's filter on their own largest rows, as PostgREST runs it (role settings applied)"}


def _store_largest_rows(conn: psycopg.Connection[Any], user: uuid.UUID) -> uuid.UUID:
    answers = [{"question_id": "q0", "question": "Tell us more", "answer": TEXT}]
    with acting_as(conn, user, commit=True) as cur:
        row = cur.execute("insert into public.test_assessment (assessment_type, answers, context) "
                          "values ('bench_filter', %s, %s) returning id",
                          (json.dumps(answers), json.dumps({"notes": NOTES}))).fetchone()
    assert row is not None
    assessment_id: uuid.UUID = row["id"]
    recommendation = {"title": "T" * 120, "description": TEXT[:1000], "category": "Cat", "priority": 1,
                      "rationale": TEXT[:600]}
    # As the worker would store it (postgres here: the bench seeds, it does not test the worker).
    conn.execute("update public.test_assessment set status = 'processing' where id = %s", (assessment_id,))
    conn.execute("insert into public.result_test (assessment_id, user_id, summary, recommendations, source, "
                 "fallback_reason, prompt_version, latency_ms) values (%s, %s, %s, %s, 'fallback', "
                 "'not_configured', 'bench', 1)",
                 (assessment_id, user, TEXT, json.dumps([recommendation] * 10)))
    return assessment_id
