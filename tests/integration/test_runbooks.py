"""docs/operations.md's fixes work on a project whose migrations are all recorded (where `db push` would do
nothing): each test removes an object as an operator could, runs the page's own SQL (the ```sql block
after a `<!-- runbook: ... -->` marker) as postgres, and checks the object is back exactly as the
migrations made it. Everything happens in one transaction that is rolled back."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devkit.postgrest import claims

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
RUNBOOK = re.compile(r"<!-- runbook: (.+?) -->\n\s*```sql\n(.*?)```", re.S)


def runbook(name: str) -> bytes:
    blocks = {title: sql for title, sql in RUNBOOK.findall(OPERATIONS.read_text())}
    assert name in blocks, f"docs/operations.md has no runbook block {name!r} (has {sorted(blocks)})"
    return str(blocks[name]).encode()


@pytest.fixture
def operator(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """postgres, as an operator's psql is, in a transaction that is always rolled back."""
    with psycopg.connect(database_url) as conn:
        try:
            yield conn
        finally:
            conn.rollback()


def one(conn: psycopg.Connection[Any], sql: str) -> Any:
    row = conn.execute(sql.encode()).fetchone()
    return row[0] if row else None


TRIGGER = ("select pg_get_triggerdef(oid) from pg_trigger where tgrelid = 'public.test_assessment'::regclass"
           " and tgname = 'a40_broadcast_assessment_status'")
POLICY = ("select row(roles, cmd, qual, with_check)::text from pg_policies where schemaname = 'realtime'"
          " and tablename = 'messages' and policyname = 'Users can receive their own assessment broadcasts'")


def test_the_broadcast_trigger_comes_back_as_the_migration_made_it(operator: psycopg.Connection[Any]) -> None:
    before = one(operator, TRIGGER)
    operator.execute(b"drop trigger a40_broadcast_assessment_status on public.test_assessment")
    assert one(operator, TRIGGER) is None

    operator.execute(runbook("restore the broadcast trigger"))

    assert before is not None and one(operator, TRIGGER) == before


def test_the_broadcast_policy_comes_back_as_the_migration_made_it(operator: psycopg.Connection[Any]) -> None:
    before = one(operator, POLICY)
    operator.execute(b'drop policy "Users can receive their own assessment broadcasts" on realtime.messages')
    assert one(operator, POLICY) is None

    operator.execute(runbook("restore the broadcast policy"))

    assert before is not None and one(operator, POLICY) == before


def queue_rights(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(b"""
        select c.relname, r.rolname,
               array_remove(array[case when has_table_privilege(r.oid, c.oid, 'select') then 'select' end,
                                  case when has_table_privilege(r.oid, c.oid, 'insert') then 'insert' end,
                                  case when has_table_privilege(r.oid, c.oid, 'update') then 'update' end,
                                  case when has_table_privilege(r.oid, c.oid, 'delete') then 'delete' end,
                                  case when c.relkind = 'S' and has_sequence_privilege(r.oid, c.oid, 'usage')
                                       then 'usage' end], null)
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'pgmq'
        cross join pg_roles r
        where c.relname ~ 'assessment_submitted' and c.relkind in ('r', 'p', 'S')
          and r.rolname in ('assessment_worker', 'queue_observer', 'anon', 'authenticated', 'service_role')
        order by 1, 2""").fetchall()


@pytest.mark.parametrize("dropped", [["assessment_submitted"], ["assessment_submitted", "assessment_submitted_dlq"]])
def test_the_job_queues_come_back_with_the_workers_rights_and_the_lost_jobs_are_sent_again(
    operator: psycopg.Connection[Any], user_id: uuid.UUID, dropped: list[str]
) -> None:
    # A user's waiting assessment, inserted as PostgREST inserts it, inside the operator's transaction.
    operator.execute(b"set local role authenticated")
    operator.execute(b"select set_config('request.jwt.claims', %s, true)", (claims(user_id, "authenticated"),))
    waiting = one(operator, "insert into public.test_assessment (assessment_type, answers) values ('career',"
                            " '[{\"question_id\": \"q1\", \"question\": \"Q?\", \"answer\": \"A\"}]') returning id")
    operator.execute(b"reset role")
    rights = queue_rights(operator)
    for queue in dropped:
        operator.execute(b"select pgmq.drop_queue(%s)", (queue,))
    remaining = one(operator, "select count(*) from pgmq.meta where queue_name like 'assessment_submitted%'")
    assert remaining == 2 - len(dropped)

    operator.execute(runbook("restore the job queues"))
    operator.execute(runbook("send lost jobs again"))

    assert queue_rights(operator) == rights
    queued = operator.execute(b"select message ->> 'assessment_id' from pgmq.q_assessment_submitted").fetchall()
    assert (str(waiting),) in queued
