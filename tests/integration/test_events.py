"""Events: the documented JSON Schemas equal the models, and the trigger's events parse."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import psycopg
import pytest
from pydantic import BaseModel, ValidationError

from devkit import REPO
from devkit.postgrest import acting_as
from worker.events import AssessmentStatusChanged, AssessmentSubmitted

DOC = REPO / "docs" / "events.md"


def documented_schema(name: str, doc: Path = DOC) -> dict[str, object]:
    match = re.search(rf"```json {name}\n(.*?)\n```", doc.read_text(), flags=re.DOTALL)
    assert match, f"docs/events.md has no ```json {name} block"
    return json.loads(match.group(1))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("name", "model"),
    [("assessment_submitted", AssessmentSubmitted), ("assessment_status_changed", AssessmentStatusChanged)],
)
def test_events_documented_schema_matches_model(name: str, model: type[BaseModel]) -> None:
    assert documented_schema(name) == model.model_json_schema()


def test_events_unknown_version_is_rejected() -> None:
    with pytest.raises(ValidationError):
        AssessmentSubmitted.model_validate({
            "type": "assessment_submitted", "version": 2, "assessment_id": str(uuid.uuid4()),
            "user_id": str(uuid.uuid4()), "submitted_at": "2026-11-25T00:00:00Z",
        })


def test_events_enqueue_trigger_sends_a_valid_assessment_submitted(
    admin: psycopg.Connection, user_id: uuid.UUID
) -> None:
    with acting_as(admin, user_id) as cur:
        cur.execute(
            "insert into public.test_assessment (assessment_type, answers) "
            "values ('career', '[{\"question_id\": \"q1\", \"question\": \"Q?\", \"answer\": true}]') "
            "returning id, created_at"
        )
        row = cur.fetchone()
        assert row is not None
        cur.execute("reset role")
        cur.execute(
            "select message from pgmq.q_assessment_submitted where message ->> 'assessment_id' = %s",
            (str(row["id"]),),
        )
        messages = cur.fetchall()
    assert len(messages) == 1
    event = AssessmentSubmitted.model_validate(messages[0]["message"])
    assert (event.assessment_id, event.user_id, event.submitted_at) == (row["id"], user_id, row["created_at"])


def test_events_enqueue_notifies_only_when_no_older_job_is_waiting(
    admin: psycopg.Connection, database_url: str, user_id: uuid.UUID
) -> None:
    admin.execute("select pgmq.purge_queue('assessment_submitted')")
    body = "[{\"question_id\": \"q1\", \"question\": \"Q?\", \"answer\": true}]"
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute("listen assessment_submitted")
        for _ in range(3):
            with acting_as(admin, user_id, commit=True) as cur:
                cur.execute("insert into public.test_assessment (assessment_type, answers) values ('career', %s)",
                            (body,))
        received = list(listener.notifies(timeout=1.0))
    # The first job found an empty queue and woke the workers; the next two found it waiting.
    assert len(received) == 1
    admin.execute("select pgmq.purge_queue('assessment_submitted')")
