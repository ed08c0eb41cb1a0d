"""The note a failed run ends with when the disk where the tests write is nearly full (``conftest.py``)."""
from __future__ import annotations

import re
import shutil
import tempfile
from types import SimpleNamespace

import conftest


class Reporter:
    def __init__(self):
        self.lines = []

    def write_line(self, line, **markup):
        self.lines.append(line)


def _summary(exitstatus: int, basetemp=None) -> list[str]:
    reporter = Reporter()
    conftest.pytest_terminal_summary(reporter, exitstatus, SimpleNamespace(option=SimpleNamespace(basetemp=basetemp)))
    return reporter.lines


def test_a_failed_run_with_little_space_left_says_the_disk_may_be_the_cause(monkeypatch, tmp_path):
    free = shutil.disk_usage(tmp_path).free
    monkeypatch.setattr(conftest, "LOW_DISK_BYTES", free + 1024 ** 3)  # this disk counts as nearly full
    [line] = _summary(1, str(tmp_path))
    said = float(re.match(r"only (\d+\.\d) GB free", line).group(1))
    assert abs(said - free / 1024 ** 3) < 0.2 and str(tmp_path) in line and "full disk" in line
    assert tempfile.gettempdir() in _summary(1)[0]  # without --basetemp: the system's temporary folder
    assert _summary(0, str(tmp_path)) == []  # a passed run says nothing
    monkeypatch.setattr(conftest, "LOW_DISK_BYTES", 0)
    assert _summary(1, str(tmp_path)) == []  # enough space: nothing
