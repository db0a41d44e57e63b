"""What the worker reads in a provider's rate-limit headers, and the waits it derives, without a server."""

from __future__ import annotations

import pytest

from worker.ai_http import status_failure
from worker.provider_limits import MAX_PAUSE_SECONDS, RateLimits, parse_duration


@pytest.mark.parametrize(("raw", "seconds"), [
    ("1s", 1.0), ("120ms", 0.12), ("6m0s", 360.0), ("2m59.56s", 179.56), ("0h2m3s", 123.0), ("20.5ms", 0.0205),
    ("0s", 0.0), ("3", 3.0), (" 1s ", 1.0),
])
def test_parse_duration_reads_openais_format(raw: str, seconds: float) -> None:
    assert parse_duration(raw) == pytest.approx(seconds)


@pytest.mark.parametrize("raw", ["", "soon", "1x", "1s2", "s", "ms1", "nan", "1s garbage", None])
def test_parse_duration_treats_anything_else_as_unknown(raw: str | None) -> None:
    assert parse_duration(raw) is None


def test_parse_duration_caps_what_a_server_may_ask() -> None:
    assert parse_duration("1000h") == MAX_PAUSE_SECONDS
    assert parse_duration("-5") == 0.0
    assert parse_duration("1e300") == MAX_PAUSE_SECONDS


OPENAI_HEADERS = {
    "x-ratelimit-limit-requests": "120", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s",
    "x-ratelimit-limit-tokens": "150000", "x-ratelimit-remaining-tokens": "149984",
    "x-ratelimit-reset-tokens": "6m0s",
}


def test_rate_limits_read_every_header_case_insensitively() -> None:
    limits = RateLimits.from_headers({name.upper(): value for name, value in OPENAI_HEADERS.items()})
    assert limits == RateLimits(120, 0, 1.0, 150000, 149984, 360.0, None)


def test_rate_limits_ignore_malformed_counts() -> None:
    limits = RateLimits.from_headers({"x-ratelimit-remaining-requests": "²", "x-ratelimit-limit-requests": "-1"})
    assert limits.remaining_requests is None and limits.limit_requests is None


def test_no_requests_left_waits_one_request_at_the_limits_pace_not_the_whole_reset() -> None:
    # 120 a minute: one request comes back every 0.5 s, sooner than the reset of the whole limit.
    assert RateLimits.from_headers(OPENAI_HEADERS).pause_seconds(1000) == pytest.approx(0.5)


def test_too_few_tokens_wait_for_the_missing_ones_at_the_limits_pace() -> None:
    headers = OPENAI_HEADERS | {"x-ratelimit-remaining-requests": "7", "x-ratelimit-remaining-tokens": "1000"}
    # 6000 tokens needed, 1000 left: 5000 at 150,000 a minute = 2 s (the reset, 6 minutes, is longer).
    assert RateLimits.from_headers(headers).pause_seconds(6000) == pytest.approx(2.0)


def test_without_the_limit_the_reset_is_the_wait() -> None:
    limits = RateLimits.from_headers({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "750ms"})
    assert limits.pause_seconds(1) == pytest.approx(0.75)


def test_room_left_means_no_pause() -> None:
    headers = OPENAI_HEADERS | {"x-ratelimit-remaining-requests": "5"}
    assert RateLimits.from_headers(headers).pause_seconds(1000) is None
    assert RateLimits.from_headers({}).pause_seconds(1000) is None


def test_retry_after_ms_counts_with_the_headers_and_the_longest_wait_wins() -> None:
    assert RateLimits.from_headers({"retry-after-ms": "2000"}).pause_seconds(1) == pytest.approx(2.0)
    assert RateLimits.from_headers(OPENAI_HEADERS | {"retry-after-ms": "100"}).pause_seconds(1) == pytest.approx(0.5)


def test_a_429_carries_the_wait_its_headers_name() -> None:
    failure = status_failure(429, OPENAI_HEADERS | {"retry-after-ms": "1200"})
    assert (failure.reason, failure.retryable) == ("rate_limited", True)
    assert failure.wait == pytest.approx(1.2)
    assert status_failure(429, {}).wait is None  # no hint: the caller backs off
