"""The rule that keeps ``python -m pytest -m "not slow"`` quick (docs/development.md: Tests): ``--report-slow`` lists
the unmarked tests whose setup or call took over the threshold, and only those."""
from __future__ import annotations

import pytest
from conftest import SLOW_SECONDS, SlowReport


def _report(nodeid: str, when: str, duration: float, *markers: str) -> pytest.TestReport:
    return pytest.TestReport(nodeid, ("t.py", 0, nodeid), {nodeid: 1, **{m: 1 for m in markers}}, "passed", None,
                             when, duration=duration)


class _Terminal:
    def __init__(self):
        self.lines = []

    def section(self, title):
        self.lines.append(f"== {title}")

    def write_line(self, line):
        self.lines.append(line)


def test_the_report_names_unmarked_setups_and_calls_over_the_threshold_and_nothing_else():
    report = SlowReport(3.0)
    for r in (_report("t.py::quick", "call", 2.9), _report("t.py::long_call", "call", 4.5),
              _report("t.py::long_fixture", "setup", 12.0), _report("t.py::marked", "call", 30.0, "slow"),
              _report("t.py::long_teardown", "teardown", 9.0)):
        report.pytest_runtest_logreport(r)
    terminal = _Terminal()
    report.pytest_terminal_summary(terminal)
    assert terminal.lines[:3] == ["== tests not marked slow over 3 s", " 12.00s setup t.py::long_fixture",
                                  "  4.50s call  t.py::long_call"]
    assert len(terminal.lines) == 4 and "slow" in terminal.lines[3]  # the advice, once


def test_a_run_with_nothing_over_says_none():
    terminal = _Terminal()
    SlowReport(SLOW_SECONDS).pytest_terminal_summary(terminal)
    assert terminal.lines == ["== tests not marked slow over 3 s", "none"]


def test_the_option_defaults_to_the_documented_rule(pytestconfig):
    with open(pytestconfig.rootpath / "docs" / "development.md", encoding="utf-8") as f:
        assert f"over {SLOW_SECONDS:g} s on two idle cores is slow" in f.read()
