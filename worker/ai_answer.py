"""What a Chat Completions answer is worth: parsed, made storable, validated, its usage counted.

Contract: `parse_completion(payload, usage)` (a completion's JSON) and `parse_envelope(completion, usage)`
(one already parsed, or put together from a stream: worker/ai_stream.py) return an `Answer` whose
recommendations satisfy
`worker.models.RecommendationSet` (sorted by priority, the model's order kept among equals) and whose
every field can be stored as it is, or raises `AiAttemptFailed` (invalid_output, invalid_json,
refusal, length). It adds the answer's reported usage to `usage` first: every answered attempt is
billed, even one we reject. Nothing the model wrote is logged or put in an error message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from worker.exceptions import AiAttemptFailed
from worker.metrics import AI_COST_USD, AI_TOKENS
from worker.models import RecommendationSet
from worker.sanitize import storable

MAX_MODEL_CHARS = 200
MAX_TOKENS = 2**31 - 1  # result_test.prompt_tokens and completion_tokens are integer


@dataclass(frozen=True)
class Answer:
    recommendations: RecommendationSet
    model: str | None  # the name the server answered with, made storable; None when it sent none


@dataclass(frozen=True)
class Prices:
    """US dollars per 1,000 tokens, for the cost estimate (assessment_ai_cost_usd_total)."""

    prompt_per_1k: float = 0.0
    completion_per_1k: float = 0.0


def token_count(value: Any) -> int | None:
    """A usage count the database can hold, or None for anything else (negative, huge, not an integer)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS:
        return value
    return None


class TokenUsage:
    """Token usage summed over attempts, counted in the metrics under the model asked for: the name a
    server answers with is not ours to make a label of."""

    def __init__(self, model: str, prices: Prices) -> None:
        self.model = model
        self.prices = prices
        self.prompt: int | None = None
        self.completion: int | None = None

    def add(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        prompt, completion = token_count(usage.get("prompt_tokens")), token_count(usage.get("completion_tokens"))
        if prompt is not None:
            self.prompt = min(MAX_TOKENS, (self.prompt or 0) + prompt)
            AI_TOKENS.labels(self.model, "prompt").inc(prompt)
            AI_COST_USD.labels(self.model).inc(prompt * self.prices.prompt_per_1k / 1000)
        if completion is not None:
            self.completion = min(MAX_TOKENS, (self.completion or 0) + completion)
            AI_TOKENS.labels(self.model, "completion").inc(completion)
            AI_COST_USD.labels(self.model).inc(completion * self.prices.completion_per_1k / 1000)


def parse_completion(payload: bytes, usage: TokenUsage) -> Answer:
    """The recommendations in a completion, made storable and validated; AiAttemptFailed otherwise."""
    try:
        envelope = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than json can follow
        raise AiAttemptFailed("invalid_output", "The AI endpoint's response is not JSON", retryable=True) from exc
    return parse_envelope(envelope, usage)


def parse_envelope(envelope: Any, usage: TokenUsage) -> Answer:
    """The recommendations in a parsed completion, made storable and validated; AiAttemptFailed otherwise."""
    if not isinstance(envelope, dict):
        raise AiAttemptFailed("invalid_output", "The AI endpoint's response is not a completion", retryable=True)
    usage.add(envelope.get("usage"))
    choices = envelope.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or not isinstance(message, dict):
        raise AiAttemptFailed("invalid_output", "The AI response had no message", retryable=True)
    if message.get("refusal"):
        # The refusal text can echo the person's answers, so it is not logged or put in the message.
        raise AiAttemptFailed("refusal", "The model refused to answer", retryable=False)
    if choice.get("finish_reason") in ("length", "content_filter"):
        raise AiAttemptFailed("length", f"The model stopped early (finish_reason={choice['finish_reason']!r})",
                              retryable=False)
    content = message.get("content")
    if not isinstance(content, str):
        raise AiAttemptFailed("invalid_json", "The model returned no content", retryable=True)
    try:
        data = storable(json.loads(content))
    except (ValueError, RecursionError) as exc:
        raise AiAttemptFailed("invalid_json", "The model's content is not JSON", retryable=True) from exc
    try:
        parsed = RecommendationSet.model_validate(data)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        raise AiAttemptFailed(
            "invalid_output", f"The model's JSON breaks the recommendation rules ({errors})", retryable=True
        ) from exc
    # sorted() is stable, so equal priorities keep the model's order.
    ordered = sorted(parsed.recommendations, key=lambda r: r.priority)
    model = envelope.get("model")
    model = storable(model)[:MAX_MODEL_CHARS].strip() if isinstance(model, str) else None
    return Answer(parsed.model_copy(update={"recommendations": ordered}), model or None)
