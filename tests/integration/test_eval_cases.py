"""The eval's assessments (tests/eval/) are what the database accepts, stored exactly as written: the eval
scores what a real submission would hold."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from devkit.eval.cases import Case, load_cases
from devkit.postgrest import acting_as


@pytest.mark.parametrize("case", load_cases(), ids=lambda case: case.name)
def test_eval_case_is_accepted_and_stored_unchanged(admin: psycopg.Connection, user_id: uuid.UUID, case: Case) -> None:
    with acting_as(admin, user_id) as cur:  # rolled back: nothing stays
        cur.execute("insert into public.test_assessment (assessment_type, answers, context) "
                    "values (%s, %s, %s) returning assessment_type, answers, context",
                    (case.body["assessment_type"], json.dumps(case.body["answers"]),
                     json.dumps(case.body["context"]) if "context" in case.body else None))
        row = cur.fetchone()
    assert row == {"assessment_type": case.body["assessment_type"], "answers": case.body["answers"],
                   "context": case.body.get("context")}
