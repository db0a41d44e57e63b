"""Asks a Chat Completions API (OpenAI, or any server that speaks its protocol) for recommendations,
inside one deadline, with our own retries, and treats whatever comes back as untrusted.

Contract: `Recommender.recommend(prompt, caller)` either returns an `AiResult` whose recommendations
satisfy `worker.models.RecommendationSet` and whose every field can be stored as it is
(worker/ai_answer.py), or raises `AiUnavailable` with one of `REASONS` within `deadline_seconds` (plus
scheduling noise) of its first try's start. It raises nothing else for anything a server sends, and never
logs the API key or any answer text. The HTTP transport is worker/ai_http.py; what an answer is worth,
worker/ai_answer.py.

Streaming (AI_STREAM, on by default; decision 0015): each request asks for a stream (`stream: true`, usage
included) and the caller's drafts sink, if it brings one, is fed the answer's content as it arrives, on
the first try that gets any content only (so a retry never sends a recommendation twice). The answer is
then parsed and validated whole, exactly as without streaming. A server that refuses `stream` (HTTP 400 or
422 naming it) is asked again at once without it, and every later call goes without it too (one log
line); a server that ignores it answers in one piece, which is read as ever.

Every try is admitted first when the caller brings an admission (the worker always does:
worker/admission.py, decision 0013): waiting for it comes before the deadline starts, and what it raises
(`LeaseLost`, `ShuttingDown`, a database error) passes through. Each request carries a completion cap
(`max_completion_tokens`) and the end user as a keyed hash (`safety_identifier`, and `user` for servers
that only know that), never the user's id.

Retry policy (the AI step's own; a job's deliveries are worker/retry_policy.py's):
- retried: 429 (rate_limited), 408 (timeout), 5xx (server_error), connection errors (connection_error);
  waits honour `retry-after-ms` / `Retry-After` (a 429's, and its `x-ratelimit-*`, for every replica),
  otherwise exponential backoff with full jitter; a wait that does not fit in the remaining time ends the
  step at once with the last reason.
- retried once: a response that is not a completion, content that is not JSON, and JSON that breaks
  the business rules (invalid_output, invalid_json). Strict structured outputs make these rare and
  sampling makes a second answer likely to differ; a second bad answer means the prompt or model is
  the problem, and more tries only burn time.
- not retried: other 4xx (client_error), refusals, and finish_reason length / content_filter (length):
  the same request would get the same answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from worker.admission import ADMISSION_REASONS, Estimate, JobAdmission, Ticket, Usage
from worker.ai_answer import Prices, TokenUsage, parse_completion, parse_envelope
from worker.ai_http import ChatHttp
from worker.ai_stream import Received
from worker.backoff import backoff
from worker.exceptions import AiAttemptFailed, AiUnavailable, StreamRefused
from worker.metrics import AI_CALL_SECONDS, AI_COST_USD, AI_RATE_LIMITED, AI_RETRIES, AI_TOKENS
from worker.models import RecommendationSet
from worker.prompt import Prompt

log = logging.getLogger(__name__)

# Why the AI step can fail: what AiUnavailable.reason holds, and so result_test.fallback_reason.
REASONS = frozenset({
    "not_configured", "timeout", "rate_limited", "server_error", "connection_error", "client_error",
    "refusal", "invalid_json", "invalid_output", "length",
}) | ADMISSION_REASONS

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
# Ten recommendations with every text at its maximum are about 5,300 tokens of English (decision 0013).
DEFAULT_MAX_COMPLETION_TOKENS = 6000
# Domain separation for a key derived from OPENAI_API_KEY when AI_USER_ID_HMAC_KEY is not set.
_DERIVED_KEY_LABEL = b"assessment-worker safety_identifier v1"


# What turns a request into a streamed one: the answer as Server-Sent Events, its usage in the last one.
_STREAM: dict[str, object] = {"stream": True, "stream_options": {"include_usage": True}}


def _encoded(request: dict[str, object], stream: bool) -> bytes:
    """`request` as it is sent, asking for a stream or not."""
    return json.dumps(request | _STREAM if stream else request, ensure_ascii=False).encode()


class Drafts(Protocol):
    """Where a streamed answer's content goes as it arrives (worker/drafts.py)."""

    @property
    def fed(self) -> bool:
        """Whether any content has been fed: a later try must not feed it again."""
        ...

    def feed(self, content: str) -> None: ...


@dataclass(frozen=True)
class Caller:
    """Whom a call is for: the end user (sent as a keyed hash), in the worker the admission of its tries
    (worker/admission.py; without one, tries are not metered: tests, benchmarks), and where the content of
    a streamed answer goes as it arrives (the owner's drafts), if anywhere."""

    user_id: UUID
    admission: JobAdmission | None = None
    drafts: Drafts | None = None


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
        max_completion_tokens: int = DEFAULT_MAX_COMPLETION_TOKENS,
        end_user_key: bytes | None = None,
        stream: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        if deadline_seconds <= 0 or max_tries < 1 or max_connections < 1 or max_completion_tokens < 1:
            raise ValueError(
                f"Recommender needs deadline_seconds > 0, max_tries >= 1, max_connections >= 1 and "
                f"max_completion_tokens >= 1, got {deadline_seconds!r}, {max_tries!r}, {max_connections!r}, "
                f"{max_completion_tokens!r}."
            )
        self.model = model
        self.max_completion_tokens = max_completion_tokens
        # The key of the end-user hash: never the id itself, and unlinkable to it without the key.
        self._end_user_key = end_user_key or (
            hmac.new(api_key.encode(), _DERIVED_KEY_LABEL, hashlib.sha256).digest() if api_key else b"")
        self.prices = prices or Prices()
        for kind in ("prompt", "completion"):  # present from the start, so rate() sees the first call
            AI_TOKENS.labels(model, kind)
        AI_COST_USD.labels(model)
        self.deadline_seconds = deadline_seconds
        self.max_tries = max_tries
        self.stream = stream  # turned off for good when the server refuses it
        self._rng = rng or random.Random()
        self._http = ChatHttp(api_key=api_key, base_url=base_url, max_connections=max_connections)

    async def recommend(self, prompt: Prompt, caller: Caller | None = None) -> AiResult:
        """Recommendations for `prompt`, or AiUnavailable(reason) once admission refuses the call or the
        deadline or retries run out. The deadline starts when the first try is admitted."""
        if not self._http.configured:
            AI_CALL_SECONDS.labels("not_configured").observe(0.0)
            raise AiUnavailable(
                "not_configured", "No OpenAI API key is configured. Set OPENAI_API_KEY to use the AI."
            )
        request = self.request(prompt, caller)
        body = _encoded(request, self.stream)
        estimate = self.estimate(body)  # a refused stream only shrinks the body
        ticket = await caller.admission.admit(estimate) if caller and caller.admission else None
        call = _Call(request, {self.stream: body}, estimate, ticket, TokenUsage(self.model, self.prices),
                     caller.drafts if caller else None)
        started = time.monotonic()
        outcome = "error"  # a bug of ours; pipeline.produce_outcome falls back and logs it
        try:
            result = await self._tries(call)
            outcome = "ok"
        except AiUnavailable as exc:
            outcome = exc.reason
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"  # the caller gave up (e.g. the worker shuts down)
            raise
        finally:
            AI_CALL_SECONDS.labels(outcome).observe(time.monotonic() - started)
            if ticket is not None:  # shielded: a cancelled job still records what its tries used
                await asyncio.shield(ticket.settle(call.used(), call.pause))
        return result

    def request(self, prompt: Prompt, caller: Caller | None = None) -> dict[str, object]:
        """The request without streaming: the prompt, the answer's schema, the completion cap, and the end
        user as a keyed hash when there is a caller."""
        request: dict[str, object] = {
            "model": self.model, "messages": prompt.messages(), "response_format": prompt.response_format,
            "max_completion_tokens": self.max_completion_tokens,
        }
        if caller is not None:
            end_user = self.end_user_id(caller.user_id)
            request |= {"safety_identifier": end_user, "user": end_user}
        return request

    def request_body(self, prompt: Prompt, caller: Caller | None = None) -> bytes:
        """`request(prompt, caller)` as it is sent, asking for a stream when this client streams."""
        return _encoded(self.request(prompt, caller), self.stream)

    def end_user_id(self, user_id: UUID) -> str:
        """HMAC-SHA256 of the user id (64 hex characters, OpenAI's limit): stable per user, and neither the
        id nor linkable to it without the key."""
        return hmac.new(self._end_user_key, str(user_id).encode(), hashlib.sha256).hexdigest()

    def estimate(self, body: bytes) -> Estimate:
        """A try's worst case. A token encodes at least one byte, so the request's size bounds its prompt
        tokens (tiktoken cannot run here); the cap bounds the answer."""
        cap = self.max_completion_tokens
        return Estimate(tokens=len(body) + cap, cost_usd=(
            len(body) * self.prices.prompt_per_1k + cap * self.prices.completion_per_1k) / 1000)

    async def aclose(self) -> None:
        """Closes the HTTP connections; the Recommender must not be used afterwards."""
        await self._http.aclose()

    async def _tries(self, call: _Call) -> AiResult:
        loop = asyncio.get_running_loop()
        deadline_at = loop.time() + self.deadline_seconds
        tries = 0
        output_retries = 0
        try:
            async with asyncio.timeout_at(deadline_at):
                while True:
                    tries += 1
                    streaming = self.stream
                    received = Received()  # what a stream brought, should it break before its usage chunk
                    reply = None
                    try:
                        if deadline_at - loop.time() < MIN_ATTEMPT_SECONDS:
                            raise AiAttemptFailed("timeout", "No time is left in the deadline for another try",
                                                  retryable=False)
                        call.sent += 1
                        call.pause = None  # what this try's answer asks every replica to wait, if anything
                        drafts = call.drafts if streaming and call.drafts and not call.drafts.fed else None
                        reply = await self._http.post(call.body(streaming), drafts.feed if drafts else None,
                                                      stream=streaming, received=received)
                        call.pause = reply.limits.pause_seconds(call.estimate.tokens)
                        answer = (parse_envelope(reply.streamed, call.usage) if reply.streamed is not None
                                  else parse_completion(reply.payload, call.usage))
                    except StreamRefused as refused:
                        tries -= 1  # the request was refused unread: it takes none of the call's tries
                        self._stop_streaming(refused)
                        if not await self._before_retry(call, refused, 0.0, deadline_at):
                            raise AiUnavailable("timeout", f"{refused.message}; no start for another try without "
                                                f"it within the {self.deadline_seconds:g}s deadline") from refused
                        continue
                    except AiAttemptFailed as failure:
                        if reply is None:
                            call.estimate_broken_stream(streaming, received)
                        if failure.reason == "rate_limited":
                            AI_RATE_LIMITED.inc()
                            call.pause = failure.wait
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
                        if not await self._before_retry(call, failure, wait, deadline_at):
                            raise AiUnavailable(
                                failure.reason, f"{failure.message}; no start for another try within the "
                                f"{self.deadline_seconds:g}s deadline (after {tries} tries)") from failure
                        continue
                    return AiResult(
                        recommendations=answer.recommendations, model=answer.model or self.model,
                        prompt_tokens=call.usage.prompt, completion_tokens=call.usage.completion, tries=tries,
                    )
        except TimeoutError as exc:
            if tries and reply is None:
                call.estimate_broken_stream(streaming, received)
            raise AiUnavailable(
                "timeout",
                f"The AI did not answer within the {self.deadline_seconds:g}s deadline "
                f"(try {tries} was in flight). Check the provider's status or raise the deadline.",
            ) from exc

    def _stop_streaming(self, refused: StreamRefused) -> None:
        """The server does not take `stream`: every later request goes without it."""
        if self.stream:
            self.stream = False
            log.warning("the AI server does not support streaming; asking without it from now on (drafts are "
                        "not sent; set AI_STREAM=false to skip this check)", extra={"detail": refused.message})

    async def _before_retry(self, call: _Call, failure: AiAttemptFailed, wait: float, deadline_at: float) -> bool:
        """Wait before the next try; with admission, get it admitted too. False: it cannot start in time."""
        if call.ticket is None:
            await asyncio.sleep(wait)
            return True
        # A 429's wait is every replica's: the readmission records it, and starts this try after it.
        pause = failure.wait if failure.reason == "rate_limited" else None
        if pause is None:
            await asyncio.sleep(wait)
        within = deadline_at - asyncio.get_running_loop().time() - MIN_ATTEMPT_SECONDS
        return await call.ticket.readmit(call.estimate, pause=pause, within=within)


class _Call:
    """One call's request, its admission and what its tries used so far."""

    def __init__(self, request: dict[str, object], bodies: dict[bool, bytes], estimate: Estimate,
                 ticket: Ticket | None, usage: TokenUsage, drafts: Drafts | None) -> None:
        self.request = request
        self._bodies = bodies  # encoded once per form (streamed or not), for every try
        self.drafts = drafts
        self.estimate = estimate
        self.ticket = ticket
        self.usage = usage
        self.sent = 0  # requests that went out
        self.pause: float | None = None  # what the last answer asked every replica to wait

    def estimate_broken_stream(self, stream: bool, received: Received) -> None:
        """A stream that ended before its usage chunk was billed all the same: count an estimate (4 characters
        a token) so the budgets see it."""
        if received.chars:
            self.usage.add({"prompt_tokens": len(self.body(stream)) // 4,
                            "completion_tokens": -(-received.chars // 4)})

    def body(self, stream: bool) -> bytes:
        if stream not in self._bodies:
            self._bodies[stream] = _encoded(self.request, stream)
        return self._bodies[stream]

    def used(self) -> Usage:
        prompt, completion = self.usage.prompt or 0, self.usage.completion or 0
        prices = self.usage.prices
        return Usage(requests=self.sent, prompt_tokens=prompt, completion_tokens=completion,
                     cost_usd=(prompt * prices.prompt_per_1k + completion * prices.completion_per_1k) / 1000)
