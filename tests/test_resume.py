"""Resuming: atomic checkpoints, config compatibility, and real interrupted runs that must end where an
uninterrupted one ends (same steps, same RIFLE events, same weights).

The runs: ResNet-18 at 32 px on 2 classes x 8 generated images, batch 4 (4 steps per epoch), 5 epochs, RIFLE at
the start of epoch 2. References run in-process; interrupted runs are real ``train.py`` processes that receive
SIGKILL or SIGINT, or in-process runs that crash or get a Ctrl-C at a chosen point.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest

from rifle_paddle.app.cli import train_main
from rifle_paddle.config import load_config
from rifle_paddle.engine import RunError, train
from rifle_paddle.engine.checkpoint_store import STATE_FILE, CheckpointStore, Position
from rifle_paddle.engine.resume import EXECUTION_KEYS, TrainingInterrupted, config_differences

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS, STEPS_PER_EPOCH, RIFLE_EPOCH = 5, 4, 2


@pytest.fixture(scope="module")
def workspace(module_tmp_path):
    """A tiny image folder and a tiny 'pretrained' ResNet-18 checkpoint, and where runs go."""
    from rifle_paddle.data.synthetic import make_image_folder
    from rifle_paddle.models import create_model
    root = module_tmp_path
    data = make_image_folder(str(root / "data"), num_classes=2, train_per_class=8, test_per_class=2, size=32, seed=0)
    paddle.seed(7)
    pretrained = str(root / "pretrained.pdparams")
    paddle.save(create_model("resnet18", num_classes=10).state_dict(), pretrained)
    return {"data": data, "pretrained": pretrained, "output": str(root / "output")}


def run_overrides(workspace, name: str) -> list[str]:
    return ["model.arch=resnet18", f"model.pretrained={workspace['pretrained']}", f"data.root={workspace['data']}",
            "data.image_size=32", "data.resize_size=32", "data.batch_size=4", "data.eval_batch_size=8",
            "data.num_workers=0", f"train.epochs={EPOCHS}", "train.log_freq=1", "log.visualdl=false",
            "run.device=cpu", "run.seed=3", f"run.output_dir={workspace['output']}", f"run.name={name}",
            "rifle.enabled=true", f"rifle.epochs=[{RIFLE_EPOCH}]", "rifle.min_tail_epochs=1",
            "rifle.reset_optimizer_state=true"]  # the reset accumulators are part of the state compared


@pytest.fixture(scope="module")
def reference(workspace):
    """The uninterrupted run."""
    return train(load_config(None, run_overrides(workspace, "reference")))


@pytest.fixture(autouse=True)
def runs_removed_once_passed(request):
    """A test's own runs (300 MB of checkpoints each) are removed when it passes; the shared reference stays. The
    module's folder would otherwise hold every run until the module ends, 5 GB."""
    if "workspace" not in request.fixturenames:  # a test without runs does not build the workspace for this
        yield
        return
    output, failed_before = request.getfixturevalue("workspace")["output"], request.session.testsfailed
    before = set(os.listdir(output)) if os.path.isdir(output) else set()
    yield
    if request.session.testsfailed == failed_before and os.path.isdir(output):
        for name in set(os.listdir(output)) - before - {"reference"}:
            shutil.rmtree(os.path.join(output, name), ignore_errors=True)


def start_train_process(workspace, name: str, *extra: str) -> subprocess.Popen:
    """``train.py`` in its own session (process group), as a terminal would run it."""
    args = [sys.executable, os.path.join(REPO, "train.py")]
    for override in run_overrides(workspace, name) + list(extra):
        args += ["-o", override]
    return subprocess.Popen(args, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def read_until(process: subprocess.Popen, *markers: str) -> None:
    """Read the process' output until each marker has appeared, in order."""
    for marker in markers:
        while marker not in (line := process.stdout.readline()):
            if not line and process.poll() is not None:
                pytest.fail(f"training ended before printing {marker!r}")


def wait_for(path: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if process.poll() is not None:
            pytest.fail(f"training ended before {path} appeared:\n{process.communicate()[0][-2000:]}")
        if time.time() > deadline:
            process.kill()
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.005)


def metrics(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return json.load(f)


def rifle_events(record: dict) -> list:
    """Epoch, weight norms and number of reset accumulators of each re-initialization (events name parameters by
    their unique names, which differ between runs built in one process)."""
    return [(e["epoch"], sorted((r["norm_before"], r["norm_after"]) for r in e.values() if isinstance(r, dict)),
             len(e["reset_accumulators"])) for e in record["rifle_events"]]


def assert_same_weights(run_dir: str, reference_dir: str) -> None:
    """The two runs' ``last.pdparams`` hold the same parameters, equal within float noise."""
    ours = paddle.load(os.path.join(run_dir, "last.pdparams"))
    theirs = paddle.load(os.path.join(reference_dir, "last.pdparams"))
    assert ours.keys() == theirs.keys()
    for key in ours:
        np.testing.assert_allclose(ours[key].numpy(), theirs[key].numpy(), atol=1e-5, err_msg=key)


def assert_same_run(run_dir: str, reference: dict) -> None:
    """Same number of steps, same RIFLE events, same per-epoch record and (within float noise) the same weights."""
    resumed = metrics(run_dir)
    assert resumed["steps"] == reference["steps"] == EPOCHS * STEPS_PER_EPOCH
    assert rifle_events(resumed) == rifle_events(reference)
    assert [e["epoch"] for e in resumed["rifle_events"]] == [RIFLE_EPOCH + 1]  # metrics.json counts from 1
    keys = ("epoch", "train_loss", "train_acc_top1", "lr", "test_acc_top1")
    for got, want in zip(resumed["epochs"], reference["epochs"], strict=True):
        assert {k: got.get(k) for k in keys} == pytest.approx({k: want.get(k) for k in keys}, abs=1e-6)
    assert_same_weights(run_dir, reference["run_dir"])
    opt = paddle.load(os.path.join(run_dir, "last.pdopt"))["LR_Scheduler"]
    assert opt == paddle.load(os.path.join(reference["run_dir"], "last.pdopt"))["LR_Scheduler"]


# ------------------------------------------------------------------------------------------------- real runs
class At(paddle.callbacks.Callback):
    """Runs ``action`` at the start of a given batch: a crash (an exception out of fit) or a Ctrl-C."""

    def __init__(self, epoch: int, step: int, action):
        super().__init__()
        self.at, self.epoch, self.action = (epoch, step), None, action

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, step, logs=None):
        if (self.epoch, step) == self.at:
            self.action()


def _crash():
    raise RuntimeError("simulated crash")


def CrashAt(epoch: int, step: int) -> At:
    return At(epoch, step, _crash)


def CtrlCAt(epoch: int, step: int) -> At:
    """Ctrl-C at the start of a given batch (the checkpointer saves at the next one: mid-epoch)."""
    return At(epoch, step, lambda: os.kill(os.getpid(), signal.SIGINT))


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_a_crash_in_a_rifle_epoch_resumes_to_the_same_weights(workspace, reference):
    """The hardest boundary: the resumed epoch starts with RIFLE re-drawing the head and resetting its momentum,
    before the restored optimizer has made any step."""
    overrides = run_overrides(workspace, "crash")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(load_config(None, overrides), callbacks=[CrashAt(RIFLE_EPOCH, 1)])
    run_dir = os.path.join(workspace["output"], "crash")
    assert CheckpointStore(run_dir).latest()[0] == Position(RIFLE_EPOCH)
    train(load_config(None, overrides + ["train.resume=auto"]))
    assert_same_run(run_dir, reference)


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_a_sweep_continues_a_crashed_run_from_its_checkpoint_instead_of_starting_over(workspace, reference):
    """``sweep`` (and ``benchmarks/evidence.py``) run a cut-short run again: it must continue from its checkpoint,
    not retrain the epochs it already paid for."""
    from types import SimpleNamespace

    from rifle_paddle.experiments import sweep
    cell = SimpleNamespace(dataset="tiny", method=SimpleNamespace(name="rifle"))
    name, seed = "tiny-rifle-s3", 3  # run_name(cell, seed); run_overrides trains seed 3 as the reference does
    overrides = run_overrides(workspace, name)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(load_config(None, overrides), callbacks=[CrashAt(RIFLE_EPOCH + 1, 2)])
    run_dir = os.path.join(workspace["output"], name)
    job = sweep.Job(cell, seed, None, overrides, run_dir, sweep._state(run_dir))
    assert job.name == name and job.state == sweep.INCOMPLETE
    sweep.train_in_process(job)
    with open(os.path.join(run_dir, "train.log"), encoding="utf-8") as f:
        assert "resuming " in f.read()  # a restart would have emptied the run directory, train.log included
    assert_same_run(run_dir, reference)


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_stateful_components_plug_in_the_l2sp_reference_through_disturblabel(workspace):
    """The regularizer's frozen pretrained reference (``RegularizedStep.state_dict``, reached through the
    DisturbLabel wrapper) is saved and restored, and DisturbLabel's draws from Paddle's generator continue."""
    def overrides(name):
        return run_overrides(workspace, name) + ["train.epochs=3", "rifle.enabled=false", "regularizer.name=l2sp",
                                                 "regularizer.alpha=0.1", "tricks.disturb_label=true"]
    reference = train(load_config(None, overrides("l2sp-reference")))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(load_config(None, overrides("l2sp")), callbacks=[CrashAt(1, 2)])
    run_dir = os.path.join(workspace["output"], "l2sp")
    state = CheckpointStore(run_dir).load(CheckpointStore(run_dir).latest()[1])[STATE_FILE]
    assert any(key.startswith("reference.") for key in state["components"]["train_step"])
    resumed = train(load_config(None, overrides("l2sp") + ["train.resume=auto"]))
    assert resumed["steps"] == reference["steps"] == 3 * STEPS_PER_EPOCH
    assert_same_weights(resumed["run_dir"], reference["run_dir"])


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_a_resumed_delta_run_takes_its_channel_attention_from_the_checkpoint(workspace):
    """DELTA scores its channels before training (12 minutes in the evidence runs); a resume must restore the
    scores, not compute them again, and still end where the uninterrupted run ends."""
    def overrides(name):
        return run_overrides(workspace, name) + ["train.epochs=3", "rifle.enabled=false", "regularizer.name=delta",
                                                 "regularizer.layers=[layer1.1.conv2]",
                                                 "regularizer.attention_batches=1"]
    reference = train(load_config(None, overrides("delta-reference")))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(load_config(None, overrides("delta")), callbacks=[CrashAt(1, 2)])
    run_dir = os.path.join(workspace["output"], "delta")
    with open(os.path.join(run_dir, "train.log"), encoding="utf-8") as f:
        assert f.read().count("DELTA: scoring the channels") == 1
    resumed = train(load_config(None, overrides("delta") + ["train.resume=auto"]))
    with open(os.path.join(run_dir, "train.log"), encoding="utf-8") as f:
        log_text = f.read()
    assert log_text.count("DELTA: scoring the channels") == 1 and "resuming " in log_text  # not scored again
    assert resumed["steps"] == reference["steps"] == 3 * STEPS_PER_EPOCH
    assert_same_weights(resumed["run_dir"], reference["run_dir"])


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_the_regularization_history_survives_a_mid_epoch_resume(workspace):
    """metrics.json's ``regularization`` (``RegularizationMonitor``) of a resumed run holds every epoch, and the
    interrupted epoch's record covers all its steps, not only those after the resume."""
    def overrides(name):
        return run_overrides(workspace, name) + ["train.epochs=3", "rifle.enabled=false", "regularizer.name=l2sp",
                                                 "regularizer.alpha=0.1", "dtnh.enabled=true"]
    reference = train(load_config(None, overrides("monitor-reference")))
    with pytest.raises(TrainingInterrupted):
        train(load_config(None, overrides("monitor")), callbacks=[CtrlCAt(1, 1)])
    run_dir = os.path.join(workspace["output"], "monitor")
    assert CheckpointStore(run_dir).latest()[0] == Position(1, 2)
    resumed = train(load_config(None, overrides("monitor") + ["train.resume=auto"]))
    assert [r["epoch"] for r in reference["regularization"]] == [1, 2, 3]
    assert all(r["steps"] == STEPS_PER_EPOCH for r in reference["regularization"])
    for got, want in zip(resumed["regularization"], reference["regularization"], strict=True):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6)


class CtrlCBeforeTraining(paddle.callbacks.Callback):
    def on_train_begin(self, logs=None):
        os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_ctrl_c_before_the_first_batch_saves_the_starting_state(workspace, reference):
    overrides = run_overrides(workspace, "early")
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match=r"interrupted \(Ctrl-C\) at the start of epoch 1") as stop:
        train(load_config(None, overrides), callbacks=[CtrlCBeforeTraining()])
    assert stop.value.exit_code == 130
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # both are back
    train(load_config(None, overrides + ["train.resume=auto"]))
    assert_same_run(os.path.join(workspace["output"], "early"), reference)


@pytest.mark.slow  # a second process (docs/development.md: Tests)
def test_sigkill_mid_epoch_then_resume_ends_like_an_uninterrupted_run(workspace, reference):
    process = start_train_process(workspace, "killed")
    run_dir = os.path.join(workspace["output"], "killed")
    read_until(process, "Epoch 4/", f"step 1/{STEPS_PER_EPOCH}")  # a batch of the 4th epoch has trained
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    assert "final" not in metrics(run_dir)  # it really died before the end
    # ... and in the middle of an epoch: after the checkpoint at that epoch's start, before the next one
    assert CheckpointStore(run_dir).latest()[0] == Position(3)
    assert len(metrics(run_dir)["epochs"]) == 3
    resumed = subprocess.run([sys.executable, os.path.join(REPO, "train.py"), "--resume", run_dir], cwd=REPO,
                             env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in open(os.path.join(run_dir, "train.log")).read()
    assert_same_run(run_dir, reference)


@pytest.mark.slow  # a second process (docs/development.md: Tests)
def test_ctrl_c_saves_mid_epoch_exits_cleanly_and_resumes_exactly(workspace, reference):
    process = start_train_process(workspace, "interrupted")
    run_dir = os.path.join(workspace["output"], "interrupted")
    read_until(process, "Epoch 2/", f"step 1/{STEPS_PER_EPOCH}")  # (1-based) epoch 1 has trained one batch
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 130, out[-2000:]
    assert "Traceback" not in out
    assert f"resume with: python {os.path.join(REPO, 'train.py')} --resume {run_dir}" in out  # as it was run
    position, path = CheckpointStore(run_dir).latest()
    assert position.step >= 1 and path in out  # saved in the middle of an epoch
    assert train_main(["--resume", run_dir]) == 0
    assert_same_run(run_dir, reference)


@pytest.mark.slow  # a second process (docs/development.md: Tests)
def test_sigterm_is_a_preemption_it_saves_exits_143_and_resumes_exactly(workspace, reference):
    """Slurm, Kubernetes and paddle.distributed.launch stop a job with SIGTERM: before, Paddle's own handler
    aborted with a C++ traceback and nothing saved."""
    process = start_train_process(workspace, "preempted")
    run_dir = os.path.join(workspace["output"], "preempted")
    read_until(process, "Epoch 2/", f"step 1/{STEPS_PER_EPOCH}")
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 143, out[-2000:]
    assert "Traceback" not in out and "interrupted (SIGTERM)" in out, out[-2000:]
    assert f"resume with: python {os.path.join(REPO, 'train.py')} --resume {run_dir}" in out
    position, path = CheckpointStore(run_dir).latest()
    assert position.step >= 1 and path in out  # saved in the middle of an epoch
    assert train_main(["--resume", run_dir]) == 0
    assert_same_run(run_dir, reference)


@pytest.mark.slow  # a second process (docs/development.md: Tests)
def test_ctrl_c_in_a_terminal_with_loader_workers_resumes_exactly(workspace):
    """A terminal's Ctrl-C reaches the whole process group, DataLoader workers included: they must keep serving
    until the main process has saved. Worker augmentation is seeded from NumPy's stream at each epoch's start."""
    workers = "data.num_workers=2"
    reference = train(load_config(None, run_overrides(workspace, "workers-reference") + [workers]))
    process = start_train_process(workspace, "workers", workers)
    read_until(process, "Epoch 2/", f"step 1/{STEPS_PER_EPOCH}")
    os.killpg(process.pid, signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in out, out[-2000:]
    assert out.count("Ctrl-C: saving a checkpoint") == 1  # said once, by the main process only
    run_dir = os.path.join(workspace["output"], "workers")
    assert CheckpointStore(run_dir).latest()[0].step >= 1
    assert train_main(["--resume", run_dir]) == 0
    assert_same_run(run_dir, reference)


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_resuming_a_finished_run_only_evaluates(workspace, reference):
    result = train(load_config(os.path.join(reference["run_dir"], "config.yaml"),
                               [f"train.resume={reference['run_dir']}"]))
    assert result["steps"] == reference["steps"] and result["final"] == pytest.approx(reference["final"])
    assert len(result["epochs"]) == EPOCHS


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_a_resume_that_changes_the_run_is_refused_with_every_difference(workspace, reference):
    run_dir = reference["run_dir"]
    with pytest.raises(RunError) as e:
        train(load_config(os.path.join(run_dir, "config.yaml"),
                          [f"train.resume={run_dir}", "train.lr=0.5", "rifle.epochs=[3]", "data.num_workers=2"]))
    message = str(e.value)
    assert "train.lr: 0.01 in the run, 0.5 now" in message and "rifle.epochs: [2] in the run, [3] now" in message
    assert "num_workers" not in message  # an execution key may change


def test_resume_without_a_checkpoint_fails_clearly(tmp_path, workspace):
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(RunError, match="no intact checkpoint"):
        train(load_config(None, run_overrides(workspace, "x") + [f"train.resume={empty}"]))


# ------------------------------------------------------------------------------------------------ the store
def test_store_commits_atomically_ignores_partial_writes_and_keeps_the_newest_two(tmp_path):
    store = CheckpointStore(str(tmp_path))
    weights = {"w": paddle.ones([2])}
    store.save(Position(1), {"network.pdparams": weights, STATE_FILE: {"n": 1}})
    # a write killed halfway: a .partial directory, and a directory whose state file was never written
    os.makedirs(os.path.join(store.root, Position(2).name + ".partial"))
    os.makedirs(os.path.join(store.root, Position(3).name))
    assert store.latest() == (Position(1), os.path.join(store.root, Position(1).name))
    path = store.save(Position(2, 5), {"network.pdparams": {"w": paddle.full([2], 2.0)}, STATE_FILE: {"n": 2}})
    assert [p for p, _ in store.complete()] == [Position(1), Position(2, 5)]  # the previous one is the fallback
    assert sorted(os.listdir(store.root)) == [Position(1).name, Position(2, 5).name]  # aborted ones are gone
    assert store.load(path)[STATE_FILE] == {"n": 2}
    published = paddle.load(str(tmp_path / "last.pdparams"))
    np.testing.assert_array_equal(published["w"].numpy(), [2.0, 2.0])
    assert Position.parse(Position(12, 345).name) == Position(12, 345) and Position.parse("epoch_x") is None


def test_config_differences_ignore_execution_keys_and_default_missing_ones():
    saved = load_config(None, ["train.lr=0.01"])
    current = load_config(None, ["train.lr=0.02", "data.num_workers=0", "train.log_freq=3", "run.device=cpu"])
    assert config_differences(saved, current) == ["train.lr: 0.01 in the run, 0.02 now"]
    del saved["tricks"]  # a checkpoint from before the section existed: its defaults applied
    assert config_differences(saved, current) == ["train.lr: 0.01 in the run, 0.02 now"]
    assert "train.resume" in EXECUTION_KEYS and "train.epochs" not in EXECUTION_KEYS


def test_the_resume_log_names_changed_execution_keys_and_defaults_the_ones_an_older_checkpoint_lacks(tmp_path):
    """The "resuming ... ; changed: ..." line lists an execution key the resume changed, as ``key old -> new``, and
    reads a key that an older checkpoint's config lacks as its default, as ``config_differences`` does: a run that
    kept the default was not changed (the log said ``train.log_freq None -> 10``)."""
    import logging
    from rifle_paddle.engine.resume import Checkpointer, ResumePoint, plain_config
    saved = plain_config(load_config(None, ["run.device=cpu"]))
    del saved["train"]["log_freq"]  # a key the saving version did not have
    state = {"config": saved, "global_step": 8, "world_size": 1}
    point = ResumePoint(str(tmp_path), Position(2), str(tmp_path / "checkpoints" / "epoch_0002"), {STATE_FILE: state})
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = logging.getLogger("rifle_paddle.engine.resume")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        Checkpointer(str(tmp_path), None, load_config(None, ["run.device=auto"]), resume=point)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    [line] = [r for r in records if r.startswith("resuming")]
    assert line.endswith("; changed: run.device 'cpu' -> 'auto'"), line
