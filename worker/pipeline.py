"""One assessment in, one Outcome out: cached AI result, else the AI, else deterministic fallback.

Never raises for AI trouble: every AI failure ends in fallback recommendations with the reason.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from pydantic import ValidationError

from worker.ai import AiResult
from worker.exceptions import AiUnavailable
from worker.fallback import FALLBACK_VERSION, fallback_recommendations
from worker.metrics import FALLBACKS
from worker.models import Assessment, Outcome, RecommendationSet
from worker.prompt import Prompt, build_prompt

log = logging.getLogger(__name__)


class Recommends(Protocol):
    model: str

    async def recommend(self, prompt: Prompt) -> AiResult: ...


class FindsCached(Protocol):
    async def find_cached(self, cache_key: str, ttl_seconds: float) -> dict[str, object] | None: ...


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


async def produce_outcome(
    assessment: Assessment, recommender: Recommends, cache: FindsCached, cache_ttl_seconds: float
) -> Outcome:
    started = time.perf_counter()
    prompt = build_prompt(assessment)
    cache_key = prompt.cache_key(recommender.model)

    if cache_ttl_seconds > 0:
        cached = await cache.find_cached(cache_key, cache_ttl_seconds)
        if cached is not None:
            try:
                recommendations = RecommendationSet.model_validate(
                    {"summary": cached["summary"], "recommendations": cached["recommendations"]}
                )
            except ValidationError:
                log.warning("cached result no longer passes validation; calling the AI", extra={"cache_key": cache_key})
            else:
                return Outcome(
                    recommendations=recommendations, source="cache", model=str(cached["model"]),
                    prompt_version=prompt.version, cache_key=cache_key, latency_ms=_elapsed_ms(started),
                )

    try:
        result = await recommender.recommend(prompt)
    except AiUnavailable as exc:
        FALLBACKS.labels(exc.reason).inc()
        log.info("AI unavailable, using fallback recommendations", extra={"reason": exc.reason})
        return Outcome(
            recommendations=fallback_recommendations(assessment), source="fallback",
            fallback_reason=exc.reason, prompt_version=FALLBACK_VERSION, latency_ms=_elapsed_ms(started),
        )
    return Outcome(
        recommendations=result.recommendations, source="ai", model=result.model,
        prompt_version=prompt.version, cache_key=cache_key, prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens, latency_ms=_elapsed_ms(started),
    )
