"""Asks a Chat Completions API for recommendations, inside one deadline, with our own retries.

Contract: `Recommender.recommend` either returns an `AiResult` whose recommendations satisfy
`worker.models.RecommendationSet`, or raises `AiUnavailable` with one of `REASONS` within
`deadline_seconds` (plus scheduling noise). It never raises an openai exception and never logs the API
key or any answer text.

Retry policy (the SDK's own retries are off so that there is exactly one loop and one deadline):
- retried: 429 (rate_limited), 408 and timeouts of one attempt (timeout), 5xx (server_error),
  connection errors (connection_error); waits honour `retry-after-ms` / `Retry-After`, otherwise
  exponential backoff with full jitter; a wait that does not fit in the remaining time ends the step at
  once with the last reason instead of sleeping into the deadline.
- retried once: invalid JSON and schema-valid JSON that breaks the business rules. Strict structured
  outputs make these rare and sampling makes a second answer likely to differ, so one more try is cheap
  insurance; a second bad answer means the prompt or model is the problem, and more tries only burn time.
- not retried: other 4xx (client_error), refusals, and finish_reason length / content_filter (length):
  the same request would get the same answer.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
import openai
from openai.types.chat import ChatCompletion
from openai.types.shared_params import ResponseFormatJSONSchema
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker.backoff import backoff
from worker.exceptions import AiUnavailable
from worker.metrics import AI_CALL_SECONDS, AI_RETRIES, AI_TOKENS
from worker.models import RecommendationSet
from worker.prompt import Prompt

log = logging.getLogger(__name__)

REASONS = frozenset({
    "not_configured", "timeout", "rate_limited", "server_error", "connection_error", "client_error",
    "refusal", "invalid_json", "invalid_output", "length",
})

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0
# An attempt with less time than this left cannot finish a completion; give up instead of starting it.
MIN_ATTEMPT_SECONDS = 0.25
# Output problems (invalid_json, invalid_output) get at most this many retries; see the module docstring.
MAX_OUTPUT_RETRIES = 1


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
RESPONSE_FORMAT: ResponseFormatJSONSchema = {
    "type": "json_schema",
    "json_schema": {"name": "recommendations", "strict": True, "schema": RESPONSE_SCHEMA},
}


@dataclass(frozen=True)
class AiResult:
    """Validated recommendations and what producing them cost (tokens are summed over all attempts)."""

    recommendations: RecommendationSet
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    attempts: int


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a server asked for in `retry-after-ms` or `Retry-After` (seconds or HTTP date), if any."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = lowered.get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw) * scale
        except ValueError:
            seconds = _http_date_delay(raw) if name == "retry-after" else math.nan
        # NaN would make every later comparison False and asyncio.sleep fail; treat it as no hint.
        if not math.isnan(seconds):
            return max(seconds, 0.0)
    return None


def _http_date_delay(raw: str) -> float:
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (ValueError, TypeError):
        return math.nan
    if when.tzinfo is None:
        return math.nan
    return when.timestamp() - time.time()


class _AttemptFailed(Exception):
    """One attempt failed; `retryable` says whether another attempt may help, `wait` is a server hint."""

    def __init__(self, reason: str, message: str, *, retryable: bool, wait: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retryable = retryable
        self.wait = wait


class Recommender:
    """A Chat Completions client with structured outputs, one deadline per call and our own retries."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        model: str,
        deadline_seconds: float = 25.0,
        max_attempts: int = 4,
        max_connections: int = 100,
        rng: random.Random | None = None,
    ) -> None:
        if deadline_seconds <= 0 or max_attempts < 1 or max_connections < 1:
            raise ValueError(
                f"Recommender needs deadline_seconds > 0, max_attempts >= 1 and max_connections >= 1, got "
                f"{deadline_seconds!r}, {max_attempts!r}, {max_connections!r}."
            )
        self.model = model
        self.deadline_seconds = deadline_seconds
        self.max_attempts = max_attempts
        self._rng = rng or random.Random()
        self._client: openai.AsyncOpenAI | None = None
        self._http: httpx2.AsyncClient | None = None
        if api_key:
            # Without a key nothing is built: recommend() then fails fast with not_configured and the
            # SDK never falls back to OPENAI_API_KEY from the environment behind our back.
            self._http = openai.DefaultAsyncHttpxClient(
                limits=httpx2.Limits(
                    max_connections=max_connections, max_keepalive_connections=max_connections
                ),
                timeout=deadline_seconds,
            )
            self._client = openai.AsyncOpenAI(
                api_key=api_key, base_url=base_url, max_retries=0, timeout=deadline_seconds,
                http_client=self._http,
            )

    async def recommend(self, prompt: Prompt) -> AiResult:
        """Recommendations for `prompt`, or AiUnavailable(reason) once the deadline or retries run out."""
        started = time.monotonic()
        outcome = "cancelled"  # stays so only if the caller cancels us (e.g. the worker shuts down)
        try:
            result = await self._recommend(prompt)
            outcome = "ok"
        except AiUnavailable as exc:
            outcome = exc.reason
            raise
        finally:
            AI_CALL_SECONDS.labels(outcome).observe(time.monotonic() - started)
        return result

    async def aclose(self) -> None:
        """Closes the HTTP connections; the Recommender must not be used afterwards."""
        if self._client is not None:
            await self._client.close()
        if self._http is not None:
            await self._http.aclose()

    async def _recommend(self, prompt: Prompt) -> AiResult:
        client = self._client
        if client is None:
            raise AiUnavailable(
                "not_configured", "No OpenAI API key is configured. Set OPENAI_API_KEY to use the AI."
            )
        loop = asyncio.get_running_loop()
        deadline_at = loop.time() + self.deadline_seconds
        tokens = _Tokens()
        attempt = 0
        output_retries = 0
        try:
            async with asyncio.timeout_at(deadline_at):
                while True:
                    attempt += 1
                    try:
                        completion = await self._create(client, prompt, deadline_at - loop.time())
                        tokens.add(completion)
                        recommendations = _parse(completion)
                    except _AttemptFailed as failure:
                        is_output = failure.reason in ("invalid_json", "invalid_output")
                        if is_output:
                            output_retries += 1
                        can_retry = failure.retryable and attempt < self.max_attempts and not (
                            is_output and output_retries > MAX_OUTPUT_RETRIES
                        )
                        if not can_retry:
                            raise AiUnavailable(
                                failure.reason, f"{failure.message} (after {attempt} attempt(s))"
                            ) from failure
                        wait = failure.wait if failure.wait is not None else backoff(
                            attempt, base=BACKOFF_BASE_SECONDS, cap=BACKOFF_CAP_SECONDS, rng=self._rng)
                        remaining = deadline_at - loop.time()
                        if wait + MIN_ATTEMPT_SECONDS > remaining:
                            raise AiUnavailable(
                                failure.reason,
                                f"{failure.message}; the next attempt would start after {wait:.2f}s but only "
                                f"{remaining:.2f}s of the {self.deadline_seconds:g}s deadline remain "
                                f"(after {attempt} attempt(s))",
                            ) from failure
                        AI_RETRIES.labels(failure.reason).inc()
                        log.debug(
                            "AI attempt %d failed (%s); retrying in %.2fs", attempt, failure.reason, wait
                        )
                        await asyncio.sleep(wait)
                        continue
                    return AiResult(
                        recommendations=recommendations,
                        model=completion.model or self.model,
                        prompt_tokens=tokens.prompt,
                        completion_tokens=tokens.completion,
                        attempts=attempt,
                    )
        except TimeoutError as exc:
            raise AiUnavailable(
                "timeout",
                f"The AI did not answer within the {self.deadline_seconds:g}s deadline "
                f"(attempt {attempt} was in flight). Check the provider's status or raise the deadline.",
            ) from exc

    async def _create(self, client: openai.AsyncOpenAI, prompt: Prompt, remaining: float) -> ChatCompletion:
        if remaining < MIN_ATTEMPT_SECONDS:
            raise _AttemptFailed("timeout", "No time is left in the deadline for another attempt",
                                 retryable=False)
        try:
            # The same request chat.completions.create sends, minus the SDK's per-call transformation of
            # typed parameters (15% of the worker's CPU in the benchmark): ours are plain JSON already.
            return await client.post(
                "/chat/completions",
                cast_to=ChatCompletion,
                body={"model": self.model, "messages": prompt.messages(), "response_format": RESPONSE_FORMAT},
                options={"timeout": remaining},
            )
        except openai.APITimeoutError as exc:
            raise _AttemptFailed("timeout", "An AI request timed out", retryable=True) from exc
        except openai.APIConnectionError as exc:
            raise _AttemptFailed(
                "connection_error", f"Could not connect to the AI endpoint: {exc}", retryable=True
            ) from exc
        except openai.APIStatusError as exc:
            raise _status_failure(exc) from exc
        except openai.APIResponseValidationError as exc:
            raise _AttemptFailed(
                "invalid_output", "The AI endpoint returned a malformed response", retryable=True
            ) from exc


def _status_failure(exc: openai.APIStatusError) -> _AttemptFailed:
    status = exc.status_code
    what = f"The AI endpoint answered HTTP {status}"
    if status == 429:
        return _AttemptFailed(
            "rate_limited", f"{what} (rate limited)", retryable=True,
            wait=retry_after_seconds(exc.response.headers),
        )
    if status == 408:
        return _AttemptFailed("timeout", f"{what} (request timeout)", retryable=True)
    if status >= 500:
        return _AttemptFailed(
            "server_error", f"{what} (server error)", retryable=True,
            wait=retry_after_seconds(exc.response.headers),
        )
    hint = " Check OPENAI_API_KEY." if status in (401, 403) else " Check the model name and request."
    return _AttemptFailed("client_error", f"{what}; retrying will not help.{hint}", retryable=False)


def _parse(completion: ChatCompletion) -> RecommendationSet:
    if not completion.choices:
        raise _AttemptFailed("invalid_output", "The AI response had no choices", retryable=True)
    choice = completion.choices[0]
    if choice.message.refusal:
        # The refusal text can echo the person's answers, so it is not logged or put in the message.
        raise _AttemptFailed("refusal", "The model refused to answer", retryable=False)
    if choice.finish_reason in ("length", "content_filter"):
        raise _AttemptFailed(
            "length", f"The model stopped early (finish_reason={choice.finish_reason!r})", retryable=False
        )
    content = choice.message.content
    if content is None:
        raise _AttemptFailed("invalid_json", "The model returned no content", retryable=True)
    try:
        data = json.loads(content)
    except json.JSONDecodeError as exc:
        raise _AttemptFailed(
            "invalid_json", f"The model's content is not JSON ({exc.msg} at position {exc.pos})",
            retryable=True,
        ) from exc
    try:
        parsed = RecommendationSet.model_validate(data)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        raise _AttemptFailed(
            "invalid_output", f"The model's JSON breaks the recommendation rules ({errors})", retryable=True
        ) from exc
    # sorted() is stable, so equal priorities keep the model's order.
    ordered = sorted(parsed.recommendations, key=lambda r: r.priority)
    return parsed.model_copy(update={"recommendations": ordered})


class _Tokens:
    """Token usage summed over attempts (every answered attempt is billed, even one we reject)."""

    def __init__(self) -> None:
        self.prompt: int | None = None
        self.completion: int | None = None

    def add(self, completion: ChatCompletion) -> None:
        usage = completion.usage
        if usage is None:
            return
        self.prompt = (self.prompt or 0) + usage.prompt_tokens
        self.completion = (self.completion or 0) + usage.completion_tokens
        AI_TOKENS.labels("prompt").inc(usage.prompt_tokens)
        AI_TOKENS.labels("completion").inc(usage.completion_tokens)
