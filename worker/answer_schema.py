"""The JSON schema the model must answer in (OpenAI structured outputs, strict mode), built per assessment.

Contract: `response_format(citable)` is the Chat Completions `response_format` for a recommendation set
whose `based_on` may only name the ids in `citable` (an enum: a model cannot cite a question that does
not exist); `citable_ids(assessment)` is that list for an assessment, its question_ids and "goals" when
it has goals. The schema is in the subset strict mode accepts (`strict_schema`). It only shapes the
answer: the business rules every answer must pass afterwards live in worker.models.RecommendationSet,
and `ground` (`ground_recommendation` for one) drops every cited id outside `citable`, for servers that
do not enforce the schema.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from worker.models import GOALS, Assessment, Recommendation, RecommendationSet


class _WireRecommendation(BaseModel):
    """What the model must emit for one recommendation; the rules live in worker.models.Recommendation."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(description="Short title, 3-120 characters.")
    description: str = Field(description="What to do, concretely, 10-1000 characters.")
    category: str = Field(description="One or two words, 2-40 characters.")
    priority: int = Field(description="1 = most important, 5 = least important.")
    rationale: str = Field(description="Why, in terms of the answers it rests on, 10-600 characters.")
    based_on: list[str] = Field(description=f'The question_ids of the answers this rests on (1-5), and "{GOALS}" '
                                            "when it serves the person's goals.")


class _WireRecommendationSet(BaseModel):
    """What the model must emit; checked afterwards against worker.models.RecommendationSet."""

    model_config = ConfigDict(extra="forbid")

    summary: str = Field(description="2-5 sentences, 10-2000 characters.")
    recommendations: list[_WireRecommendation] = Field(description="1-10 items, most important first.")


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema in the subset OpenAI strict mode accepts: refs inlined, no titles or
    defaults, every property required, no additional properties."""
    raw = model.model_json_schema()
    defs: dict[str, Any] = raw.pop("$defs", {})

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return convert(defs[node["$ref"].rsplit("/", 1)[-1]])
        out = {k: convert(v) for k, v in node.items() if k not in ("title", "default", "properties")}
        if "properties" in node:
            # Property names are data, not keywords: a field called "title" must survive.
            out["properties"] = {name: convert(sub) for name, sub in node["properties"].items()}
        if out.get("type") == "object":
            # A class docstring is for developers; field descriptions are what the model should read.
            out.pop("description", None)
            out["required"] = list(out.get("properties", {}))
            out["additionalProperties"] = False
        return out

    result: dict[str, Any] = convert(raw)
    return result


# based_on's items are plain strings here; response_format() narrows them to one assessment's ids.
RESPONSE_SCHEMA = strict_schema(_WireRecommendationSet)


def citable_ids(assessment: Assessment) -> tuple[str, ...]:
    """What `assessment`'s recommendations may cite: its question_ids in order, then "goals" if it has goals."""
    ids = tuple(answer.question_id for answer in assessment.answers)
    has_goals = assessment.context is not None and bool(assessment.context.goals)
    return (*ids, GOALS) if has_goals and GOALS not in ids else ids


def response_format(citable: Sequence[str]) -> dict[str, Any]:
    """The strict `response_format` whose based_on items must be one of `citable` (never empty: an
    assessment has at least one answer)."""
    if not citable:
        raise ValueError("response_format needs at least one citable id; an assessment always has an answer.")
    # Only the dicts on the path to based_on's items are copied (the rest is shared, and never mutated):
    # a deep copy per assessment cost a third of build_prompt's time.
    path = ("properties", "recommendations", "items", "properties", "based_on")
    schema = node = dict(RESPONSE_SCHEMA)
    for key in path:
        node[key] = dict(node[key])
        node = node[key]
    node["items"] = {"type": "string", "enum": list(citable)}
    return {"type": "json_schema", "json_schema": {"name": "recommendations", "strict": True, "schema": schema}}


def ground(recommendations: RecommendationSet, citable: Collection[str]) -> RecommendationSet:
    """`recommendations` with every based_on limited to `citable`, each id once, in the order cited."""
    grounded = [ground_recommendation(item, citable) for item in recommendations.recommendations]
    return recommendations.model_copy(update={"recommendations": grounded})


def ground_recommendation(recommendation: Recommendation, citable: Collection[str]) -> Recommendation:
    """`recommendation` with based_on limited to `citable`, each id once, in the order cited (a streamed draft
    is grounded one at a time: worker/drafts.py)."""
    allowed = citable if isinstance(citable, (set, frozenset)) else set(citable)
    return recommendation.model_copy(
        update={"based_on": [i for i in dict.fromkeys(recommendation.based_on) if i in allowed]})
