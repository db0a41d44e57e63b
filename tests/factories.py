"""Builders of valid worker models for tests that need no database."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from hypothesis import reject
from hypothesis import strategies as st
from pydantic import ValidationError

from worker.db import Message, ResultRow
from worker.fallback import FALLBACK_VERSION, fallback_recommendations
from worker.models import Assessment, Outcome

FIXED_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
FIXED_USER = uuid.UUID("00000000-0000-4000-8000-000000000002")
FIXED_AT = datetime(2025, 1, 1, tzinfo=UTC)
SCALE_1_5 = {"min": 1, "max": 5, "higher_is_better": True}


def assessment(
    answers: Sequence[object] | None = None,
    context: dict[str, Any] | None = None,
    assessment_type: str = "wellbeing",
) -> Assessment:
    """A valid queued assessment with fixed ids and time, so equal arguments give equal assessments."""
    if answers is None:
        answers = [
            {"question_id": "sleep", "question": "How well do you sleep?", "answer": 2, "scale": SCALE_1_5},
            {"question_id": "energy", "question": "How is your energy during the day?", "answer": 4,
             "scale": SCALE_1_5},
            {"question_id": "exercise", "question": "Do you exercise weekly?", "answer": False},
            {
                "question_id": "hobbies",
                "question": "Which activities do you enjoy?",
                "answer": ["reading", "cycling"],
            },
            {"question_id": "worry", "question": "What worries you most?", "answer": "Deadlines at work."},
        ]
    return Assessment.model_validate({
        "id": FIXED_ID,
        "user_id": FIXED_USER,
        "assessment_type": assessment_type,
        "answers": answers,
        "context": context,
        "status": "queued",
        "attempts": 0,
        "created_at": FIXED_AT,
    })


_text = st.text(min_size=1, max_size=300)
_answer_value = st.one_of(
    st.text(min_size=1, max_size=2000),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.lists(st.text(min_size=1, max_size=200), max_size=12),
)
_question_id = st.from_regex(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}$", fullmatch=True)
_unit = st.none() | st.text(min_size=1, max_size=40)
_plain_answer = st.fixed_dictionaries({
    "question_id": _question_id,
    "question": st.text(min_size=1, max_size=500),
    "answer": _answer_value,
})


@st.composite
def _rated_answer(draw: st.DrawFn) -> dict[str, Any]:
    """A number on a scale (either direction, any bounds the database accepts), sometimes with a unit."""
    bound = st.integers(-10**9, 10**9) | st.floats(-1e9, 1e9, allow_nan=False)
    low, high = sorted((draw(bound), draw(bound)))
    if not low < high:
        reject()
    values = [st.sampled_from([low, high]), st.floats(low, high)]
    if math.ceil(low) <= math.floor(high):
        values.append(st.integers(math.ceil(low), math.floor(high)))
    value = draw(st.one_of(values))
    answer = {"question_id": draw(_question_id), "question": draw(st.text(min_size=1, max_size=500)),
              "answer": value, "scale": {"min": low, "max": high, "higher_is_better": draw(st.booleans())}}
    unit = draw(_unit)
    return answer if unit is None else answer | {"unit": unit}


_quantity = st.fixed_dictionaries({
    "question_id": _question_id,
    "question": st.text(min_size=1, max_size=500),
    "answer": st.integers(-10**9, 10**9) | st.floats(-1e9, 1e9),
    "unit": st.text(min_size=1, max_size=40) | st.sampled_from(["hours/night", "Stunden/Nacht", "steps/day"]),
})
_answer = _plain_answer | _rated_answer() | _quantity
_context = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "goals": st.lists(_text.map(lambda s: s[:200]), max_size=10),
        "locale": st.none() | st.text(max_size=20),
        "notes": st.none() | st.text(max_size=1000),
    },
)


@st.composite
def assessments(draw: st.DrawFn, max_answers: int = 30) -> Assessment:
    """Hypothesis strategy: any valid Assessment, including odd unicode, NaN and huge numbers."""
    raw: dict[str, Any] = {
        "id": uuid.UUID(int=draw(st.integers(0, 2**128 - 1))),
        "user_id": uuid.UUID(int=1),
        "assessment_type": draw(st.text(max_size=200)),
        "answers": draw(st.lists(_answer, min_size=1, max_size=max_answers)),
        "context": draw(_context),
        "status": "queued",
        "attempts": 0,
        "created_at": datetime(2025, 1, 1, tzinfo=UTC),
    }
    try:
        return Assessment.model_validate(raw)
    except ValidationError:
        # Invalid drawn data (e.g. a whitespace-only goal) is not a valid Assessment: not our input space.
        reject()


def message(msg_id: int = 1, read_ct: int = 1) -> Message:
    """A leased message for FIXED_ID, as take_jobs returns it."""
    body = {"type": "assessment_submitted", "version": 1, "assessment_id": str(FIXED_ID),
            "user_id": str(FIXED_USER), "submitted_at": FIXED_AT.isoformat()}
    return Message(msg_id, read_ct, FIXED_AT, body)


def result_row(msg_id: int = 1, read_ct: int = 1) -> ResultRow:
    """A finished job's result (fallback recommendations for assessment()) under the lease (msg_id, read_ct)."""
    outcome = Outcome(recommendations=fallback_recommendations(assessment()), source="fallback",
                      fallback_reason="not_configured", prompt_version=FALLBACK_VERSION, latency_ms=1)
    return ResultRow(message(msg_id, read_ct), FIXED_ID, outcome)
