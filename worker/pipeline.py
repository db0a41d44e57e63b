"""One assessment in, one Outcome out: a cached AI result, else the AI, else deterministic fallback.

Never raises for AI trouble: every AI failure ends in fallback recommendations with the reason. What is not
the AI's trouble passes through: the job's lease lost, the worker stopping while the job waits for provider
capacity, the database unable to admit the call (worker/admission.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import ValidationError

from worker.ai import REASONS, AiResult, Caller
from worker.exceptions import AiUnavailable, DatabaseRefused, DatabaseUnavailable, LeaseLost, ShuttingDown
from worker.fallback import FALLBACK_VERSION, fallback_recommendations
from worker.metrics import FALLBACKS
from worker.models import Assessment, Outcome, RecommendationSet
from worker.prompt import Prompt
from worker.sanitize import clean_recommendations

log = logging.getLogger(__name__)


# Why recommendations came from the fallback rules (result_test.fallback_reason): the AI step's reasons
# (admission's among them: provider_capacity, user_budget_exhausted, daily_budget_exhausted), a bug in the
# AI client (ai_client_bug), or AI output the database refused to store (unstorable_output).
FALLBACK_REASONS = REASONS | {"ai_client_bug", "unstorable_output"}
for _reason in FALLBACK_REASONS:  # present from the start, so rate() and increase() see the first one
    FALLBACKS.labels(_reason)


class Recommends(Protocol):
    model: str

    async def recommend(self, prompt: Prompt, caller: Caller | None = None) -> AiResult: ...


def fallback_outcome(assessment: Assessment, reason: str, started: float) -> Outcome:
    """Deterministic recommendations for `assessment`, recorded with why the AI's were not used."""
    FALLBACKS.labels(reason).inc()
    # The rules quote the user's words: cleaned like every other text the worker stores. Cleaning only
    # drops characters from the quotes, never the rules' own text, so the set stays valid.
    return Outcome(
        recommendations=clean_recommendations(fallback_recommendations(assessment)), source="fallback",
        fallback_reason=reason,
        prompt_version=FALLBACK_VERSION, latency_ms=_elapsed_ms(started),
    )


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


async def produce_outcome(
    assessment: Assessment,
    prompt: Prompt,
    cache_key: str,
    cached: Mapping[str, Any] | None,
    recommender: Recommends,
    caller: Caller | None = None,
) -> Outcome:
    """`cached` is the newest AI result for `cache_key` within the TTL (looked up per batch), if any; a
    cache hit asks nothing of the AI, so it is neither admitted nor counted."""
    started = time.perf_counter()
    if cached is not None:
        try:
            recommendations = clean_recommendations(RecommendationSet.model_validate(
                {"summary": cached["summary"], "recommendations": cached["recommendations"]}
            ))
        except ValidationError:
            log.warning("cached result no longer passes validation; calling the AI", extra={"cache_key": cache_key})
        else:
            return Outcome(
                recommendations=recommendations, source="cache", model=str(cached["model"]),
                prompt_version=prompt.version, cache_key=cache_key, latency_ms=_elapsed_ms(started),
            )

    try:
        result = await recommender.recommend(prompt, caller)
    except AiUnavailable as exc:
        log.info("AI unavailable, using fallback recommendations", extra={"reason": exc.reason})
        return fallback_outcome(assessment, exc.reason, started)
    except (LeaseLost, ShuttingDown, DatabaseUnavailable, DatabaseRefused):
        raise  # not the AI's trouble: the consumer leaves the job to its lease or releases it
    except Exception:  # a bug in the AI client must not fail the job either: the AI never blocks completion
        log.exception("the AI client failed unexpectedly; using fallback recommendations")
        return fallback_outcome(assessment, "ai_client_bug", started)
    return Outcome(
        recommendations=prompt.ground(result.recommendations), source="ai", model=result.model,
        prompt_version=prompt.version, cache_key=cache_key, prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens, latency_ms=_elapsed_ms(started),
    )
