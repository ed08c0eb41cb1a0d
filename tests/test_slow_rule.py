"""The rule that keeps ``python -m pytest -m "not slow"`` quick (docs/development.md: Tests): ``--report-slow`` lists
the unmarked tests whose setup or call took over the threshold of CPU time, and only those."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from conftest import SLOW_SECONDS, SlowReport


def _item(nodeid: str, *markers: str):
    return SimpleNamespace(nodeid=nodeid, keywords={nodeid: 1, **{m: 1 for m in markers}})


class _Terminal:
    def __init__(self):
        self.lines = []

    def section(self, title):
        self.lines.append(f"== {title}")

    def write_line(self, line):
        self.lines.append(line)


def test_the_report_names_unmarked_setups_and_calls_over_the_threshold_and_nothing_else():
    report = SlowReport(3.0)
    report.note(_item("t.py::quick"), "call", 2.9, 9.0)  # a busy machine's clock says 9 s: not counted
    report.note(_item("t.py::long_call"), "call", 4.5, 5.0)
    report.note(_item("t.py::long_fixture"), "setup", 12.0, 13.0)
    report.note(_item("t.py::marked", "slow"), "call", 30.0, 31.0)
    terminal = _Terminal()
    report.pytest_terminal_summary(terminal)
    assert terminal.lines[:3] == ["== tests not marked slow over 3 s of CPU",
                                  " 12.00s CPU  13.00s wall setup t.py::long_fixture",
                                  "  4.50s CPU   5.00s wall call  t.py::long_call"]
    assert len(terminal.lines) == 4 and "slow" in terminal.lines[3]  # the advice, once


def test_a_phase_is_timed_by_this_process_cpu_not_by_the_clock():
    # Margins wide enough for the CPU that native threads left by earlier tests spend in this process meanwhile
    # (Paddle's loader threads: 0.19 s of CPU in a 1 s sleep after test_throughput's run, measured).
    report = SlowReport(0.3)
    for _ in report._timed(_item("t.py::sleeps"), "call"):
        time.sleep(0.5)  # 0.5 s on the clock, next to no CPU
    for _ in report._timed(_item("t.py::computes"), "call"):
        start = time.process_time()
        while time.process_time() - start < 0.35:
            pass
    assert [nodeid for *_, nodeid in report.over] == ["t.py::computes"]


def test_a_run_with_nothing_over_says_none():
    terminal = _Terminal()
    SlowReport(SLOW_SECONDS).pytest_terminal_summary(terminal)
    assert terminal.lines == ["== tests not marked slow over 3 s of CPU", "none"]


def test_the_option_defaults_to_the_documented_rule(pytestconfig):
    with open(pytestconfig.rootpath / "docs" / "development.md", encoding="utf-8") as f:
        assert f"over {SLOW_SECONDS:g} s on two idle cores is slow" in f.read()


@pytest.mark.slow  # starts pytest in another process, which imports Paddle through conftest
def test_the_report_option_leaves_the_test_paths_after_it_alone(pytestconfig, tmp_path):
    """``pytest --report-slow tests/x.py`` runs tests/x.py and reports; with an optional threshold value the option
    took the path for its value and refused it ("invalid float value")."""
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "pytest", "--report-slow", "tests/test_slow_rule.py", "--slow-seconds",
                           "1000", "-q", "-p", "no:cacheprovider", "-k", "says_none"],
                          cwd=pytestconfig.rootpath, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "tests not marked slow over 1000 s of CPU" in proc.stdout and "1 passed" in proc.stdout
