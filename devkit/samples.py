"""Sample assessments, and submitting them as users (each insert exactly as PostgREST makes it)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

import psycopg

from devkit import REPO
from devkit.postgrest import acting_as
from devkit.users import create_user
from worker.models import Assessment

EXAMPLES = REPO / "examples"


def answers(seed: int, count: int = 4) -> list[dict[str, Any]]:
    """Valid answers that differ with `seed`, so unrelated submissions never share an AI cache entry."""
    items: list[dict[str, Any]] = [
        {"question_id": "energy", "question": "How energised do you feel at work?", "answer": seed % 5 + 1,
         "scale": {"min": 1, "max": 5, "higher_is_better": True}},
        {"question_id": "mentor", "question": "Do you have a mentor?", "answer": seed % 2 == 0},
        {"question_id": "skills", "question": "Which skills do you want to grow?", "answer": ["SQL", f"skill {seed}"]},
        {"question_id": "blocker", "question": "What blocks you most?", "answer": f"Meetings, case {seed}"},
    ]
    return items[:count]


def assessment_model(seed: int = 0) -> Assessment:
    """A valid queued Assessment as the worker loads it, for code that needs no database."""
    return Assessment.model_validate({
        "id": uuid.UUID(int=seed + 1), "user_id": uuid.UUID(int=seed + 2), "assessment_type": "career",
        "answers": answers(seed), "context": {"goals": ["Lead a team"], "locale": "en"}, "status": "queued",
        "attempts": 0, "created_at": "2026-11-26T00:00:00+00:00",
    })


def submit(conn: psycopg.Connection[Any], user_id: uuid.UUID, bodies: Iterable[dict[str, Any]]) -> list[uuid.UUID]:
    """Insert assessments as the user in one committed request, as a frontend would; returns their ids."""
    ids = []
    with acting_as(conn, user_id, commit=True) as cur:
        for body in bodies:
            columns = list(body)
            cur.execute(
                f"insert into public.test_assessment ({', '.join(columns)}) "  # column names from the caller
                f"values ({', '.join('%s' for _ in columns)}) returning id",
                [json.dumps(v) if isinstance(v, list | dict) else v for v in body.values()],
            )
            row = cur.fetchone()
            assert row is not None and isinstance(row["id"], uuid.UUID)
            ids.append(row["id"])
    return ids


def submit_many(conn: psycopg.Connection[Any], total: int, seed: int = 0, per_user: int = 10) -> list[uuid.UUID]:
    """`total` assessments spread over fresh users, `per_user` each (the rate limit is per user)."""
    ids: list[uuid.UUID] = []
    while len(ids) < total:
        user = create_user(conn)
        count = min(per_user, total - len(ids))
        ids += submit(conn, user, [
            {"assessment_type": "career", "answers": answers(seed + len(ids) + i)} for i in range(count)
        ])
    return ids
