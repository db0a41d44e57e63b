"""Asks a Chat Completions API (OpenAI, or any server that speaks its protocol) for recommendations,
inside one deadline, with our own retries, and treats whatever comes back as untrusted.

Contract: `Recommender.recommend` either returns an `AiResult` whose recommendations satisfy
`worker.models.RecommendationSet` and whose every field can be stored as it is (no NUL or unpaired
surrogate in any text, `model` at most MAX_MODEL_CHARS, token counts within PostgreSQL's integer), or
raises `AiUnavailable` with one of `REASONS` within `deadline_seconds` (plus scheduling noise). It raises
nothing else for anything a server sends, reads at most MAX_RESPONSE_BYTES of any response, and never
logs the API key or any answer text.

Transport: aiohttp, directly: POST `<base_url>/chat/completions` with the key as a bearer token, over a
keep-alive pool of `max_connections`, through HTTPS_PROXY when the environment names one; compressed
answers are refused, so the bound holds for what is inflated too. The OpenAI SDK is not on this path: it
costs several times the CPU per call and has no bound on what it reads (docs/decisions/0009).

Retry policy:
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
import base64
import email.utils
import json
import logging
import math
import random
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker.backoff import backoff
from worker.exceptions import AiUnavailable
from worker.metrics import AI_CALL_SECONDS, AI_COST_USD, AI_RETRIES, AI_TOKENS
from worker.models import RecommendationSet
from worker.prompt import Prompt

log = logging.getLogger(__name__)

REASONS = frozenset({
    "not_configured", "timeout", "rate_limited", "server_error", "connection_error", "client_error",
    "refusal", "invalid_json", "invalid_output", "length",
})

# The reasons an attempt is retried for (the others end the step at once); present from the start, so
# rate() and increase() see the first one.
RETRIED_REASONS = ("timeout", "rate_limited", "server_error", "connection_error", "invalid_json", "invalid_output")
for _reason in RETRIED_REASONS:
    AI_RETRIES.labels(_reason)

OPENAI_BASE_URL = "https://api.openai.com/v1"
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0
# An attempt with less time than this left cannot finish a completion; give up instead of starting it.
MIN_ATTEMPT_SECONDS = 0.25
# Output problems (invalid_json, invalid_output) get at most this many retries; see the module docstring.
MAX_OUTPUT_RETRIES = 1
# Ten recommendations at their longest are about 20,000 characters of JSON; a completion envelope around
# them (escaped) stays far below this. Anything larger is not an answer to our request.
MAX_RESPONSE_BYTES = 256 * 1024
MAX_MODEL_CHARS = 200
MAX_TOKENS = 2**31 - 1  # result_test.prompt_tokens and completion_tokens are integer
# What PostgreSQL cannot store (NUL; unpaired surrogates, which have no UTF-8) and the control characters
# a reader's terminal would act on. One character class: linear whatever the input.
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


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


@dataclass(frozen=True)
class AiResult:
    """Validated, storable recommendations and what producing them cost (tokens summed over attempts)."""

    recommendations: RecommendationSet
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    attempts: int


def storable(value: Any) -> Any:
    """`value` (parsed JSON) with every string made storable: NUL and control characters dropped,
    unpaired surrogates replaced by U+FFFD."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(lambda m: "\ufffd" if m.group() >= "\ud800" else "", value)
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    return value


def token_count(value: Any) -> int | None:
    """A usage count the database can hold, or None for anything else (negative, huge, not an integer)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS:
        return value
    return None


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
            return min(max(seconds, 0.0), 3600.0)
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


@dataclass(frozen=True)
class _Answer:
    recommendations: RecommendationSet
    model: str | None


@dataclass(frozen=True)
class Prices:
    """US dollars per 1,000 tokens, for the cost estimate (assessment_ai_cost_usd_total)."""

    prompt_per_1k: float = 0.0
    completion_per_1k: float = 0.0


class _Tokens:
    """Token usage summed over attempts (every answered attempt is billed, even one we reject), counted in
    the metrics under the model asked for: the name a server answers with is not ours to make a label of."""

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
        prices: Prices | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if deadline_seconds <= 0 or max_attempts < 1 or max_connections < 1:
            raise ValueError(
                f"Recommender needs deadline_seconds > 0, max_attempts >= 1 and max_connections >= 1, got "
                f"{deadline_seconds!r}, {max_attempts!r}, {max_connections!r}."
            )
        self.model = model
        self.prices = prices or Prices()
        for kind in ("prompt", "completion"):  # present from the start, so rate() sees the first call
            AI_TOKENS.labels(model, kind)
        AI_COST_USD.labels(model)
        self.deadline_seconds = deadline_seconds
        self.max_attempts = max_attempts
        self.max_connections = max_connections
        self._rng = rng or random.Random()
        self._url = (base_url or OPENAI_BASE_URL).rstrip("/") + "/chat/completions"
        # Without a key nothing is sent: recommend() fails fast with not_configured.
        self._headers = {
            "Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
            # Compressed answers are refused, so nothing can inflate past MAX_RESPONSE_BYTES unseen.
            "Accept-Encoding": "identity",
        } if api_key else None
        # Read once: aiohttp's trust_env=True reads the environment and ~/.netrc in a thread on every
        # request, which tripled the client's CPU per call.
        self._proxy = proxy_for(self._url)
        if self._proxy and self._headers and self._url.startswith("http:"):
            # aiohttp sends proxy_headers only on an https tunnel's CONNECT; a plain request carries its own.
            self._headers |= self._proxy.headers
        self._session: aiohttp.ClientSession | None = None

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
        if self._session is not None:
            await self._session.close()

    async def _recommend(self, prompt: Prompt) -> AiResult:
        if self._headers is None:
            raise AiUnavailable(
                "not_configured", "No OpenAI API key is configured. Set OPENAI_API_KEY to use the AI."
            )
        loop = asyncio.get_running_loop()
        deadline_at = loop.time() + self.deadline_seconds
        body = json.dumps({"model": self.model, "messages": prompt.messages(), "response_format": RESPONSE_FORMAT},
                          ensure_ascii=False).encode()
        tokens = _Tokens(self.model, self.prices)
        attempt = 0
        output_retries = 0
        try:
            async with asyncio.timeout_at(deadline_at):
                while True:
                    attempt += 1
                    try:
                        if deadline_at - loop.time() < MIN_ATTEMPT_SECONDS:
                            raise _AttemptFailed("timeout", "No time is left in the deadline for another attempt",
                                                 retryable=False)
                        answer = _parse(await self._post(body), tokens)
                    except _AttemptFailed as failure:
                        is_output = failure.reason in ("invalid_json", "invalid_output")
                        output_retries += is_output
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
                        log.debug("AI attempt %d failed (%s); retrying in %.2fs", attempt, failure.reason, wait)
                        await asyncio.sleep(wait)
                        continue
                    return AiResult(
                        recommendations=answer.recommendations, model=answer.model or self.model,
                        prompt_tokens=tokens.prompt, completion_tokens=tokens.completion, attempts=attempt,
                    )
        except TimeoutError as exc:
            raise AiUnavailable(
                "timeout",
                f"The AI did not answer within the {self.deadline_seconds:g}s deadline "
                f"(attempt {attempt} was in flight). Check the provider's status or raise the deadline.",
            ) from exc

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:  # created on first use, inside the running event loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=30),
                auto_decompress=False,
            )
        return self._session

    async def _post(self, body: bytes) -> bytes:
        """One HTTP attempt; the 200 response's body (at most MAX_RESPONSE_BYTES), else _AttemptFailed."""
        assert self._headers is not None
        try:
            request = self._http().post(self._url, data=body, headers=self._headers, allow_redirects=False,
                                        proxy=self._proxy.url if self._proxy else None,
                                        proxy_headers=self._proxy.headers if self._proxy else None)
            async with request as response:
                if response.status != 200:
                    raise _status_failure(response.status, response.headers)
                if response.headers.get("Content-Encoding", "identity").lower() != "identity":
                    raise _AttemptFailed("invalid_output", "The AI endpoint sent a compressed answer unasked",
                                         retryable=True)
                if (response.content_length or 0) > MAX_RESPONSE_BYTES:
                    raise _too_large()
                payload = bytearray()
                async for chunk in response.content.iter_any():
                    payload += chunk
                    if len(payload) > MAX_RESPONSE_BYTES:
                        raise _too_large()
                return bytes(payload)
        except (aiohttp.ClientError, OSError) as exc:
            raise _AttemptFailed(
                "connection_error", f"Could not reach the AI endpoint ({type(exc).__name__})", retryable=True
            ) from exc


@dataclass(frozen=True)
class Proxy:
    url: str  # without credentials
    headers: dict[str, str] = field(repr=False)  # Proxy-Authorization when the proxy's URL carries credentials


def proxy_for(url: str) -> Proxy | None:
    """The proxy the environment names for `url` (HTTPS_PROXY / HTTP_PROXY / ALL_PROXY, unless NO_PROXY
    exempts its host), as the OpenAI SDK's httpx client would use it; None for a direct connection."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies()
    named = proxies.get(parts.scheme) or proxies.get("all")
    if not named:
        return None
    proxy = urllib.parse.urlsplit(named if "://" in named else f"http://{named}")
    headers = {}
    if proxy.username is not None:
        login = urllib.parse.unquote(proxy.username)
        password = urllib.parse.unquote(proxy.password or "")
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()
    host = proxy.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{proxy.port}" if proxy.port else "")
    return Proxy(urllib.parse.urlunsplit((proxy.scheme, netloc, proxy.path, "", "")), headers)


def _too_large() -> _AttemptFailed:
    return _AttemptFailed("invalid_output", f"The AI endpoint's response is over {MAX_RESPONSE_BYTES} bytes",
                          retryable=True)


def _status_failure(status: int, headers: Mapping[str, str]) -> _AttemptFailed:
    what = f"The AI endpoint answered HTTP {status}"
    if status == 429:
        return _AttemptFailed("rate_limited", f"{what} (rate limited)", retryable=True,
                              wait=retry_after_seconds(headers))
    if status == 408:
        return _AttemptFailed("timeout", f"{what} (request timeout)", retryable=True)
    if status >= 500:
        return _AttemptFailed("server_error", f"{what} (server error)", retryable=True,
                              wait=retry_after_seconds(headers))
    hint = " Check OPENAI_API_KEY." if status in (401, 403) else " Check OPENAI_BASE_URL, the model and the request."
    return _AttemptFailed("client_error", f"{what}; retrying will not help.{hint}", retryable=False)


def _parse(payload: bytes, tokens: _Tokens) -> _Answer:
    """The recommendations in a completion, made storable and validated; _AttemptFailed otherwise."""
    try:
        envelope = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than json can follow
        raise _AttemptFailed("invalid_output", "The AI endpoint's response is not JSON", retryable=True) from exc
    if not isinstance(envelope, dict):
        raise _AttemptFailed("invalid_output", "The AI endpoint's response is not a completion", retryable=True)
    tokens.add(envelope.get("usage"))
    choices = envelope.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or not isinstance(message, dict):
        raise _AttemptFailed("invalid_output", "The AI response had no message", retryable=True)
    if message.get("refusal"):
        # The refusal text can echo the person's answers, so it is not logged or put in the message.
        raise _AttemptFailed("refusal", "The model refused to answer", retryable=False)
    if choice.get("finish_reason") in ("length", "content_filter"):
        raise _AttemptFailed("length", f"The model stopped early (finish_reason={choice['finish_reason']!r})",
                             retryable=False)
    content = message.get("content")
    if not isinstance(content, str):
        raise _AttemptFailed("invalid_json", "The model returned no content", retryable=True)
    try:
        data = storable(json.loads(content))
    except (ValueError, RecursionError) as exc:
        raise _AttemptFailed("invalid_json", "The model's content is not JSON", retryable=True) from exc
    try:
        parsed = RecommendationSet.model_validate(data)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        raise _AttemptFailed(
            "invalid_output", f"The model's JSON breaks the recommendation rules ({errors})", retryable=True
        ) from exc
    # sorted() is stable, so equal priorities keep the model's order.
    ordered = sorted(parsed.recommendations, key=lambda r: r.priority)
    model = envelope.get("model")
    model = storable(model)[:MAX_MODEL_CHARS].strip() if isinstance(model, str) else None
    return _Answer(parsed.model_copy(update={"recommendations": ordered}), model or None)
