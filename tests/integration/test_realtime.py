"""Realtime's inputs, checked in the database: that nothing of ours reaches postgres_changes (the tables
are not in publication supabase_realtime: decision 0012), the rows Broadcast from Database writes to
realtime.messages, and the RLS that Realtime applies as the subscriber when it joins a channel.

The worker is simulated with its exact statements, as role assessment_worker.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg.rows import dict_row

from devkit import localdb
from devkit.postgrest import acting_as
from worker.events import AssessmentStatusChanged

SECRET_ANSWER = "my secret answer 7f3c"
ANSWERS = [{"question_id": "q1", "question": "What do you want to change?", "answer": SECRET_ANSWER}]
STATUS_EVENTS = {"assessment_processing", "recommendation_completed", "assessment_failed"}


@dataclass(frozen=True)
class Completed:
    assessment_id: uuid.UUID
    result_id: uuid.UUID


# ----------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def cleanup(admin: psycopg.Connection, user_id: uuid.UUID, other_user_id: uuid.UUID) -> Iterator[None]:
    """Remove what these tests commit: users (cascading to assessments and results), their queue
    messages and their broadcasts. Other tests share the database."""
    yield
    users = [user_id, other_user_id]
    ids = [
        row[0]
        for row in admin.execute("select id from public.test_assessment where user_id = any(%s)", (users,))
    ]
    topics = [f"user:{u}" for u in users] + [f"assessment:{a}" for a in ids]
    admin.execute("delete from realtime.messages where topic = any(%s)", (topics,))
    for table in ("pgmq.q_assessment_submitted", "pgmq.a_assessment_submitted"):
        admin.execute(
            f"delete from {table} where (message ->> 'user_id')::uuid = any(%s)",  # fixed table names
            (users,),
        )
    admin.execute("delete from auth.users where id = any(%s)", (users,))


# wal2json is built for PostgreSQL 15 only (Debian's postgresql-15-wal2json); scripts/run-tests runs the
# suite on 15 as well, so this check runs in every CI run, on 15.
needs_wal2json = pytest.mark.skipif(localdb.profile().major != 15, reason="wal2json exists for PostgreSQL 15 only")


@pytest.fixture
def slot(admin: psycopg.Connection) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin.execute("select pg_create_logical_replication_slot(%s, 'wal2json')", (name,))
    yield name
    admin.execute("select pg_drop_replication_slot(%s)", (name,))


def submit(admin: psycopg.Connection, user_id: uuid.UUID) -> uuid.UUID:
    with acting_as(admin, user_id, commit=True) as cur:
        cur.execute(
            "insert into public.test_assessment (assessment_type, answers)"
            " values ('career', %s) returning id",
            (json.dumps(ANSWERS),),
        )
        row = cur.fetchone()
    assert row is not None and isinstance(row["id"], uuid.UUID)
    return row["id"]


@dataclass
class Worker:
    """The worker's statements, each in its own transaction, as role assessment_worker."""

    conn: psycopg.Connection

    def take(self, assessment_id: uuid.UUID) -> None:
        with self.conn.transaction():
            self.conn.execute("set local role assessment_worker")
            self.conn.execute(
                "update public.test_assessment set status = 'processing', attempts = attempts + 1,"
                " started_at = now() where id = %s",
                (assessment_id,),
            )

    def complete(self, assessment_id: uuid.UUID, user_id: uuid.UUID) -> uuid.UUID:
        with self.conn.transaction():
            self.conn.execute("set local role assessment_worker")
            msg = self.conn.execute(
                "select msg_id from pgmq.q_assessment_submitted where message ->> 'assessment_id' = %s",
                (str(assessment_id),),
            ).fetchone()
            assert msg is not None, "the enqueue trigger put no message on the queue"
            row = self.conn.execute(
                "insert into public.result_test (assessment_id, user_id, summary, recommendations, source,"
                " fallback_reason, model, prompt_version, latency_ms)"
                " values (%s, %s, 'Start small.', %s, 'fallback', 'no_api_key', null, 'fallback-v1', 3)"
                " returning id",
                (
                    assessment_id,
                    user_id,
                    json.dumps(
                        [
                            {
                                "title": "Walk",
                                "description": "Walk daily.",
                                "category": "health",
                                "priority": 1,
                                "rationale": "You asked to move more.",
                            }
                        ]
                    ),
                ),
            ).fetchone()
            assert row is not None
            self.conn.execute(
                "update public.test_assessment"
                " set status = 'completed', completed_at = now(), last_error = null where id = %s",
                (assessment_id,),
            )
            self.conn.execute("select pgmq.archive('assessment_submitted', %s)", (msg[0],))
        return row[0]  # type: ignore[no-any-return]

    def fail(self, assessment_id: uuid.UUID) -> None:
        with self.conn.transaction():
            self.conn.execute("set local role assessment_worker")
            self.conn.execute(
                "update public.test_assessment set status = 'failed', last_error = 'attempts exhausted',"
                " completed_at = now() where id = %s",
                (assessment_id,),
            )


@pytest.fixture
def worker(admin: psycopg.Connection) -> Worker:
    return Worker(admin)


@pytest.fixture
def completed(admin: psycopg.Connection, worker: Worker, user_id: uuid.UUID, cleanup: None) -> Completed:
    assessment_id = submit(admin, user_id)
    worker.take(assessment_id)
    result_id = worker.complete(assessment_id, user_id)
    return Completed(assessment_id, result_id)


def broadcasts(admin: psycopg.Connection, *topics: str) -> list[dict[str, object]]:
    with admin.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "select topic, event, extension, private, payload from realtime.messages"
            " where topic = any(%s) order by inserted_at, event",
            (list(topics),),
        )
        return cur.fetchall()


def status_event(message: dict[str, object]) -> AssessmentStatusChanged:
    """The event a subscriber receives. realtime.send adds the message id to the payload (Supabase
    does the same); everything else is the AssessmentStatusChanged contract."""
    payload = dict(message["payload"])  # type: ignore[call-overload]
    assert payload.pop("id", None) is not None
    return AssessmentStatusChanged.model_validate(payload)


def wal2json_changes(admin: psycopg.Connection, slot: str) -> list[dict[str, object]]:
    """Read the slot as Supabase Realtime's postgres_changes does: wal2json format 2, only the tables
    in publication supabase_realtime."""
    tables = admin.execute(
        "select string_agg(schemaname || '.' || tablename, ',') from pg_publication_tables"
        " where pubname = 'supabase_realtime'"
    ).fetchone()
    assert tables is not None and tables[0], "publication supabase_realtime has no tables"
    rows = admin.execute(
        "select data from pg_logical_slot_get_changes(%s, null, null, 'format-version', '2',"
        " 'include-transaction', 'false', 'include-pk', 'true', 'add-tables', %s)",
        (slot, tables[0]),
    ).fetchall()
    return [json.loads(row[0]) for row in rows]


# ----------------------------------------------------------------------------- postgres_changes


def test_realtime_publication_holds_neither_table(admin: psycopg.Connection) -> None:
    rows = admin.execute(
        "select tablename from pg_publication_tables"
        " where pubname = 'supabase_realtime' and schemaname = 'public'"
        " and tablename in ('test_assessment', 'result_test')"
    ).fetchall()
    assert rows == []


@pytest.fixture
def published_table(admin: psycopg.Connection) -> Iterator[str]:
    """A table of the project's own in supabase_realtime, as a project publishing other tables has."""
    admin.execute("create table public.test_published (id int primary key)")
    admin.execute("alter publication supabase_realtime add table public.test_published")
    yield "test_published"
    admin.execute("drop table public.test_published")


@needs_wal2json
def test_realtime_postgres_changes_carry_nothing_of_an_assessment_or_its_deletion(
    admin: psycopg.Connection, slot: str, worker: Worker, user_id: uuid.UUID, cleanup: None,
    published_table: str,
) -> None:
    """The attack of supabase/realtime issue 562: a DELETE reaches every subscriber of a published table
    without an RLS check, with the primary key. Nothing of ours is published, so a user watching
    postgres_changes sees no one's assessments come, complete or go."""
    assessment_id = submit(admin, user_id)
    worker.take(assessment_id)
    worker.complete(assessment_id, user_id)
    with acting_as(admin, user_id, commit=True) as cur:
        cur.execute("delete from public.test_assessment where id = %s", (assessment_id,))
        assert cur.rowcount == 1
    admin.execute(f"insert into public.{published_table} values (1)")

    changes = wal2json_changes(admin, slot)

    assert [(c["table"], c["action"]) for c in changes] == [(published_table, "I")]  # the slot works


# ----------------------------------------------------------------------------- Broadcast from Database


def test_realtime_completion_broadcasts_once_per_topic_per_transition(
    admin: psycopg.Connection, completed: Completed, user_id: uuid.UUID
) -> None:
    a_topic, u_topic = f"assessment:{completed.assessment_id}", f"user:{user_id}"
    messages = broadcasts(admin, a_topic, u_topic)

    assert Counter((m["topic"], m["event"]) for m in messages) == {
        (a_topic, "assessment_processing"): 1,
        (u_topic, "assessment_processing"): 1,
        (a_topic, "recommendation_completed"): 1,
        (u_topic, "recommendation_completed"): 1,
    }
    assert all(m["extension"] == "broadcast" and m["private"] is True for m in messages)

    events: dict[object, dict[str, AssessmentStatusChanged]] = {a_topic: {}, u_topic: {}}
    for m in messages:
        event = status_event(m)
        assert event.type == m["event"]  # the Broadcast event name is the payload's type
        assert SECRET_ANSWER not in json.dumps(m["payload"]) and "answers" not in m["payload"]  # type: ignore[operator]
        events[m["topic"]][event.type] = event
    assert events[a_topic] == events[u_topic]  # both topics get the same event

    processing = events[a_topic]["assessment_processing"]
    assert (processing.status, processing.attempts) == ("processing", 1)
    assert (processing.source, processing.result_id, processing.completed_at) == (None, None, None)
    assert processing.assessment_id == completed.assessment_id and processing.user_id == user_id
    assert processing.started_at is not None

    done = events[a_topic]["recommendation_completed"]
    assert (done.status, done.attempts, done.source, done.result_id) == (
        "completed",
        1,
        "fallback",
        completed.result_id,
    )
    assert done.completed_at is not None and done.occurred_at >= done.created_at


def test_realtime_failure_broadcasts_assessment_failed(
    admin: psycopg.Connection, worker: Worker, user_id: uuid.UUID, cleanup: None
) -> None:
    assessment_id = submit(admin, user_id)
    worker.take(assessment_id)
    worker.fail(assessment_id)
    a_topic, u_topic = f"assessment:{assessment_id}", f"user:{user_id}"

    failed = [m for m in broadcasts(admin, a_topic, u_topic) if m["event"] == "assessment_failed"]

    assert sorted(str(m["topic"]) for m in failed) == sorted([a_topic, u_topic])
    for m in failed:
        event = status_event(m)
        assert (event.status, event.attempts, event.source, event.result_id) == ("failed", 1, None, None)
        assert event.completed_at is not None
        assert SECRET_ANSWER not in json.dumps(m["payload"])


def test_realtime_retry_broadcasts_processing_again_with_the_new_attempt(
    admin: psycopg.Connection, worker: Worker, user_id: uuid.UUID, cleanup: None
) -> None:
    assessment_id = submit(admin, user_id)
    worker.take(assessment_id)
    worker.take(assessment_id)  # the first attempt failed and the job was delivered again
    a_topic = f"assessment:{assessment_id}"

    processing = [status_event(m) for m in broadcasts(admin, a_topic) if m["event"] == "assessment_processing"]

    assert [event.attempts for event in processing] == [1, 2]


def test_realtime_requeue_is_not_broadcast(
    admin: psycopg.Connection, worker: Worker, user_id: uuid.UUID, cleanup: None
) -> None:
    assessment_id = submit(admin, user_id)
    worker.fail(assessment_id)  # queued -> failed
    admin.execute("update public.test_assessment set status = 'queued' where id = %s", (assessment_id,))

    events = [m["event"] for m in broadcasts(admin, f"assessment:{assessment_id}")]

    assert events == ["assessment_failed"]


# ----------------------------------------------------------------------------- who may receive


def owner_view(
    admin: psycopg.Connection, as_user: uuid.UUID | None, role: str, topic: str, assessment_id: uuid.UUID
) -> tuple[int, int]:
    """(messages on the topic, results of the assessment) visible to a caller joining `topic`."""
    with acting_as(admin, as_user, role=role) as cur:
        cur.execute("select set_config('realtime.topic', %s, true)", (topic,))
        cur.execute("select count(*) as n from realtime.messages where topic = %s", (topic,))
        messages = cur.fetchone()
        cur.execute("select count(*) as n from public.result_test where assessment_id = %s", (assessment_id,))
        results = cur.fetchone()
    assert messages is not None and results is not None
    return int(messages["n"]), int(results["n"])


def test_realtime_owner_receives_topic_messages_and_reads_result(
    admin: psycopg.Connection, completed: Completed, user_id: uuid.UUID
) -> None:
    aid = completed.assessment_id
    assert owner_view(admin, user_id, "authenticated", f"assessment:{aid}", aid) == (2, 1)
    assert owner_view(admin, user_id, "authenticated", f"user:{user_id}", aid) == (2, 1)


def test_realtime_other_user_is_denied_topic_and_result(
    admin: psycopg.Connection, completed: Completed, user_id: uuid.UUID, other_user_id: uuid.UUID
) -> None:
    aid = completed.assessment_id
    assert owner_view(admin, other_user_id, "authenticated", f"assessment:{aid}", aid) == (0, 0)
    assert owner_view(admin, other_user_id, "authenticated", f"user:{user_id}", aid) == (0, 0)


def test_realtime_anon_is_denied_topic_and_result(admin: psycopg.Connection, completed: Completed) -> None:
    aid = completed.assessment_id
    with acting_as(admin, None, role="anon") as cur:
        cur.execute("select set_config('realtime.topic', %s, true)", (f"assessment:{aid}",))
        cur.execute("select count(*) as n from realtime.messages where topic = %s", (f"assessment:{aid}",))
        assert cur.fetchone() == {"n": 0}
    with pytest.raises(psycopg.errors.InsufficientPrivilege), acting_as(admin, None, role="anon") as cur:
        cur.execute("select * from public.result_test where assessment_id = %s", (aid,))
