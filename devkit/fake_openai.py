"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests, benchmarks and fault injection.

`POST /v1/chat/completions` answers like the Chat Completions API; `GET /health` answers 200 with counts
(requests, rate_limited, completed, and the wall times of the first and last completion). Each request
takes the next scripted behaviour, or the default one when the script is empty, and is recorded (body,
headers, time) in `FakeOpenAI.requests`.

A request with `stream: true` gets Server-Sent Events in OpenAI's `chat.completion.chunk` form: a first chunk
with the role, one chunk per piece of content (about a token: 4 characters) at `chars_per_second` (None:
all at once, in one write), a chunk with the finish_reason, with `stream_options.include_usage` a last chunk
with `choices: []` and the usage, then `data: [DONE]`. `stream_mode` "ignore" answers a stream request in
one piece (as some OpenAI-compatible servers do), "reject" refuses it with HTTP 400 naming `stream` (as
others do). `broken_stream()` and `stream_error()` fail a stream half-way. `recommendations` sets how many
recommendations an answer holds (1-10).

With `requests_per_minute` and/or `tokens_per_minute` it enforces an account's rate limits as OpenAI does:
requests paced per second (a bucket of one second's requests, as OpenAI may quantize a per-minute
limit), tokens from a bucket of one minute's tokens (a request counts its prompt, at 4 characters a token,
plus its max_completion_tokens); a request beyond them gets HTTP 429 with OpenAI's error body and
`retry-after-ms` / `retry-after`, and every answer carries `x-ratelimit-limit-*`, `x-ratelimit-remaining-*`
and `x-ratelimit-reset-*` (durations like "6m0s", "1s", "120ms") for requests and tokens.

In pytest (same event loop):

    async with FakeOpenAI() as server:
        server.script(status(500), status(500))   # then the default, ok()
        Recommender(api_key="test", base_url=server.base_url, model="fake-model")

Standalone (prints its base URL as the first line of stdout, runs until SIGTERM or SIGINT):

    python -m devkit.fake_openai --port 0 --latency 2.0 --fail-rate 0.3 --seed 1
    python -m devkit.fake_openai --requests-per-minute 120 --tokens-per-minute 200000
    python -m devkit.fake_openai --chars-per-second 200 --recommendations 6    # streams at ~50 tokens/s
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import random
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

HANG_SECONDS = 3600.0
TOKEN_CHARS = 4  # a streamed content chunk: about one token of English


@dataclass
class Behaviour:
    """How the server answers one request; build these with the functions below."""

    kind: str
    seconds: float = 0.0
    code: int = 200
    retry_after: float | None = None
    retry_after_ms: float | None = None
    rate: float = 0.0
    rng: random.Random | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    body: bytes = b""


def ok() -> Behaviour:
    """A valid structured-output completion derived from the request."""
    return Behaviour("ok")


def delay(seconds: float) -> Behaviour:
    """Wait `seconds`, then answer like ok()."""
    return Behaviour("ok", seconds=seconds)


def hang() -> Behaviour:
    """Never answer (until the server stops)."""
    return Behaviour("hang")


def status(code: int, retry_after: float | None = None, retry_after_ms: float | None = None) -> Behaviour:
    """An OpenAI-style error response with HTTP `code` and optional Retry-After / retry-after-ms headers."""
    return Behaviour("status", code=code, retry_after=retry_after, retry_after_ms=retry_after_ms)


def refusal() -> Behaviour:
    """A completion whose message carries a refusal and no content."""
    return Behaviour("refusal")


def invalid_json() -> Behaviour:
    """A completion whose content is not JSON."""
    return Behaviour("invalid_json")


def invalid_output() -> Behaviour:
    """Valid JSON that breaks the business rules (priority 9, too-short texts)."""
    return Behaviour("invalid_output")


def length() -> Behaviour:
    """A completion cut off with finish_reason "length"."""
    return Behaviour("length")


def completion(content: str | None = None, **envelope: Any) -> Behaviour:
    """A 200 completion with `content` as the message content (default: valid recommendations) and any
    top-level field of the completion replaced (`model=...`, `usage=...`): a hostile but well-formed answer."""
    overrides = dict(envelope)
    if content is not None:
        overrides["content"] = content
    return Behaviour("completion", overrides=overrides)


def raw(body: bytes, code: int = 200, **headers: str) -> Behaviour:
    """Exactly `body` with HTTP `code`, Content-Type application/json (unless `Content_Type=` names another)
    and `headers`, whatever it holds."""
    return Behaviour("raw", code=code, body=body, overrides=headers)


def broken_stream(fraction: float = 0.5) -> Behaviour:
    """A stream whose connection is cut after `fraction` of the content (a non-stream request: like ok())."""
    return Behaviour("broken_stream", rate=fraction)


def stream_error(fraction: float = 0.5) -> Behaviour:
    """A stream that sends an error event after `fraction` of the content, as a provider that fails mid-answer
    does (a non-stream request: HTTP 500)."""
    return Behaviour("stream_error", rate=fraction)


def random_failures(rate: float, seed: int) -> Behaviour:
    """HTTP 500 with probability `rate` (reproducible for a given seed and request order), else ok()."""
    return Behaviour("random_failures", rate=rate, rng=random.Random(seed))


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    body: dict[str, Any]
    headers: dict[str, str]
    at: float  # time.monotonic() on arrival


@dataclass
class Bucket:
    """A token bucket: `capacity` units, refilled continuously at `per_minute` a minute, full at first."""

    per_minute: int
    capacity: float
    level: float = math.nan
    at: float = 0.0

    def refill(self, now: float) -> None:
        self.level = self.capacity if math.isnan(self.level) else min(
            self.capacity, self.level + (now - self.at) * self.per_minute / 60)
        self.at = now

    def seconds_until(self, units: float) -> float:
        """How long until the bucket holds `units` (at most its capacity)."""
        return max(0.0, (min(units, self.capacity) - self.level) * 60 / self.per_minute)


@dataclass
class FakeOpenAI:
    """The server; `latency` is added before every completion, `default` answers when the script is empty;
    `requests_per_minute` / `tokens_per_minute` turn on OpenAI's rate limits (module docstring)."""

    default: Behaviour = field(default_factory=ok)
    latency: float = 0.0
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[RecordedRequest] = field(default_factory=list)
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    chars_per_second: float | None = None
    stream_mode: str = "sse"  # "sse", "ignore" or "reject" (module docstring)
    recommendations: int = 2

    def __post_init__(self) -> None:
        if self.stream_mode not in ("sse", "ignore", "reject") or not 1 <= self.recommendations <= 10:
            raise ValueError(f"stream_mode must be sse, ignore or reject and recommendations 1-10, got "
                             f"{self.stream_mode!r} and {self.recommendations!r}")
        self._queue: deque[Behaviour] = deque()
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._served = 0
        self.rate_limited = 0  # requests answered 429 by the rate limits (not scripted 429s)
        self.completed = 0  # requests answered 200 with a completion
        self.first_completed_at: float | None = None  # wall clock
        self.last_completed_at: float | None = None
        rpm, tpm = self.requests_per_minute, self.tokens_per_minute
        self._request_bucket = Bucket(rpm, max(1.0, rpm / 60)) if rpm else None
        self._token_bucket = Bucket(tpm, float(tpm)) if tpm else None

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, e.g. http://127.0.0.1:41234/v1."""
        return f"http://{self.host}:{self.port}/v1"

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next requests, in order."""
        self._queue.extend(behaviours)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the real port when 0 asked for a free one

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAI:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({
            "status": "ok", "requests": len(self.requests), "rate_limited": self.rate_limited,
            "completed": self.completed, "first_completed_at": self.first_completed_at,
            "last_completed_at": self.last_completed_at,
        })

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        response, limits = await self._answer(request)
        if not response.prepared:  # a stream sent its headers (the limits among them) before its first event
            response.headers.update(limits)
        if response.status == 200:
            self.completed += 1
            self.last_completed_at = time.time()
            self.first_completed_at = self.first_completed_at or self.last_completed_at
        return response

    def _limit(self, body: dict[str, Any]) -> tuple[web.Response | None, dict[str, str]]:
        """Spend the request's share of the rate limits: (a 429 if it does not fit, the x-ratelimit-* headers)."""
        now = time.monotonic()
        cost = _token_cost(body)
        buckets = [(b, units, kind) for b, units, kind in ((self._request_bucket, 1.0, "requests"),
                                                           (self._token_bucket, float(cost), "tokens")) if b]
        for bucket, _, _ in buckets:
            bucket.refill(now)
        short = [(bucket.seconds_until(units), bucket, units, kind) for bucket, units, kind in buckets
                 if bucket.level < min(units, bucket.capacity)]
        if not short:
            for bucket, units, _ in buckets:
                bucket.level -= units
        headers: dict[str, str] = {}
        for bucket, _, kind in buckets:
            headers[f"x-ratelimit-limit-{kind}"] = str(bucket.per_minute)
            headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, math.floor(bucket.level)))
            headers[f"x-ratelimit-reset-{kind}"] = openai_duration(bucket.seconds_until(bucket.capacity))
        if not short:
            return None, headers
        self.rate_limited += 1
        wait, bucket, units, kind = max(short, key=lambda item: item[0])
        headers |= {"retry-after-ms": str(max(1, math.ceil(wait * 1000))), "retry-after": str(max(1, math.ceil(wait)))}
        name = "requests per min (RPM)" if kind == "requests" else "tokens per min (TPM)"
        message = (f"Rate limit reached for {body.get('model', 'fake-model')} in organization org-fake on {name}: "
                   f"Limit {bucket.per_minute}, Used {bucket.per_minute - max(0, math.floor(bucket.level))}, "
                   f"Requested {units:g}. Please try again in {openai_duration(wait)}. Visit "
                   "https://platform.openai.com/account/rate-limits to learn more.")
        payload = {"error": {"message": message, "type": kind, "param": None, "code": "rate_limit_exceeded"}}
        return web.json_response(payload, status=429), headers

    async def _answer(self, request: web.Request) -> tuple[web.StreamResponse, dict[str, str]]:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "The request body is not valid JSON.", "invalid_request_error"), {}
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.", "invalid_request_error"), {}
        self.requests.append(RecordedRequest(body, dict(request.headers), time.monotonic()))
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return _error(401, "You didn't provide an API key.", "invalid_request_error"), {}
        if body.get("stream") is True and self.stream_mode == "reject":
            return _error(400, "Unrecognized request argument supplied: stream", "invalid_request_error",
                          param="stream"), {}
        refused, limits = self._limit(body)
        if refused is not None:
            return refused, limits
        return await self._behave(body, request, limits), limits

    async def _behave(self, body: dict[str, Any], request: web.Request, limits: dict[str, str]
                      ) -> web.StreamResponse:
        behaviour = self._queue.popleft() if self._queue else self.default
        self._served += 1
        kind = behaviour.kind
        if kind == "random_failures":
            assert behaviour.rng is not None
            kind = "status" if behaviour.rng.random() < behaviour.rate else "ok"
            behaviour = Behaviour(kind, code=500)
        if kind == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), HANG_SECONDS)
            return _error(503, "The fake server is shutting down.", "server_error")
        if kind == "status":
            return _status(behaviour)
        if kind == "raw":
            headers = {name.replace("_", "-"): value for name, value in behaviour.overrides.items()}
            return web.Response(body=behaviour.body, status=behaviour.code,
                                content_type=headers.pop("Content-Type", "application/json"), headers=headers)
        streamed = body.get("stream") is True and self.stream_mode == "sse"
        if kind == "stream_error" and not streamed:
            return _error(500, "The fake server failed.", "server_error")
        if self.latency or behaviour.seconds:
            await asyncio.sleep(self.latency + behaviour.seconds)
        answer = _completion(body, kind, self._served, self.recommendations)
        if kind == "completion":
            if "content" in behaviour.overrides:
                answer["choices"][0]["message"]["content"] = behaviour.overrides["content"]
            answer.update({k: v for k, v in behaviour.overrides.items() if k != "content"})
        if not streamed:
            return web.json_response(answer)
        cut = behaviour.rate if kind in ("broken_stream", "stream_error") else None
        return await self._stream(request, body, answer, limits, cut, kind == "stream_error")

    async def _stream(self, request: web.Request, body: dict[str, Any], answer: dict[str, Any],
                      limits: dict[str, str], cut: float | None, error_at_cut: bool) -> web.StreamResponse:
        """`answer` as Server-Sent Events (module docstring); with `cut`, only that fraction of its content,
        then the connection is closed (or, with `error_at_cut`, an error event is sent)."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               **limits})
        await response.prepare(request)
        choice, usage = answer["choices"][0], answer.get("usage")
        options = body.get("stream_options")
        with_usage = isinstance(options, dict) and options.get("include_usage") is True
        base = {"id": answer["id"], "object": "chat.completion.chunk", "created": answer["created"],
                "model": answer["model"], "system_fingerprint": "fp_fake"}

        def event(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choices = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
            chunk = {**base, "choices": choices, **({"usage": None} if with_usage else {})}
            return b"data: " + json.dumps(chunk).encode() + b"\n\n"

        # Unpaced, the events (still one per token) go out in one write: a provider infinitely fast, and a load
        # generator that is not the benchmark's bottleneck (a write per event cost it 10 times the CPU).
        unsent: list[bytes] = []

        async def send(data: bytes) -> None:
            unsent.append(data)
            if self.chars_per_second:
                await response.write(b"".join(unsent))
                unsent.clear()

        await send(event({"role": "assistant", "content": "", "refusal": None}))
        field_name = "refusal" if choice["message"].get("refusal") else "content"
        text = choice["message"].get(field_name) or ""
        stop_at = len(text) if cut is None else int(len(text) * cut)
        loop = asyncio.get_running_loop()
        started, sent = loop.time(), 0
        for at in range(0, stop_at, TOKEN_CHARS):
            piece = text[at:min(at + TOKEN_CHARS, stop_at)]
            if self.chars_per_second:  # paced by the clock, so slow writes do not add up
                wait = started + sent / self.chars_per_second - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            await send(event({field_name: piece}))
            sent += len(piece)
        if cut is not None:
            if error_at_cut:
                error = {"error": {"message": "The server had an error while processing your request.",
                                   "type": "server_error", "param": None, "code": None}}
                await response.write(b"".join(unsent) + b"data: " + json.dumps(error).encode() + b"\n\n")
            else:
                await response.write(b"".join(unsent))
                assert request.transport is not None
                request.transport.close()  # the client reads a body that ends before its end
            return response
        await send(event({}, choice["finish_reason"]))
        if with_usage:
            await send(b"data: " + json.dumps({**base, "choices": [], "usage": usage}).encode() + b"\n\n")
        await send(b"data: [DONE]\n\n")
        await response.write(b"".join(unsent))
        await response.write_eof()
        return response


def openai_duration(seconds: float) -> str:
    """A duration as OpenAI's x-ratelimit-reset-* headers write it: "120ms", "1s", "2.5s", "6m0s"."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(round(seconds, 3), 60)
    return f"{int(minutes)}m{rest:g}s" if minutes else f"{rest:g}s"


def _token_cost(body: dict[str, Any]) -> int:
    """What a request counts against tokens a minute: its prompt (4 characters a token) and its cap."""
    messages = body.get("messages")
    chars = sum(len(str(m.get("content", ""))) for m in messages if isinstance(m, dict)) if isinstance(
        messages, list) else 0
    cap = body.get("max_completion_tokens", body.get("max_tokens", 4096))
    return math.ceil(chars / 4) + (cap if isinstance(cap, int) and cap > 0 else 4096)


def _error(code: int, message: str, kind: str, headers: dict[str, str] | None = None,
           param: str | None = None) -> web.Response:
    payload = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return web.json_response(payload, status=code, headers=headers)


def _status(behaviour: Behaviour) -> web.Response:
    headers: dict[str, str] = {}
    if behaviour.retry_after is not None:
        headers["Retry-After"] = f"{behaviour.retry_after:g}"
    if behaviour.retry_after_ms is not None:
        headers["retry-after-ms"] = f"{behaviour.retry_after_ms:g}"
    code = behaviour.code
    kind = "invalid_request_error"
    if code == 429:
        kind = "rate_limit_exceeded"
    elif code >= 500:
        kind = "server_error"
    return _error(code, f"Fake error with HTTP status {code}.", kind, headers)


def _completion(body: dict[str, Any], kind: str, served: int, count: int = 2) -> dict[str, Any]:
    messages = body.get("messages") or []
    prompt_chars = sum(len(str(m.get("content", ""))) for m in messages if isinstance(m, dict))
    content: str | None = None
    refusal_text: str | None = None
    finish_reason = "stop"
    if kind == "refusal":
        refusal_text = "I'm sorry, I can't help with that."
    elif kind == "invalid_json":
        content = '{"summary": "This is not finished JSON'
    elif kind == "invalid_output":
        content = json.dumps({"summary": "short", "recommendations": [
            {"title": "x", "description": "too short", "category": "c", "priority": 9, "rationale": "no"},
        ]})
    elif kind == "length":
        content = '{"summary": "The answer was cut off because it reached the maxim'
        finish_reason = "length"
    else:
        content = json.dumps(_recommendations(messages, prompt_chars, _citable(body), count))
    completion_chars = len(content or refusal_text or "")
    prompt_tokens, completion_tokens = max(prompt_chars // 4, 1), max(completion_chars // 4, 1)
    return {
        "id": f"chatcmpl-fake-{served}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model", "fake-model")),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": refusal_text},
            "finish_reason": finish_reason,
            "logprobs": None,
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _citable(body: dict[str, Any]) -> list[str]:
    """The ids the request's strict schema lets based_on cite (worker/answer_schema.py), or none."""
    try:
        schema = body["response_format"]["json_schema"]["schema"]
        enum = schema["properties"]["recommendations"]["items"]["properties"]["based_on"]["items"]["enum"]
    except (KeyError, TypeError):
        return []
    return [item for item in enum if isinstance(item, str)] if isinstance(enum, list) else []


# (title, description, category, priority) of the recommendations after the first two, in order.
_MORE = (
    ("Protect one hour for focused work", "Block one hour on three mornings a week for your most important task, "
     "with notifications off.", "Focus", 2),
    ("Ask for feedback every month", "Ask one colleague or friend each month what you could do differently, and "
     "note one change to try.", "Feedback", 2),
    ("Keep a short evening log", "Write three lines each evening: what went well, what was hard, what to try "
     "tomorrow.", "Reflection", 3),
    ("Learn one skill in small pieces", "Pick one skill you want and spend twenty minutes on it twice a week, "
     "with a small exercise each time.", "Learning", 3),
    ("Move for ten minutes a day", "Take a ten-minute walk after lunch; it is easier to keep than a long "
     "session you skip.", "Health", 4),
    ("Plan your week on Sunday", "Spend fifteen minutes on Sunday choosing the three things that matter most "
     "in the coming week.", "Planning", 4),
    ("Share your goal with someone", "Tell one person about your goal and agree on a date to tell them how "
     "it went.", "Support", 5),
    ("Celebrate small progress", "When you finish a step, note it and take a short break; it keeps the habit "
     "going.", "Motivation", 5),
)


def _recommendations(messages: list[Any], prompt_chars: int, citable: list[str], count: int = 2) -> dict[str, Any]:
    # Derived from the request only, so equal requests get equal answers.
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:8]
    recommendations = [
        {
            "title": "Plan one small weekly step",
            "description": "Choose one small action for each week and schedule it in your calendar.",
            "category": "Planning",
            "priority": 1,
            "rationale": f"Derived from the {len(messages)} messages of request {digest}.",
            "based_on": citable[:1],
        },
        {
            "title": "Review your progress monthly",
            "description": "Once a month, compare where you are with where you started.",
            "category": "Review",
            "priority": 3,
            "rationale": "Regular reviews show which changes are working.",
            "based_on": citable[-1:],
        },
    ]
    for number, (title, description, category, priority) in enumerate(_MORE, start=3):
        recommendations.append({"title": title, "description": description, "category": category,
                                "priority": priority, "rationale": f"Step {number} of the fake model's plan "
                                f"for request {digest}.", "based_on": citable[number % max(1, len(citable)):][:1]})
    steps = "one step" if count == 1 else f"{count} steps"
    return {
        "summary": (
            f"The fake model read {len(messages)} messages ({prompt_chars} characters, digest {digest}) "
            f"and suggests {steps}."
        ),
        "recommendations": recommendations[:count],
    }


async def _serve(args: argparse.Namespace) -> None:
    default = random_failures(args.fail_rate, args.seed) if args.fail_rate > 0 else ok()
    server = FakeOpenAI(default=default, latency=args.latency, port=args.port,
                        requests_per_minute=args.requests_per_minute, tokens_per_minute=args.tokens_per_minute,
                        chars_per_second=args.chars_per_second, stream_mode=args.stream_mode,
                        recommendations=args.recommendations)
    await server.start()
    print(server.base_url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="An OpenAI-compatible fake Chat Completions server.")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: pick a free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added before every completion")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of requests that get HTTP 500")
    parser.add_argument("--seed", type=int, default=0, help="seed of the failure sequence")
    parser.add_argument("--requests-per-minute", type=_positive, help="enforce a request limit (429 beyond it)")
    parser.add_argument("--tokens-per-minute", type=_positive, help="enforce a token limit (429 beyond it)")
    parser.add_argument("--chars-per-second", type=float, help="pace of streamed content (default: no pacing); "
                        "200 is about 50 tokens a second")
    parser.add_argument("--stream-mode", choices=("sse", "ignore", "reject"), default="sse",
                        help="answer stream requests with events (sse), in one piece (ignore) or HTTP 400 (reject)")
    parser.add_argument("--recommendations", type=int, choices=range(1, 11), default=2, metavar="1-10",
                        help="recommendations in each answer (default 2)")
    args = parser.parse_args()
    asyncio.run(_serve(args))


def _positive(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number above 0")
    return int(raw)


if __name__ == "__main__":
    main()
