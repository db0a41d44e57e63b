"""Recommender's streamed answers against a real OpenAI-compatible server that streams (devkit.fake_openai):
content fed as it arrives, usage from the last chunk, broken streams retried, servers that refuse or ignore
`stream` still answered, and the same answer whether streamed or not."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from devkit.fake_openai import FakeOpenAI, broken_stream, ok, raw, status, stream_error
from tests.factories import assessment
from worker.ai import Caller, Recommender
from worker.ai_stream import MAX_STREAM_BYTES
from worker.drafts import checked_draft
from worker.exceptions import AiUnavailable
from worker.prompt import build_prompt
from worker.stream_parse import RecommendationScanner

PROMPT = build_prompt(assessment())
USER = assessment().user_id


class Collected:
    """A drafts sink that checks each element as the worker's DraftSender does, and notes when it arrived."""

    def __init__(self) -> None:
        self.fed = False
        self.content: list[str] = []
        self.drafts: list[tuple[float, dict[str, Any] | None]] = []
        self._scanner = RecommendationScanner()

    def feed(self, content: str) -> None:
        self.fed = True
        self.content.append(content)
        for element in self._scanner.feed(content):
            self.drafts.append((time.monotonic(), checked_draft(element, PROMPT.citable)))


@pytest.fixture
async def streaming() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(recommendations=4, chars_per_second=4000) as server:
        yield server


async def recommend(server: FakeOpenAI, sink: Collected | None = None, **options: Any) -> Any:
    recommender = Recommender(api_key="k", base_url=server.base_url, model="fake-model", deadline_seconds=5,
                              **options)
    try:
        return await recommender.recommend(PROMPT, Caller(USER, None, sink))
    finally:
        await recommender.aclose()


async def test_each_recommendation_is_fed_before_the_answer_ends_and_equals_the_final_one(
    streaming: FakeOpenAI,
) -> None:
    sink = Collected()
    result = await recommend(streaming, sink)
    returned = time.monotonic()
    (request,) = streaming.requests
    assert request.body["stream"] is True and request.body["stream_options"] == {"include_usage": True}
    drafts = [draft for _, draft in sink.drafts if draft is not None]
    assert len(drafts) == len(sink.drafts) == 4
    # The first arrived well before the call returned (about 1,300 characters at 4,000 a second).
    assert returned - sink.drafts[0][0] > 0.1
    final = [r.model_dump(mode="json") for r in PROMPT.ground(result.recommendations).recommendations]
    assert sorted(drafts, key=lambda d: d["priority"]) == final  # the result is sorted by priority, stably
    # The usage came from the stream's last chunk, as the fake counts it.
    content = "".join(sink.content)
    assert result.completion_tokens == len(content) // 4 and result.prompt_tokens and result.prompt_tokens > 0


async def test_a_streamed_and_an_unstreamed_answer_are_the_same_answer(streaming: FakeOpenAI) -> None:
    streamed = await recommend(streaming)
    whole = await recommend(streaming, stream=False)
    assert "stream" not in streaming.requests[1].body  # AI_STREAM=false: today's request, unchanged
    assert streamed.recommendations == whole.recommendations
    assert (streamed.prompt_tokens, streamed.completion_tokens) == (whole.prompt_tokens, whole.completion_tokens)


@pytest.mark.parametrize("failure", [broken_stream(0.6), stream_error(0.6)], ids=["cut", "error-event"])
async def test_a_stream_that_fails_half_way_is_retried_and_only_the_first_try_feeds_drafts(
    streaming: FakeOpenAI, failure: Any
) -> None:
    streaming.script(failure)
    sink = Collected()
    result = await recommend(streaming, sink)
    assert result.tries == 2 and len(streaming.requests) == 2
    # What the first try finished writing was fed; the second try fed nothing (each index at most once).
    assert 1 <= len(sink.drafts) < 4
    assert len(result.recommendations.recommendations) == 4


async def test_a_stream_that_keeps_failing_ends_in_a_reason_for_the_fallback(streaming: FakeOpenAI) -> None:
    streaming.default = broken_stream(0.3)
    with pytest.raises(AiUnavailable) as failed:
        await recommend(streaming, Collected(), max_tries=2)
    assert failed.value.reason == "connection_error"


async def test_a_rate_limited_first_try_leaves_the_drafts_to_the_try_that_answers(streaming: FakeOpenAI) -> None:
    streaming.script(status(429, retry_after_ms=50))
    sink = Collected()
    result = await recommend(streaming, sink)
    assert result.tries == 2 and len(sink.drafts) == 4


async def test_a_server_that_refuses_stream_is_asked_without_it_from_then_on_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeOpenAI(stream_mode="reject") as server:
        recommender = Recommender(api_key="k", base_url=server.base_url, model="fake-model", deadline_seconds=5)
        try:
            with caplog.at_level(logging.WARNING, logger="worker.ai"):
                results = await asyncio.gather(*(recommender.recommend(PROMPT, Caller(USER)) for _ in range(5)))
                later = await recommender.recommend(PROMPT, Caller(USER, None, Collected()))
        finally:
            await recommender.aclose()
    assert all(len(r.recommendations.recommendations) == 2 for r in [*results, later])
    streamed = [r for r in server.requests if r.body.get("stream")]
    assert 1 <= len(streamed) <= 5  # the calls already under way when the first refusal came
    assert "stream" not in server.requests[-1].body
    assert [r.message for r in caplog.records].count(
        "the AI server does not support streaming; asking without it from now on (drafts are not sent; set "
        "AI_STREAM=false to skip this check)") == 1


async def test_a_400_that_is_not_about_stream_is_a_client_error_and_streaming_stays_on(
    streaming: FakeOpenAI,
) -> None:
    streaming.script(status(400))
    recommender = Recommender(api_key="k", base_url=streaming.base_url, model="fake-model", deadline_seconds=5)
    try:
        with pytest.raises(AiUnavailable) as failed:
            await recommender.recommend(PROMPT)
        assert failed.value.reason == "client_error" and recommender.stream
    finally:
        await recommender.aclose()


async def test_a_server_that_ignores_stream_answers_in_one_piece_and_no_drafts_are_fed() -> None:
    async with FakeOpenAI(stream_mode="ignore") as server:
        sink = Collected()
        result = await recommend(server, sink)
    assert len(result.recommendations.recommendations) == 2 and not sink.fed


def sse(*events: bytes) -> bytes:
    return b"".join(b"data: " + event + b"\n\n" for event in events)


@pytest.mark.parametrize(("body", "reason"), [
    (b"data: " + b"x" * (MAX_STREAM_BYTES + 10), "invalid_output"),
    (sse(b'{"choices": [{"delta": {"content": "{\\"summary\\": "}}]}'), "connection_error"),  # no [DONE]
    (sse(b'{"choices": [{"delta": {"content": "not json"}, "finish_reason": "stop"}]}', b"[DONE]"), "invalid_json"),
    (sse(b'{"choices": [{"delta": {"refusal": "no"}, "finish_reason": "stop"}]}', b"[DONE]"), "refusal"),
    (sse(b'{"choices": [{"delta": {"content": "{"}, "finish_reason": "length"}]}', b"[DONE]"), "length"),
    (sse(b"<html>", b"[DONE]"), "invalid_output"),
])
async def test_a_hostile_stream_ends_in_a_reason_never_an_exception(
    streaming: FakeOpenAI, body: bytes, reason: str
) -> None:
    streaming.default = raw(body, Content_Type="text/event-stream")
    sink = Collected()
    with pytest.raises(AiUnavailable) as failed:
        await recommend(streaming, sink, max_tries=1)
    assert failed.value.reason == reason and sink.drafts == []


async def test_a_streamed_answer_with_a_hostile_element_feeds_no_draft_for_it(streaming: FakeOpenAI) -> None:
    good = {"title": "Plan one step", "description": "Choose one small action a week.", "category": "Planning",
            "priority": 1, "rationale": "It rests on your first answer.", "based_on": ["nope"]}
    bad = good | {"priority": 9}
    content = json.dumps({"summary": "A summary of the answers.", "recommendations": [good, bad]})
    streaming.default = ok()
    chunks = [{"choices": [{"delta": {"content": content[i:i + 5]}}]} for i in range(0, len(content), 5)]
    body = sse(*(json.dumps(c).encode() for c in chunks),
               b'{"choices": [{"delta": {}, "finish_reason": "stop"}]}', b"[DONE]")
    streaming.script(raw(body, Content_Type="text/event-stream"))
    sink = Collected()
    with pytest.raises(AiUnavailable) as failed:
        await recommend(streaming, sink, max_tries=1)
    assert failed.value.reason == "invalid_output"  # the whole answer breaks the rules
    # The good one was fed as the worker would send it (an id the assessment lacks dropped); the bad one not.
    assert [draft for _, draft in sink.drafts] == [good | {"based_on": []}, None]


async def test_a_stream_that_broke_before_its_usage_chunk_is_still_counted(streaming: FakeOpenAI) -> None:
    whole = await recommend(streaming)
    streaming.script(broken_stream(0.5))
    retried = await recommend(streaming)
    assert retried.tries == 2
    # The broken try's tokens are estimated (its characters / 4, the request's bytes / 4) and added.
    assert retried.completion_tokens is not None and whole.completion_tokens is not None
    assert whole.completion_tokens * 1.4 <= retried.completion_tokens <= whole.completion_tokens * 1.6
    assert retried.prompt_tokens is not None and whole.prompt_tokens is not None
    assert retried.prompt_tokens > whole.prompt_tokens


@pytest.mark.parametrize(("error", "refused"), [
    ({"message": "Unrecognized request argument supplied: stream", "param": None}, True),
    ({"message": "stream_options is not supported", "param": None}, True),
    ({"message": "Invalid value", "param": "stream"}, True),
    ({"message": "Bad request from upstream provider: model not found", "param": None}, False),
    ({"message": "streaming of this model is disabled", "param": "model"}, False),
])
async def test_only_an_error_about_stream_counts_as_a_refusal_however_its_body_arrives(
    error: dict[str, Any], refused: bool
) -> None:
    """A 400 whose body comes in two writes (aiohttp's read() returns what has arrived) is read whole."""
    body = json.dumps({"error": error | {"type": "invalid_request_error", "code": None}}).encode()

    async def completions(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=400, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(body[:10])
        await asyncio.sleep(0.05)
        await response.write(body[10:])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    recommender = Recommender(api_key="k", base_url=f"http://127.0.0.1:{port}/v1", model="m", deadline_seconds=5,
                              max_tries=1)
    try:
        with pytest.raises(AiUnavailable) as failed:
            await recommender.recommend(PROMPT)
    finally:
        await recommender.aclose()
        await runner.cleanup()
    assert failed.value.reason == "client_error"  # asked again without stream, the server still says 400
    assert recommender.stream is not refused
