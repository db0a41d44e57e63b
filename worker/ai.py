"""Asks a Chat Completions API (OpenAI, or any server that speaks its protocol) for recommendations,
inside one deadline, with our own retries, and treats whatever comes back as untrusted.

Contract: `Recommender.recommend` either returns an `AiResult` whose recommendations satisfy
`worker.models.RecommendationSet` and whose every field can be stored as it is (worker/ai_answer.py), or
raises `AiUnavailable` with one of `REASONS` within `deadline_seconds` (plus scheduling noise). It raises
nothing else for anything a server sends, and never logs the API key or any answer text. The HTTP
transport is worker/ai_http.py; what an answer is worth, worker/ai_answer.py.

Retry policy (the AI step's own; a job's deliveries are worker/retry_policy.py's):
- retried: 429 (rate_limited), 408 (timeout), 5xx (server_error), connection errors (connection_error);
  waits honour `retry-after-ms` / `Retry-After`, otherwise exponential backoff with full jitter; a wait
  that does not fit in the remaining time ends the step at once with the last reason.
- retried once: a response that is not a completion, content that is not JSON, and JSON that breaks
  the business rules (invalid_output, invalid_json). Strict structured outputs make these rare and
  sampling makes a second answer likely to differ; a second bad answer means the prompt or model is
  the problem, and more tries only burn time.
- not retried: other 4xx (client_error), refusals, and finish_reason length / content_filter (length):
  the same request would get the same answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass

from worker.ai_answer import Prices, TokenUsage, parse_completion
from worker.ai_http import ChatHttp
from worker.backoff import backoff
from worker.exceptions import AiAttemptFailed, AiUnavailable
from worker.metrics import AI_CALL_SECONDS, AI_COST_USD, AI_RETRIES, AI_TOKENS
from worker.models import RecommendationSet
from worker.prompt import Prompt

log = logging.getLogger(__name__)

# Why the AI step can fail: what AiUnavailable.reason holds, and so result_test.fallback_reason.
REASONS = frozenset({
    "not_configured", "timeout", "rate_limited", "server_error", "connection_error", "client_error",
    "refusal", "invalid_json", "invalid_output", "length",
})

# The reasons a try is retried for (the others end the step at once); present from the start, so
# rate() and increase() see the first one.
RETRIED_REASONS = ("timeout", "rate_limited", "server_error", "connection_error", "invalid_json", "invalid_output")
for _reason in RETRIED_REASONS:
    AI_RETRIES.labels(_reason)

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0
# A try with less time than this left cannot finish a completion; give up instead of starting it.
MIN_ATTEMPT_SECONDS = 0.25
# Output problems (invalid_json, invalid_output) get at most this many retries; see the module docstring.
MAX_OUTPUT_RETRIES = 1


@dataclass(frozen=True)
class AiResult:
    """Validated, storable recommendations and what producing them cost (tokens summed over tries)."""

    recommendations: RecommendationSet
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    tries: int


class Recommender:
    """A Chat Completions client with structured outputs, one deadline per call and our own retries."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        model: str,
        deadline_seconds: float = 25.0,
        max_tries: int = 4,
        max_connections: int = 100,
        prices: Prices | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if deadline_seconds <= 0 or max_tries < 1 or max_connections < 1:
            raise ValueError(
                f"Recommender needs deadline_seconds > 0, max_tries >= 1 and max_connections >= 1, got "
                f"{deadline_seconds!r}, {max_tries!r}, {max_connections!r}."
            )
        self.model = model
        self.prices = prices or Prices()
        for kind in ("prompt", "completion"):  # present from the start, so rate() sees the first call
            AI_TOKENS.labels(model, kind)
        AI_COST_USD.labels(model)
        self.deadline_seconds = deadline_seconds
        self.max_tries = max_tries
        self._rng = rng or random.Random()
        self._http = ChatHttp(api_key=api_key, base_url=base_url, max_connections=max_connections)

    async def recommend(self, prompt: Prompt) -> AiResult:
        """Recommendations for `prompt`, or AiUnavailable(reason) once the deadline or retries run out."""
        started = time.monotonic()
        outcome = "error"  # a bug of ours; pipeline.produce_outcome falls back and logs it
        try:
            result = await self._recommend(prompt)
            outcome = "ok"
        except AiUnavailable as exc:
            outcome = exc.reason
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"  # the caller gave up (e.g. the worker shuts down)
            raise
        finally:
            AI_CALL_SECONDS.labels(outcome).observe(time.monotonic() - started)
        return result

    async def aclose(self) -> None:
        """Closes the HTTP connections; the Recommender must not be used afterwards."""
        await self._http.aclose()

    async def _recommend(self, prompt: Prompt) -> AiResult:
        if not self._http.configured:
            raise AiUnavailable(
                "not_configured", "No OpenAI API key is configured. Set OPENAI_API_KEY to use the AI."
            )
        loop = asyncio.get_running_loop()
        deadline_at = loop.time() + self.deadline_seconds
        body = json.dumps({"model": self.model, "messages": prompt.messages(),
                           "response_format": prompt.response_format}, ensure_ascii=False).encode()
        usage = TokenUsage(self.model, self.prices)
        tries = 0
        output_retries = 0
        try:
            async with asyncio.timeout_at(deadline_at):
                while True:
                    tries += 1
                    try:
                        if deadline_at - loop.time() < MIN_ATTEMPT_SECONDS:
                            raise AiAttemptFailed("timeout", "No time is left in the deadline for another try",
                                                  retryable=False)
                        answer = parse_completion(await self._http.post(body), usage)
                    except AiAttemptFailed as failure:
                        is_output = failure.reason in ("invalid_json", "invalid_output")
                        output_retries += is_output
                        can_retry = failure.retryable and tries < self.max_tries and not (
                            is_output and output_retries > MAX_OUTPUT_RETRIES
                        )
                        if not can_retry:
                            raise AiUnavailable(
                                failure.reason, f"{failure.message} (after {tries} tries)"
                            ) from failure
                        wait = failure.wait if failure.wait is not None else backoff(
                            tries, base=BACKOFF_BASE_SECONDS, cap=BACKOFF_CAP_SECONDS, rng=self._rng)
                        remaining = deadline_at - loop.time()
                        if wait + MIN_ATTEMPT_SECONDS > remaining:
                            raise AiUnavailable(
                                failure.reason,
                                f"{failure.message}; the next try would start after {wait:.2f}s but only "
                                f"{remaining:.2f}s of the {self.deadline_seconds:g}s deadline remain "
                                f"(after {tries} tries)",
                            ) from failure
                        AI_RETRIES.labels(failure.reason).inc()
                        log.debug("AI try %d failed (%s); retrying in %.2fs", tries, failure.reason, wait)
                        await asyncio.sleep(wait)
                        continue
                    return AiResult(
                        recommendations=answer.recommendations, model=answer.model or self.model,
                        prompt_tokens=usage.prompt, completion_tokens=usage.completion, tries=tries,
                    )
        except TimeoutError as exc:
            raise AiUnavailable(
                "timeout",
                f"The AI did not answer within the {self.deadline_seconds:g}s deadline "
                f"(try {tries} was in flight). Check the provider's status or raise the deadline.",
            ) from exc

