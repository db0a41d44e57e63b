"""The JSON schema the model must answer in (OpenAI structured outputs, strict mode).

Contract: `RESPONSE_FORMAT` is the Chat Completions `response_format` for a recommendation set; the
schema is in the subset strict mode accepts (`strict_schema`). It only shapes the answer: the business
rules every answer must pass afterwards live in worker.models.RecommendationSet.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _WireRecommendation(BaseModel):
    """What the model must emit for one recommendation; the rules live in worker.models.Recommendation."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(description="Short title, 3-120 characters.")
    description: str = Field(description="What to do, concretely, 10-1000 characters.")
    category: str = Field(description="One or two words, 2-40 characters.")
    priority: int = Field(description="1 = most important, 5 = least important.")
    rationale: str = Field(description="Which answers this is based on, 10-600 characters.")


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


RESPONSE_SCHEMA = strict_schema(_WireRecommendationSet)
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "recommendations", "strict": True,
                                                          "schema": RESPONSE_SCHEMA}}


