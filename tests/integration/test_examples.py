"""The example bodies in examples/ against the real database, inserted as a supabase-js client would."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from devkit.postgrest import acting_as
from devkit.samples import EXAMPLES

VALID_EXAMPLES = [EXAMPLES / "assessment.json", EXAMPLES / "wellbeing.json"]
INVALID_EXAMPLES = sorted((EXAMPLES / "invalid").glob("*.json"))
OTHER_USER_PLACEHOLDER = "${OTHER_USER_ID}"  # see examples/README.md


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def insert_body(cur: psycopg.Cursor[Any], body: dict[str, Any]) -> dict[str, Any]:
    """What PostgREST runs for `supabase.from('test_assessment').insert(body).select()`.

    The column list is the body's keys (as PostgREST takes them from the JSON payload) and the values
    are read from the JSON by json_populate_record, so no value is ever part of the SQL text.
    """
    columns = sql.SQL(", ").join(sql.Identifier(key) for key in body)
    query = sql.SQL(
        "insert into public.test_assessment ({columns}) "
        "select {columns} from json_populate_record(null::public.test_assessment, %s::json) returning *"
    ).format(columns=columns)
    cur.execute(query, (json.dumps(body),))
    row = cur.fetchone()
    assert row is not None
    return row  # type: ignore[no-any-return]


def queued_events(cur: psycopg.Cursor[Any], key: str, value: uuid.UUID) -> list[dict[str, Any]]:
    """Messages on assessment_submitted whose event has `key` = value (read as postgres)."""
    cur.execute("reset role")
    cur.execute(
        "select message from pgmq.q_assessment_submitted where message ->> %s = %s order by msg_id",
        (key, str(value)),
    )
    return [row["message"] for row in cur.fetchall()]


def with_other_user(body: dict[str, Any], other_user_id: uuid.UUID) -> dict[str, Any]:
    return {
        key: str(other_user_id) if value == OTHER_USER_PLACEHOLDER else value for key, value in body.items()
    }


def invalid_example_params() -> list[Any]:
    return [pytest.param(path, id=path.stem) for path in INVALID_EXAMPLES]


def test_examples_invalid_covers_every_rule_family() -> None:
    assert len(INVALID_EXAMPLES) >= 10
    for path in INVALID_EXAMPLES:
        example = _load(path)
        assert set(example) == {"body", "error"}, f"{path.name}: expected keys body and error"
        error = example["error"]
        assert isinstance(error, dict) and set(error) == {"code", "message_contains"}, path.name


@pytest.mark.parametrize("path", VALID_EXAMPLES, ids=lambda path: path.stem)
def test_examples_valid_body_is_queued_with_one_event(
    admin: psycopg.Connection, user_id: uuid.UUID, path: Path
) -> None:
    body = _load(path)
    assert set(body) <= {"assessment_type", "answers", "context", "client_request_id"}
    with acting_as(admin, user_id) as cur:
        row = insert_body(cur, body)
        events = queued_events(cur, "assessment_id", row["id"])

    assert row["status"] == "queued"
    assert row["user_id"] == user_id
    assert row["assessment_type"] == body["assessment_type"]
    assert row["answers"] == body["answers"]  # already normalised: nothing to trim
    assert row["context"] == body["context"]
    assert row["attempts"] == 0 and row["started_at"] is None and row["completed_at"] is None
    assert len(events) == 1
    event = events[0]
    assert set(event) == {"type", "version", "assessment_id", "user_id", "submitted_at"}
    assert event["type"] == "assessment_submitted"
    assert event["version"] == 1
    assert event["assessment_id"] == str(row["id"])
    assert event["user_id"] == str(user_id)
    assert datetime.fromisoformat(event["submitted_at"]) == row["created_at"]


@pytest.mark.parametrize("path", VALID_EXAMPLES, ids=lambda path: path.stem)
def test_examples_valid_body_is_invisible_to_another_user(
    admin: psycopg.Connection, user_id: uuid.UUID, other_user_id: uuid.UUID, path: Path
) -> None:
    with acting_as(admin, user_id) as cur:
        row = insert_body(cur, _load(path))
        with acting_as(admin, other_user_id) as other:  # a savepoint in the same transaction
            other.execute("select count(*) as n from public.test_assessment where id = %s", (row["id"],))
            seen_by_other = other.fetchone()
            other.execute("select count(*) as n from public.test_assessment")
            total_for_other = other.fetchone()
        cur.execute("select count(*) as n from public.test_assessment where id = %s", (row["id"],))
        seen_by_owner = cur.fetchone()

    assert seen_by_other == {"n": 0}
    assert total_for_other == {"n": 0}
    assert seen_by_owner == {"n": 1}


def test_examples_anon_cannot_insert(admin: psycopg.Connection) -> None:
    with acting_as(admin, None, role="anon") as cur, pytest.raises(psycopg.Error) as excinfo:
        insert_body(cur, _load(VALID_EXAMPLES[0]))

    assert excinfo.value.sqlstate == "42501"
    assert "permission denied for table test_assessment" in str(excinfo.value)


def test_examples_same_body_twice_is_rejected_by_client_request_id(
    admin: psycopg.Connection, user_id: uuid.UUID
) -> None:
    body = _load(VALID_EXAMPLES[0])
    with acting_as(admin, user_id) as cur:
        insert_body(cur, body)
        with pytest.raises(psycopg.Error) as excinfo, admin.transaction():
            insert_body(cur, body)
        events = queued_events(cur, "user_id", user_id)

    assert excinfo.value.sqlstate == "23505"
    assert f"client_request_id: {body['client_request_id']} was already submitted" in str(excinfo.value)
    assert len(events) == 1


@pytest.mark.parametrize("path", invalid_example_params())
def test_examples_invalid_body_is_rejected_with_its_documented_error(
    admin: psycopg.Connection, user_id: uuid.UUID, other_user_id: uuid.UUID, path: Path
) -> None:
    example = _load(path)
    body = with_other_user(example["body"], other_user_id)
    expected: dict[str, str] = example["error"]
    with acting_as(admin, user_id) as cur:
        # The savepoint keeps the transaction usable after the error, to look at the queue.
        with pytest.raises(psycopg.Error) as excinfo, admin.transaction():
            insert_body(cur, body)
        events = queued_events(cur, "user_id", user_id) + queued_events(cur, "user_id", other_user_id)

    error = excinfo.value
    assert error.sqlstate == expected["code"], f"{path.name}: {error.sqlstate} {error}"
    assert expected["message_contains"] in str(error)
    assert events == []
