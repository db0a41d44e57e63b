"""Fixtures of the tests that run the worker as processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devkit.processes import WorkerProcess


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    """Worker processes a test starts (appends); each is closed at the end, whatever the test left running."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.close()
