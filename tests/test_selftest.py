"""``rifle-selftest`` on the CPU: it runs what the CPU can, says what it skipped and why, and fails loudly."""
from __future__ import annotations

from rifle_paddle.app import selftest
from rifle_paddle.app.selftest import FAIL, PASS, SKIP, CheckFailed, Result, verdict


def test_on_the_cpu_it_runs_what_it_can_and_a_failed_check_fails_the_verdict(tmp_path, capsys, monkeypatch):
    def broken(self):
        raise CheckFailed("train losses [nan]")

    monkeypatch.setattr(selftest.SelfTest, "check_dtnh", broken)
    code = selftest.main(["--workdir", str(tmp_path)])  # with the 2-process launch (gloo): RIFLE, L2-SP, DTNH
    lines = capsys.readouterr().out.splitlines()
    checks = [line for line in lines if line.startswith("[")]
    assert len(checks) == 7  # one line per check
    status = {line[7:35].strip(): line[1:5].strip() for line in checks}
    assert status == {"environment": PASS, "AMP O1 overflow step": SKIP, "AMP O2 overflow step": SKIP,
                      "train + eval.py round trip": PASS, "crash + resume": PASS, "L2-SP + DTNH": FAIL,
                      "two processes": PASS}
    assert "needs a GPU" in next(line for line in checks if "AMP O2" in line)
    assert "train losses [nan]" in next(line for line in checks if "DTNH" in line)
    assert lines[-1].startswith("NOT READY") and code == 1
    assert (tmp_path / "crash_resume.log").read_text()  # each check's output is kept


def test_the_verdict_names_what_was_skipped():
    results = [Result("a", PASS, "", 0.0), Result("b", SKIP, "needs a GPU", 0.0)]
    assert verdict(results) == "READY: 1 check(s) passed, 1 skipped (b)"
    assert verdict(results + [Result("c", FAIL, "x", 0.0)]).startswith("NOT READY: 1 check(s) failed (c)")
