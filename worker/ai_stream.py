"""A streamed Chat Completions answer: Server-Sent Events of `chat.completion.chunk`, put back together.

Contract: `read_stream(chunks, on_content)` reads the body of a `stream: true` response (an async iterable
of bytes) and returns the completion it adds up to, in the non-streamed shape worker/ai_answer.py parses
(`model`, `choices[0].message.content` / `.refusal`, `choices[0].finish_reason`, `usage`), calling
`on_content` with the content of each read as it arrives (all the events it completed, parsed at once).
It raises `AiAttemptFailed` when the stream is not one: over MAX_STREAM_BYTES, content over
MAX_RESPONSE_BYTES, an event that is not JSON (invalid_output), an error event mid-stream (server_error),
or an end before `data: [DONE]` (connection_error). All of these may be retried. Linear in the stream's
length; nothing it reads is logged.

The format, as OpenAI documents it: each event is `data: <json>` lines ended by a blank line; the last is
`data: [DONE]`. With `stream_options.include_usage` the chunk before it has `choices: []` and `usage`.
Lines starting with `:` are comments (some gateways send keep-alives), other fields are ignored.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from typing import Any

from worker.exceptions import AiAttemptFailed

# Ten recommendations at their longest are about 20,000 characters of JSON; an answer in one piece
# (worker/ai_http.py) and a streamed answer's content are both bounded by this. Anything larger is not an
# answer to our request.
MAX_RESPONSE_BYTES = 256 * 1024
# Every token comes wrapped in an event of about 200 bytes, so the stream itself may be much larger than
# its content: 16 times the content's bound holds a cap-length answer (6,000 tokens) with room to spare.
MAX_STREAM_BYTES = 16 * MAX_RESPONSE_BYTES
_DONE = b"[DONE]"
_BOM = b"\xef\xbb\xbf"  # the spec lets a stream start with one


@dataclass
class Received:
    """What a stream has brought so far, kept when it breaks: a try that ends before the usage chunk was
    still billed, and worker/ai.py estimates it from this."""

    chars: int = 0  # of content and refusal


class _Completion:
    """What the events so far add up to."""

    def __init__(self, on_content: Callable[[str], None] | None, received: Received) -> None:
        self.on_content = on_content
        self.received = received
        self.model: Any = None
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.finish_reason: Any = None
        self.usage: Any = None

    def add(self, events: list[bytes]) -> bool:
        """Take the data of the events one read completed; True once `[DONE]` has come."""
        done = _DONE in events
        if done:
            events = events[:events.index(_DONE)]
        if not events:
            return done
        try:  # one parse for everything this read brought: a token's event is small, its overhead is not
            chunks = json.loads(b"[" + b",".join(events) + b"]")
        except (ValueError, RecursionError) as exc:
            raise AiAttemptFailed("invalid_output", "The AI endpoint's stream has an event that is not JSON",
                                  retryable=True) from exc
        if len(chunks) != len(events):  # an event holding "{...}, {...}" is not one chunk
            raise AiAttemptFailed("invalid_output", "The AI endpoint's stream has an event that is not one chunk",
                                  retryable=True)
        content: list[str] = []
        for chunk in chunks:
            if not isinstance(chunk, dict):
                raise AiAttemptFailed("invalid_output", "The AI endpoint's stream has an event that is not a "
                                      "chunk", retryable=True)
            if "error" in chunk:  # a provider that fails mid-stream says so in an event, after its 200
                raise AiAttemptFailed("server_error", "The AI endpoint reported an error in the middle of its "
                                      "stream", retryable=True)
            if self.model is None:
                self.model = chunk.get("model")
            if chunk.get("usage") is not None:
                self.usage = chunk["usage"]
            choices = chunk.get("choices")
            choice = choices[0] if isinstance(choices, list) and choices else None
            if not isinstance(choice, dict):
                continue  # the usage chunk (choices: []), or a chunk with nothing for us
            if choice.get("finish_reason") is not None:
                self.finish_reason = choice["finish_reason"]
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            text, refusal = delta.get("content"), delta.get("refusal")
            if isinstance(text, str) and text:
                content.append(text)
            if isinstance(refusal, str) and refusal:
                self._grow(len(refusal))
                self.refusal.append(refusal)
        if content:
            text = "".join(content)
            self._grow(len(text))
            self.content.append(text)
            if self.on_content is not None:
                self.on_content(text)
        return done

    def _grow(self, chars: int) -> None:
        self.received.chars += chars
        if self.received.chars > MAX_RESPONSE_BYTES:
            raise AiAttemptFailed("invalid_output", f"The AI endpoint's streamed answer is over "
                                  f"{MAX_RESPONSE_BYTES} characters", retryable=True)

    def envelope(self) -> dict[str, Any]:
        message = {"content": "".join(self.content) if self.content else None,
                   "refusal": "".join(self.refusal) if self.refusal else None}
        return {"model": self.model, "usage": self.usage,
                "choices": [{"message": message, "finish_reason": self.finish_reason}]}


def _data(event: bytes) -> bytes | None:
    """The data of one event (its `data:` lines joined by newlines), None when it has none (the spec does
    not dispatch an event whose data is empty)."""
    if event.startswith(b"data: ") and b"\n" not in event:  # what every OpenAI event looks like
        data = event[6:]
    else:
        data = b"\n".join(line[6:] if line.startswith(b"data: ") else line[5:]
                          for line in event.split(b"\n") if line.startswith(b"data:"))
        # comments (":...") and other fields (event:, id:, retry:) carry nothing for us
    if not data or data.isspace():
        return None
    return _DONE if len(data) <= 16 and data.strip() == _DONE else data


async def read_stream(chunks: AsyncIterable[bytes], on_content: Callable[[str], None] | None,
                      received: Received | None = None) -> dict[str, Any]:
    """The completion a Server-Sent Events body adds up to (module docstring); AiAttemptFailed otherwise.
    `received` follows how much content has arrived, also when the stream breaks."""
    completion = _Completion(on_content, received or Received())
    pending = bytearray()  # what arrived after the last complete event
    after_cr = False  # the last read ended with a CR: a LF that starts the next one belongs to it
    total = 0
    async for chunk in chunks:
        if total == 0 and chunk.startswith(_BOM):
            chunk = chunk[len(_BOM):]
        total += len(chunk)
        if total > MAX_STREAM_BYTES:
            raise AiAttemptFailed("invalid_output", f"The AI endpoint's stream is over {MAX_STREAM_BYTES} bytes",
                                  retryable=True)
        if after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        after_cr = chunk.endswith(b"\r")
        if b"\r" in chunk:  # the spec's other line ends, CRLF and CR, as LF
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        # An event ends with a blank line. Only the new bytes (and the byte before them) are searched, so
        # an event that arrives in many reads costs one pass, not one per read.
        if b"\n\n" not in (pending[-1:] + chunk):
            pending += chunk
            continue
        pending += chunk
        *events, rest = bytes(pending).split(b"\n\n")
        pending = bytearray(rest)
        data = [found for event in events if (found := _data(event.lstrip(b"\n"))) is not None]
        if data and completion.add(data):
            return completion.envelope()
    raise AiAttemptFailed("connection_error", "The AI endpoint's stream ended before its [DONE] event",
                          retryable=True)
