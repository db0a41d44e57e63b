"""What the AI client makes of a server's answer, without a server: token counts, waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from worker.ai_answer import MAX_TOKENS, token_count
from worker.provider_limits import retry_after_seconds


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
