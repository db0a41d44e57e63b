"""Pydantic models of what the worker reads (assessments) and writes (recommendation sets, outcomes).

The rules mirror the database's validation (supabase/migrations/*_validate_assessments.sql and
*_validate_answer_scales_and_units.sql): the worker re-checks what it reads because a bad row must fail
one job, never crash the worker. A number with a `scale` is a rating; a number without one is a quantity.
"""

from __future__ import annotations

import math
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
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

# No stripping here: the database trims and is the gatekeeper; the worker must accept what it accepted.
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# Strict types, tried left to right: true stays a boolean (not 1) and "1" stays text (not a number).
AnswerValue = (
    StrictBool | StrictInt | StrictFloat | Annotated[StrictStr, StringConstraints(min_length=1, max_length=2000)]
    | list[ShortText]
)


# What a recommendation's based_on may name besides question_ids: the goals in context.goals.
GOALS = "goals"
MAX_CITED = 101  # every answer of the largest assessment, and the goals
MAX_RECOMMENDATIONS = 10  # in one result (the database checks it too: recommendations_are_valid)

ScaleBound = Annotated[StrictInt, Field(ge=-10**9, le=10**9)] | Annotated[StrictFloat, Field(ge=-1e9, le=1e9)]


class AnswerScale(BaseModel):
    """The scale a number was answered on: it makes the number a rating, and says which end is better."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min: ScaleBound = Field(description="The lowest possible answer.")
    max: ScaleBound = Field(description="The highest possible answer; more than min.")
    higher_is_better: StrictBool = Field(
        description="true when a higher answer is better (how calm?), false when lower is better (how stressed?).")

    @model_validator(mode="after")
    def _min_below_max(self) -> AnswerScale:
        if not self.min < self.max:
            raise ValueError(f"scale.min must be less than scale.max, got {self.min!r} and {self.max!r}")
        return self


class Answer(BaseModel):
    """One answered question, as stored in test_assessment.answers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    question_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")] = Field(
        description="The question's stable id, unique in the assessment.")
    question: Annotated[str, StringConstraints(min_length=1, max_length=500)] = Field(
        description="The question as it was shown.")
    answer: AnswerValue = Field(union_mode="left_to_right", description="Text, a number, a boolean or a list of text.")
    # SkipJsonSchema: absent, never null, in the documented contract (the database refuses "scale": null).
    scale: AnswerScale | SkipJsonSchema[None] = Field(
        default=None, description="Only for a number: makes it a rating on this scale. A number without a scale "
        "is a quantity (a count or an amount), never a rating or a score.")
    unit: Annotated[str, StringConstraints(min_length=1, max_length=40)] | SkipJsonSchema[None] = Field(
        default=None, description="Only for a number: what it counts, such as \"hours/night\".")

    @model_validator(mode="after")
    def _scale_and_unit_fit_the_answer(self) -> Answer:
        if self.scale is None and self.unit is None:
            return self
        value = self.number
        if value is None:
            raise ValueError("scale and unit are only allowed on a number answer")
        if self.scale is not None and not self.scale.min <= value <= self.scale.max:
            raise ValueError(f"the answer {value!r} is outside its scale {self.scale.min!r} to {self.scale.max!r}")
        return self

    @property
    def number(self) -> float | None:
        """The answer as a finite number, or None for text, booleans, lists and what no float holds."""
        value = self.answer
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        try:
            as_float = float(value)
        except OverflowError:
            return None
        return as_float if math.isfinite(as_float) else None

    @property
    def rating(self) -> float | None:
        """Where a rated answer sits on its scale: 0.0 at the worse end, 1.0 at the better end, whichever
        direction the scale runs; None for anything that is not a rating."""
        value = self.number
        if self.scale is None or value is None:
            return None
        position = (value - self.scale.min) / (self.scale.max - self.scale.min)
        return position if self.scale.higher_is_better else 1.0 - position

    @property
    def is_quantity(self) -> bool:
        """A number without a scale: it counts something, and is never ranked as a rating."""
        return self.scale is None and self.number is not None


class AssessmentContext(BaseModel):
    """Optional context a user adds to an assessment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    goals: list[ShortText] = Field(
        default_factory=list, max_length=10,
        description="Up to 10 goals in the person's words; the recommendations address each one.")
    locale: str | SkipJsonSchema[None] = Field(
        default=None, description="A BCP 47 tag such as \"pt-BR\": the language of the recommendations (the "
        "fallback writes en, pt, es, fr and de; others get English).")
    notes: Annotated[str, StringConstraints(max_length=1000)] | SkipJsonSchema[None] = Field(
        default=None, description="Free text.")


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

    @model_validator(mode="after")
    def _question_ids_are_unique(self) -> Assessment:
        # A recommendation names its answers by question_id (based_on), so an id must mean one answer.
        ids = [answer.question_id for answer in self.answers]
        if len(set(ids)) != len(ids):
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"question_id repeats an earlier one: {repeated!r}")
        return self


class Recommendation(BaseModel):
    """One recommendation, as result_test.recommendations holds it; every source (AI, fallback, cache) obeys
    these rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=120)] = Field(
        description="A short title.")
    description: Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=1000)] = Field(
        description="What to do, concretely.")
    category: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=40)] = Field(
        description="One or two words.")
    priority: int = Field(ge=1, le=5, description="1 = most important, 5 = least important.")
    rationale: Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=600)] = Field(
        description="Why, in terms of the answers it rests on.")
    # A default, so that results stored before based_on existed stay readable (e.g. when a cache lookup
    # re-validates them). The fallback always cites something; an AI recommendation whose every id was
    # dropped (worker/answer_schema.py) keeps an empty list, and the eval counts that against the model.
    # Any short text is accepted here and ids the assessment does not have are dropped afterwards
    # (worker/answer_schema.py ground), so one odd id from a lax server costs that id, not the answer.
    based_on: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=MAX_CITED,
        description=f"The question_ids of the answers this rests on, and \"{GOALS}\" for the goals in "
        "context.goals; only ids of its own assessment. Absent from results stored before it existed.")


class RecommendationSet(BaseModel):
    """What a result holds: a summary and 1-10 recommendations, most important first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    summary: Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=2000)]
    recommendations: list[Recommendation] = Field(min_length=1, max_length=MAX_RECOMMENDATIONS)


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
