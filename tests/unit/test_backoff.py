"""worker.backoff: the one formula behind every retry wait of the worker."""

from __future__ import annotations

import random

from worker.ai import BACKOFF_BASE_SECONDS, BACKOFF_CAP_SECONDS
from worker.backoff import backoff


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    assert [backoff(n, base=0.25, cap=4.0) for n in range(1, 8)] == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_backoff_survives_huge_and_non_positive_attempt_numbers() -> None:
    assert backoff(10**9, base=0.5, cap=8.0) == 8.0
    assert backoff(0, base=0.5, cap=8.0) == backoff(-3, base=0.5, cap=8.0) == 0.5


def test_backoff_with_jitter_is_full_jitter_under_the_cap() -> None:
    rng = random.Random(42)
    for attempt in range(1, 40):
        ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
        delays = [backoff(attempt, base=BACKOFF_BASE_SECONDS, cap=BACKOFF_CAP_SECONDS, rng=rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        # Full jitter spreads over the whole range, not just near the ceiling.
        assert min(delays) < ceiling * 0.1 and max(delays) > ceiling * 0.9


def test_backoff_with_jitter_is_reproducible_for_a_seed() -> None:
    def delay(seed: int) -> float:
        return backoff(3, base=BACKOFF_BASE_SECONDS, cap=BACKOFF_CAP_SECONDS, rng=random.Random(seed))

    assert delay(5) == delay(5)

