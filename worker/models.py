"""Pydantic models of what the worker reads (assessments) and writes (recommendation sets, outcomes).

The rules mirror the database's validation trigger (supabase/migrations/*_validate_assessments.sql):
the worker re-checks what it reads because a bad row must fail one job, never crash the worker.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
)

# No stripping here: the database trims and is the gatekeeper; the worker must accept what it accepted.
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# Strict types, tried left to right: true stays a boolean (not 1) and "1" stays text (not a number).
AnswerValue = (
    StrictBool | StrictInt | StrictFloat | Annotated[StrictStr, StringConstraints(min_length=1, max_length=2000)]
    | list[ShortText]
)


class Answer(BaseModel):
    """One answered question, as stored in test_assessment.answers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    question_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
    question: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    answer: AnswerValue = Field(union_mode="left_to_right")


class AssessmentContext(BaseModel):
    """Optional context a user adds to an assessment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    goals: list[ShortText] = Field(default_factory=list, max_length=10)
    locale: str | None = None
    notes: Annotated[str, StringConstraints(max_length=1000)] | None = None


class Assessment(BaseModel):
    """A row of public.test_assessment, as the worker loads it."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    user_id: UUID
    assessment_type: str
    answers: list[Answer] = Field(min_length=1, max_length=100)
    context: AssessmentContext | None = None
    status: Literal["queued", "processing", "completed", "failed"]
    attempts: int
    created_at: datetime


class Recommendation(BaseModel):
    """One recommendation; the business rules every source (AI, fallback, cache) must satisfy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=120)]
    description: Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=1000)]
    category: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=40)]
    priority: int = Field(ge=1, le=5, description="1 = most important, 5 = least")
    rationale: Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=600)]


class RecommendationSet(BaseModel):
    """What a result holds: a summary and 1-10 recommendations, most important first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    summary: Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=2000)]
    recommendations: list[Recommendation] = Field(min_length=1, max_length=10)


Source = Literal["ai", "fallback", "cache"]


class Outcome(BaseModel):
    """Everything the worker writes to result_test for one assessment."""

    model_config = ConfigDict(frozen=True)

    recommendations: RecommendationSet
    source: Source
    fallback_reason: str | None = None
    model: str | None = None
    prompt_version: str
    cache_key: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: int
