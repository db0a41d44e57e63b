"""worker.retry_policy: how often a job is delivered and started, and how long each retry waits."""

from __future__ import annotations

import random

from worker.retry_policy import (
    COMMIT_RETRY_SECONDS,
    busy_commit_delay,
    commit_retry_delay,
    max_reads,
    may_start_again,
    retry_delay_seconds,
)


def test_retry_delay_of_a_failed_job_is_2_4_8_seconds_capped_at_60() -> None:
    assert [retry_delay_seconds(n) for n in (1, 2, 3, 5, 6, 50)] == [2, 4, 8, 32, 60, 60]


def test_a_job_may_start_exactly_max_attempts_times() -> None:
    starts = 0
    while may_start_again(starts, max_attempts=3):
        starts += 1
    assert starts == 3
    assert not may_start_again(1, max_attempts=1)  # one attempt: never a second start


def test_a_message_may_be_read_three_times_per_attempt() -> None:
    assert [max_reads(n) for n in (1, 2, 5)] == [3, 6, 15]


def test_commit_retries_back_off_to_4_seconds_and_fit_the_retry_window() -> None:
    assert [commit_retry_delay(n) for n in (1, 2, 3, 4, 5, 9)] == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert sum(commit_retry_delay(n) for n in range(1, 6)) < COMMIT_RETRY_SECONDS


def test_a_busy_commit_is_retried_within_a_second_with_jitter() -> None:
    rng = random.Random(1)
    delays = [busy_commit_delay(n, rng) for n in range(1, 50)]
    assert all(0 <= d <= 1.0 for d in delays) and len(set(delays)) > 40
    assert max(busy_commit_delay(1, rng) for _ in range(100)) <= 0.05  # the first retry is quick
