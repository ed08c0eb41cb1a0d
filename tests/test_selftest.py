"""``rifle-selftest`` on the CPU: it runs what the CPU can, says what it skipped and why, and fails loudly."""
from __future__ import annotations

import pytest

from rifle_paddle.app import selftest
from rifle_paddle.app.selftest import FAIL, PASS, SKIP, CheckFailed, Result, verdict


@pytest.mark.slow  # other processes (docs/development.md: Tests)
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


def _parsed_by_the_launcher(cmd: list[str], monkeypatch):
    """``cmd`` (``python -m paddle.distributed.launch ...``) read by the launcher's own argument parser."""
    from paddle.distributed.launch.context.args_envs import parse_args
    assert cmd[1:3] == ["-m", "paddle.distributed.launch"]
    monkeypatch.setattr("sys.argv", ["launch", *cmd[3:]])
    args, unknown = parse_args()
    return args, unknown


@pytest.mark.parametrize("gpu", [True, False])
@pytest.mark.parametrize("nproc", [1, 2, 4, 8])
def test_the_launch_command_is_what_paddles_launcher_reads(nproc, gpu, monkeypatch):
    """On a machine with 2 or more GPUs the self-test put ``--devices 0,1`` between ``--nproc_per_node`` and its
    value, and the launcher stopped ("argument --nproc_per_node: expected one argument"). The self-test now builds
    its command with ``rifle-train --gpus``'s own ``launch_command``."""
    from rifle_paddle.app.launch import launch_command
    script_args = ["/tmp/out", "-o", "train.epochs=2", "-o", "run.name=x"]
    cards = ",".join(str(i) for i in range(nproc))
    cmd = launch_command(script_args, cards if gpu else None, None if gpu else nproc, "/tmp/log",
                         script="/tmp/train_entry.py")
    args, unknown = _parsed_by_the_launcher(cmd, monkeypatch)
    assert not unknown and args.log_dir == "/tmp/log"
    if gpu:  # one rank per listed card
        assert args.devices == cards and args.nproc_per_node is None
    else:
        assert args.nproc_per_node == nproc and args.devices is None
    assert args.training_script == "/tmp/train_entry.py" and args.training_script_args == script_args


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    return selftest.SelfTest(str(tmp_path_factory.mktemp("selftest")), launch=False)


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_the_round_trip_fails_when_eval_loads_a_broken_network(suite, monkeypatch):
    """eval.py scored chance (0.333) like the 8-step run, also with a zeroed head: the check passed. It compares
    the test loss of last.pdparams with the trained network's own outputs image by image."""
    import rifle_paddle.engine.evaluation as evaluation
    suite.check_eval_round_trip()  # the real path passes
    real = evaluation.load_weights

    def zeroed_head(network, state, *args, **kwargs):  # eval loads the weights, then the head is lost
        real(network, state, *args, **kwargs)
        head = network.fc
        head.weight.set_value(head.weight * 0)
        head.bias.set_value(head.bias * 0)

    monkeypatch.setattr(evaluation, "load_weights", zeroed_head)
    with pytest.raises(CheckFailed, match="test loss"):
        suite.check_eval_round_trip()


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_the_dtnh_check_fails_when_no_step_updates_the_weights(suite, monkeypatch):
    """It asked for finite losses only, which a run whose every step is skipped (an AMP loss scale that always
    overflows) has too."""
    import paddle
    monkeypatch.setattr(paddle.optimizer.Momentum, "step", lambda self: None)
    with pytest.raises(CheckFailed, match="did not move"):
        suite.check_dtnh()
