"""worker.ai_stream: a Server-Sent Events body of chat.completion.chunk events, put back together, and every
way a stream can be something else."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from worker.ai_stream import MAX_RESPONSE_BYTES, MAX_STREAM_BYTES, read_stream
from worker.exceptions import AiAttemptFailed


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test",
            "choices": choices, "usage": None} | extra
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def stream(content: str, *, usage: dict[str, int] | None = None, finish: str = "stop") -> bytes:
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": content[at:at + 4]}) for at in range(0, len(content), 4)]
    events.append(chunk({}, finish))
    if usage is not None:
        events.append(chunk(None, usage=usage))
    return b"".join(events) + b"data: [DONE]\n\n"


async def pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for at in range(0, len(body), size):
        yield body[at:at + size]


async def read(body: bytes, size: int = 7, seen: list[str] | None = None) -> dict[str, Any]:
    return await read_stream(pieces(body, size), seen.append if seen is not None else None)


@pytest.mark.parametrize("size", [1, 3, 64, 10_000])
async def test_a_stream_adds_up_to_the_completion_it_streamed_however_the_bytes_arrive(size: int) -> None:
    content = json.dumps({"summary": "Sum \u00e9\u4e2d", "recommendations": [{"title": "T"}]}, ensure_ascii=False)
    seen: list[str] = []
    completion = await read(stream(content, usage={"prompt_tokens": 10, "completion_tokens": 5}), size, seen)
    assert completion == {"model": "gpt-test", "usage": {"prompt_tokens": 10, "completion_tokens": 5},
                          "choices": [{"message": {"content": content, "refusal": None}, "finish_reason": "stop"}]}
    assert "".join(seen) == content
    # Fed as it arrives: once per read that completed events with content; a byte at a time, once per event.
    if size == 1:
        assert len(seen) == -(-len(content) // 4)


async def test_crlf_comments_other_fields_and_multi_line_data_are_read_as_the_sse_spec_says() -> None:
    body = (b": keep-alive from a gateway\r\n\r\nevent: message\r\nid: 1\r\n"
            + chunk({"content": "ab"}).replace(b"\n\n", b"\r\n\r\n")
            + b'data: {"choices": [{"delta": {"content":\ndata: "cd"}, "finish_reason": "stop"}]}\n\n'
            + b"data:[DONE]\n\n")
    completion = await read(body)
    assert completion["choices"][0] == {"message": {"content": "abcd", "refusal": None}, "finish_reason": "stop"}


@pytest.mark.parametrize("size", [1, 2, 5, 100_000])
async def test_cr_only_line_ends_a_bom_empty_data_and_a_spaced_done_are_read_as_the_spec_says(size: int) -> None:
    body = stream('{"a": 1}').replace(b"data: [DONE]", b"data:  [DONE] ")
    body = b"\xef\xbb\xbf" + b"data:\n\n" + body.replace(b"\n", b"\r")  # a BOM, an empty event, CR only
    completion = await read(body, size)
    assert completion["choices"][0]["message"]["content"] == '{"a": 1}'


async def test_one_event_must_hold_one_chunk() -> None:
    two = chunk({"content": "a"})[len(b"data: "):-2] + b", " + chunk({"content": "b"})[len(b"data: "):-2]
    with pytest.raises(AiAttemptFailed) as failed:
        await read(b"data: " + two + b"\n\n" + chunk({}, "stop") + b"data: [DONE]\n\n", 100_000)
    assert failed.value.reason == "invalid_output"


async def test_a_refusal_is_collected_apart_from_the_content() -> None:
    body = chunk({"refusal": "I can't"}) + chunk({"refusal": " help."}, "stop") + b"data: [DONE]\n\n"
    completion = await read(body)
    assert completion["choices"][0]["message"] == {"content": None, "refusal": "I can't help."}


@pytest.mark.parametrize(("body", "reason"), [
    (stream("{}")[:-len(b"data: [DONE]\n\n")], "connection_error"),  # ended before [DONE]
    (b"", "connection_error"),
    (chunk({"content": "x"}) + b"data: {not json\n\n", "invalid_output"),
    (b"data: [1, 2]\n\n", "invalid_output"),
    (b"data: " + b"[" * 100_000 + b"\n\n", "invalid_output"),  # nested deeper than json can follow
    (chunk({"content": "x"}) + b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n',
     "server_error"),
    (b"data: " + b"x" * (MAX_STREAM_BYTES + 1), "invalid_output"),  # one endless line
    (b": " + b"x" * (MAX_STREAM_BYTES + 1) + b"\n", "invalid_output"),  # an endless comment
    (chunk({"content": "x" * (MAX_RESPONSE_BYTES + 1)}), "invalid_output"),  # content over the answer's bound
])
async def test_what_is_not_a_whole_stream_fails_the_try_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(AiAttemptFailed) as failed:
        await read(body, size=65536)
    assert failed.value.reason == reason and failed.value.retryable


async def test_chunks_without_choices_or_delta_are_skipped_and_odd_fields_are_left_to_the_parser() -> None:
    body = (chunk(None) + b'data: {"choices": [{"delta": "text"}]}\n\n' + b'data: {"choices": "none"}\n\n'
            + chunk({"content": 5}) + chunk({"content": "ok"}, "stop") + b"data: [DONE]\n\n")
    completion = await read(body)
    assert completion["choices"][0]["message"]["content"] == "ok"
