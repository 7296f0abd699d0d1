"""The fuzz suite's counts, printed in the run's summary (CI logs show them without -s)."""

from __future__ import annotations

from typing import Any

REPORT: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORT:
        terminalreporter.section("fuzz counts")
        for line in REPORT:
            terminalreporter.write_line(line)
