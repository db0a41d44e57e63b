"""Prints the scenario lines collected by tests/reliability/harness.py at the end of the run."""

from __future__ import annotations

import pytest

from tests.reliability.harness import LINES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if LINES:
        terminalreporter.section("reliability scenarios")
        for line in LINES:
            terminalreporter.write_line(line)
