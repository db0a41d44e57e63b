"""What an AI provider's response headers say about its rate limits, and how long to stop because of them.

Contract: `RateLimits.from_headers(headers)` reads OpenAI's `x-ratelimit-limit-*`, `x-ratelimit-remaining-*`
and `x-ratelimit-reset-*` (requests and tokens) and `retry-after-ms` / `Retry-After`; anything missing or
malformed reads as unknown, never as an error. `pause_seconds(next_tokens)` is how long every replica
should wait before the next request (None: no reason to wait). Durations are OpenAI's format ("6m0s",
"1s", "120ms", "2m59.56s"); every wait is capped at MAX_PAUSE_SECONDS, so no server can park us for ages.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

MAX_PAUSE_SECONDS = 3600.0

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(raw: str | None) -> float | None:
    """Seconds in a duration such as "6m0s", "1s", "120ms" or "2m59.56s" (a bare number is seconds)."""
    if raw is None:
        return None
    text = raw.strip()
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(number + unit for number, unit in parts) != text:
            return None
        seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_PAUSE_SECONDS)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a server asked for in `retry-after-ms` or `Retry-After` (seconds or HTTP date), if any."""
    lowered = _lowered(headers)
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
            return min(max(seconds, 0.0), MAX_PAUSE_SECONDS)
    return None


@dataclass(frozen=True)
class RateLimits:
    """The provider's view of our account's limits after one response; None = not said."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens: float | None = None
    retry_after: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimits:
        lowered = _lowered(headers)
        return cls(
            limit_requests=_count(lowered.get("x-ratelimit-limit-requests")),
            remaining_requests=_count(lowered.get("x-ratelimit-remaining-requests")),
            reset_requests=parse_duration(lowered.get("x-ratelimit-reset-requests")),
            limit_tokens=_count(lowered.get("x-ratelimit-limit-tokens")),
            remaining_tokens=_count(lowered.get("x-ratelimit-remaining-tokens")),
            reset_tokens=parse_duration(lowered.get("x-ratelimit-reset-tokens")),
            retry_after=retry_after_seconds(headers),
        )

    def pause_seconds(self, next_tokens: int) -> float | None:
        """How long to stop before a request needing `next_tokens` could pass; None when nothing says stop.

        A reset header is the time until the limit is whole again, longer than the time until one more
        request fits; with the limit known, the wait is the time one request (or the missing tokens) takes
        to come back at the limit's pace, never more than the reset.
        """
        waits: list[float | None] = [self.retry_after]
        if self.remaining_requests == 0:
            waits.append(_refill(1, self.limit_requests, self.reset_requests))
        if self.remaining_tokens is not None and self.remaining_tokens < next_tokens:
            waits.append(_refill(next_tokens - self.remaining_tokens, self.limit_tokens, self.reset_tokens))
        known = [wait for wait in waits if wait is not None and wait > 0]
        return min(max(known), MAX_PAUSE_SECONDS) if known else None


def _refill(missing: int, per_minute: int | None, reset: float | None) -> float | None:
    pace = missing * 60.0 / per_minute if per_minute else None
    if pace is None:
        return reset
    return pace if reset is None else min(pace, reset)


def _count(raw: str | None) -> int | None:
    if raw is None or not (raw.strip().isascii() and raw.strip().isdigit()):
        return None
    return int(raw.strip())


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _http_date_delay(raw: str) -> float:
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (ValueError, TypeError):
        return math.nan
    if when.tzinfo is None:
        return math.nan
    return when.timestamp() - time.time()
