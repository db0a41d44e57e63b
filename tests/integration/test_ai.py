"""Recommender against a real OpenAI-compatible HTTP server: structured output, deadline, retries, reasons."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from devkit.fake_openai import (
    FakeOpenAI,
    hang,
    invalid_json,
    invalid_output,
    length,
    ok,
    refusal,
    status,
)
from tests.factories import assessment
from worker.ai import AiResult, Recommender
from worker.ai_answer import Prices
from worker.exceptions import AiUnavailable
from worker.metrics import REGISTRY
from worker.prompt import build_prompt

PROMPT = build_prompt(assessment())
MARGIN = 0.75  # scheduling noise allowed on top of a deadline; behaviour, not performance

MakeRecommender = Callable[..., Recommender]


@pytest.fixture
async def make(fake: FakeOpenAI) -> AsyncIterator[MakeRecommender]:
    made: list[Recommender] = []

    def factory(**overrides: Any) -> Recommender:
        options: dict[str, Any] = {
            "api_key": "test-key", "base_url": fake.base_url, "model": "fake-model",
            "deadline_seconds": 5.0, "rng": random.Random(0),
        }
        options.update(overrides)
        recommender = Recommender(**options)
        made.append(recommender)
        return recommender

    yield factory
    for recommender in made:
        await recommender.aclose()


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _fails(call: Awaitable[AiResult]) -> tuple[AiUnavailable, float]:
    started = time.monotonic()
    with pytest.raises(AiUnavailable) as info:
        await call
    return info.value, time.monotonic() - started


async def test_ai_success_returns_validated_recommendations_and_tokens(
    fake: FakeOpenAI, make: MakeRecommender
) -> None:
    tokens = {"model": "fake-model", "kind": "prompt"}
    prompt_tokens_before = _sample("assessment_ai_tokens_total", tokens)
    cost_before = _sample("assessment_ai_cost_usd_total", {"model": "fake-model"})
    ok_before = _sample("assessment_ai_call_seconds_count", {"result": "ok"})
    result = await make(prices=Prices(prompt_per_1k=0.5, completion_per_1k=2.0)).recommend(PROMPT)
    assert result.tries == 1 and result.model == "fake-model"
    assert result.prompt_tokens is not None and result.prompt_tokens > 0
    assert result.completion_tokens is not None and result.completion_tokens > 0
    assert "2 messages" in result.recommendations.summary
    assert [r.priority for r in result.recommendations.recommendations] == [1, 3]
    assert _sample("assessment_ai_tokens_total", tokens) == prompt_tokens_before + result.prompt_tokens
    cost = (result.prompt_tokens * 0.5 + result.completion_tokens * 2.0) / 1000
    assert _sample("assessment_ai_cost_usd_total", {"model": "fake-model"}) == pytest.approx(cost_before + cost)
    assert _sample("assessment_ai_call_seconds_count", {"result": "ok"}) == ok_before + 1


async def test_ai_request_uses_strict_json_schema_and_the_prompt(
    fake: FakeOpenAI, make: MakeRecommender
) -> None:
    await make().recommend(PROMPT)
    (request,) = fake.requests
    assert request.headers["Authorization"] == "Bearer test-key"
    assert request.body["model"] == "fake-model"
    assert request.body["messages"] == PROMPT.messages()
    # The strict schema of this assessment: based_on may only name its own ids (tests/unit/test_answer_schema.py).
    assert request.body["response_format"] == PROMPT.response_format
    # Streamed by default (AI_STREAM), with the usage in the stream's last chunk.
    assert request.body["stream"] is True and request.body["stream_options"] == {"include_usage": True}


async def test_ai_without_api_key_is_not_configured_and_sends_nothing(
    fake: FakeOpenAI, make: MakeRecommender
) -> None:
    for key in (None, ""):
        error, _ = await _fails(make(api_key=key).recommend(PROMPT))
        assert error.reason == "not_configured"
    assert fake.requests == []


async def test_ai_hang_times_out_at_the_deadline(fake: FakeOpenAI, make: MakeRecommender) -> None:
    fake.script(hang())
    error, elapsed = await _fails(make(deadline_seconds=1.0).recommend(PROMPT))
    assert error.reason == "timeout"
    assert 0.9 <= elapsed <= 1.0 + MARGIN


async def test_ai_429_with_short_retry_after_waits_then_succeeds(
    fake: FakeOpenAI, make: MakeRecommender
) -> None:
    retries_before = _sample("assessment_ai_retries_total", {"reason": "rate_limited"})
    fake.script(status(429, retry_after=0.4))
    result = await make().recommend(PROMPT)
    assert result.tries == 2
    first, second = fake.requests
    assert second.at - first.at >= 0.4
    assert _sample("assessment_ai_retries_total", {"reason": "rate_limited"}) == retries_before + 1


async def test_ai_429_honours_retry_after_ms(fake: FakeOpenAI, make: MakeRecommender) -> None:
    fake.script(status(429, retry_after=30, retry_after_ms=300))
    result = await make().recommend(PROMPT)
    assert result.tries == 2
    assert fake.requests[1].at - fake.requests[0].at >= 0.3


async def test_ai_429_with_retry_after_beyond_the_deadline_gives_up_at_once(
    fake: FakeOpenAI, make: MakeRecommender
) -> None:
    fake.default = status(429, retry_after=30)
    error, elapsed = await _fails(make(deadline_seconds=3.0).recommend(PROMPT))
    assert error.reason == "rate_limited"
    assert elapsed < 1.0 and len(fake.requests) == 1


async def test_ai_two_500s_then_ok_succeeds_on_the_third_attempt(
    fake: FakeOpenAI, make: MakeRecommender
) -> None:
    fake.script(status(500), status(502))
    result = await make().recommend(PROMPT)
    assert result.tries == 3 and len(fake.requests) == 3


async def test_ai_persistent_500_is_server_error_after_max_attempts(
    fake: FakeOpenAI, make: MakeRecommender
) -> None:
    fake.default = status(500)
    error, elapsed = await _fails(make(max_tries=3).recommend(PROMPT))
    assert error.reason == "server_error"
    assert len(fake.requests) == 3 and elapsed <= 5.0 + MARGIN


@pytest.mark.parametrize(
    ("behaviour", "reason", "requests"),
    [
        (refusal(), "refusal", 1),
        (length(), "length", 1),
        (invalid_json(), "invalid_json", 2),  # one retry for bad output
        (invalid_output(), "invalid_output", 2),
        (status(401), "client_error", 1),
        (status(400), "client_error", 1),
        (status(404), "client_error", 1),
        (status(422), "client_error", 1),
    ],
)
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "in-one-piece"])
async def test_ai_failure_modes_map_to_reasons(
    fake: FakeOpenAI, make: MakeRecommender, behaviour: Any, reason: str, requests: int, stream: bool
) -> None:
    fake.default = behaviour
    error, elapsed = await _fails(make(stream=stream).recommend(PROMPT))
    assert error.reason == reason
    assert len(fake.requests) == requests
    assert elapsed <= 5.0 + MARGIN
    assert _sample("assessment_ai_call_seconds_count", {"result": reason}) >= 1


async def test_ai_invalid_json_once_then_ok_succeeds(fake: FakeOpenAI, make: MakeRecommender) -> None:
    fake.script(invalid_json(), ok())
    result = await make().recommend(PROMPT)
    assert result.tries == 2
    # Both answered attempts were billed, so both count.
    assert result.completion_tokens is not None and result.completion_tokens > 100


async def test_ai_connection_refused_is_connection_error(make: MakeRecommender) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # The socket is closed: nothing listens on the port any more.
    error, elapsed = await _fails(
        make(base_url=f"http://127.0.0.1:{port}/v1", max_tries=2).recommend(PROMPT)
    )
    assert error.reason == "connection_error"
    assert elapsed <= 5.0 + MARGIN


async def test_ai_goes_through_the_proxy_the_environment_names(
    fake: FakeOpenAI, make: MakeRecommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the SDK's httpx client did: HTTP(S)_PROXY with its credentials, read once per client."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    proxy = fake.base_url.removesuffix("/v1").replace("http://", "http://egress:s%40cret@")
    monkeypatch.setenv("HTTP_PROXY", proxy)
    result = await make(base_url="http://api.openai.invalid/v1").recommend(PROMPT)
    assert result.tries == 1
    (request,) = fake.requests  # the fake stands in for the proxy: it got the absolute-form request
    assert request.headers["Host"] == "api.openai.invalid"
    assert request.headers["Proxy-Authorization"] == "Basic ZWdyZXNzOnNAY3JldA=="  # egress:s@cret


async def test_ai_skips_the_proxy_for_hosts_in_no_proxy(
    fake: FakeOpenAI, make: MakeRecommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_proxy = f"http://127.0.0.1:{closed.getsockname()[1]}"
    monkeypatch.setenv("HTTP_PROXY", dead_proxy)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    result = await make().recommend(PROMPT)
    assert result.tries == 1 and len(fake.requests) == 1
    monkeypatch.delenv("NO_PROXY")
    error, _ = await _fails(make(max_tries=1).recommend(PROMPT))
    assert error.reason == "connection_error"  # without the exemption it tries the (dead) proxy
