"""What the AI client makes of a server's answer, without a server: storable text, token counts, waits."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from worker.ai_answer import MAX_TOKENS, token_count
from worker.provider_limits import retry_after_seconds
from worker.sanitize import storable


def test_storable_drops_nul_and_control_characters_and_replaces_unpaired_surrogates() -> None:
    assert storable("a\u0000b\u0007c\u001b[0m\u007f") == "abc[0m"
    assert storable("tab\tnew\nline\r") == "tab\tnew\nline\r"
    assert storable("half \ud83d pair") == "half \ufffd pair"
    assert storable("emoji \U0001F600 ok") == "emoji \U0001F600 ok"


def test_storable_walks_lists_and_objects_keys_included() -> None:
    hostile = {"ti\u0000tle": ["x\u0000", 3, None, {"y": "\ud800"}]}
    assert storable(hostile) == {"title": ["x", 3, None, {"y": "\ufffd"}]}


def test_storable_is_linear_on_long_hostile_text() -> None:
    """One character class, no backtracking: a million control characters are handled in one pass."""
    started = time.process_time()
    assert storable("\u0000" * 1_000_000) == ""
    assert time.process_time() - started < 2.0  # a quadratic pass would take hours, not seconds


@pytest.mark.parametrize(("value", "count"), [
    (0, 0), (1234, 1234), (MAX_TOKENS, MAX_TOKENS), (MAX_TOKENS + 1, None), (2**40, None), (-1, None),
    (True, None), (1.0, None), ("12", None), (None, None),
])
def test_token_count_keeps_only_what_an_integer_column_holds(value: object, count: int | None) -> None:
    assert token_count(value) == count


def test_retry_after_parsing() -> None:
    assert retry_after_seconds({}) is None
    assert retry_after_seconds({"Retry-After": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    parsed = retry_after_seconds({"Retry-After": later})
    assert parsed is not None and 25 <= parsed <= 31
    assert retry_after_seconds({"retry-after-ms": "nan", "Retry-After": "1"}) == 1.0
    assert retry_after_seconds({"Retry-After": "-5"}) == 0.0
    assert retry_after_seconds({"Retry-After": "1e300"}) == 3600.0  # a server cannot park us for ages
