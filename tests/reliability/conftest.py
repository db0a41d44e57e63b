"""Worker groups that are always closed, and the scenario lines printed at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import LINES, Workers


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if LINES:
        terminalreporter.section("reliability scenarios")
        for line in LINES:
            terminalreporter.write_line(line)


@pytest.fixture
def workers_for(database_url: str, tmp_path: Path) -> Iterator[list[Workers]]:
    """Worker groups a scenario starts; every one is stopped when the test ends, pass or fail."""
    made: list[Workers] = []
    yield made
    for group in made:
        group.close()
