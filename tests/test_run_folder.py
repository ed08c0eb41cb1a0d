"""A run folder that nothing can corrupt (issue 31): one writer at a time, nothing rewritten before a command is
accepted, checkpoints checked file by file with a fallback, resumes on other data refused, and exports that cannot
name the wrong classes. Each test is a fault a careless user or a flaky machine produced, and the state it must
leave.

The runs are ``tiny_config``'s (ResNet-18 at 32 px, 3 classes x 12 generated images, batch 12: 3 steps per
epoch), in-process unless the fault needs a second process.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import paddle
import pytest

from rifle_paddle.engine import RunError, train
from rifle_paddle.engine.checkpoint_store import (MANIFEST_FILE, NETWORK_FILE, STATE_FILE, CheckpointStore,
                                                  DamagedCheckpoint, Position)
from rifle_paddle.engine.run_lock import LOCK_FILE
from test_resume import CrashAt  # a crash (an exception out of fit) at the start of a chosen batch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUIET = "log.visualdl=false"


def crashed_run(cfg, epoch: int = 1, step: int = 1) -> str:
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, callbacks=[CrashAt(epoch, step)])
    return os.path.join(cfg["run"]["output_dir"], cfg["run"]["name"])


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def copied_data(tiny_folder: str, tmp_path, name: str = "data") -> str:
    root = str(tmp_path / name)
    shutil.copytree(tiny_folder, root)
    return root


# ------------------------------------------------------------------------------------ nothing rewritten before accepted
@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_a_refused_resume_on_data_with_another_class_leaves_classes_json_as_it_was(tiny_config, tiny_folder, tmp_path):
    """Issue 31.1a: before, the refusal came from the network ("fc.weight [512, 3] vs [512, 4]") after classes.json
    had been rewritten with 4 names, and the export then named the wrong classes."""
    root = copied_data(tiny_folder, tmp_path)
    run_dir = crashed_run(tiny_config(f"data.root={root}", QUIET))
    before = read(os.path.join(run_dir, "classes.json"))
    for split in ("train", "test"):  # one class folder added while the run was stopped
        shutil.copytree(os.path.join(root, split, sorted(os.listdir(os.path.join(root, split)))[0]),
                        os.path.join(root, split, "zz_new_class"))
    with pytest.raises(RunError, match="classes have changed") as refused:
        train(tiny_config(f"data.root={root}", QUIET, "train.resume=auto"))
    assert "added zz_new_class" in str(refused.value)
    assert read(os.path.join(run_dir, "classes.json")) == before


# ------------------------------------------------------------------------------------------------ the data changed
@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_a_resume_on_changed_data_is_refused_and_allowed_only_explicitly(tiny_config, tiny_folder, tmp_path):
    """Issue 31.5: 30 images added and 10 removed, and --resume exited 0 without a word."""
    root = copied_data(tiny_folder, tmp_path)
    run_dir = crashed_run(tiny_config(f"data.root={root}", QUIET))
    cls = sorted(os.listdir(os.path.join(root, "train")))[0]
    folder = os.path.join(root, "train", cls)
    first = sorted(os.listdir(folder))[0]
    shutil.copyfile(os.path.join(folder, first), os.path.join(folder, "added.jpg"))
    with pytest.raises(RunError, match="the data has changed") as refused:
        train(tiny_config(f"data.root={root}", QUIET, "train.resume=auto"))
    message = str(refused.value)
    assert "train images: 36 in the run, 37 now" in message and f"{cls} 12 -> 13" in message, message
    assert "train.resume_data_changed=allow" in message
    result = train(tiny_config(f"data.root={root}", QUIET, "train.resume=auto", "train.resume_data_changed=allow"))
    assert result["num_train"] == 37
    assert "resuming" in read(os.path.join(run_dir, "train.log")).decode()
    assert "on changed data" in read(os.path.join(run_dir, "train.log")).decode()


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_moving_the_data_is_not_a_change(tiny_config, tiny_folder, tmp_path):
    """data.root may change at a resume (the data moved to a faster disk): the record names files relative to it."""
    root = copied_data(tiny_folder, tmp_path)
    crashed_run(tiny_config(f"data.root={root}", QUIET))
    moved = str(tmp_path / "moved")
    shutil.move(root, moved)
    assert train(tiny_config(f"data.root={moved}", QUIET, "train.resume=auto"))["steps"] == 2 * 3


# ------------------------------------------------------------------------------------ auto never removes results
@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
@pytest.mark.parametrize("damage", ["checkpoints removed", "state files missing"])
def test_auto_resume_refuses_a_folder_with_results_but_no_intact_checkpoint(tiny_config, damage):
    """Issue 31.2: with checkpoints/ missing, or its checkpoints lacking state.pdstate (an interrupted copy),
    train.resume=auto silently started over: best.pdparams and metrics.json replaced, exit 0."""
    cfg = tiny_config(QUIET, "train.epochs=1")
    run_dir = train(cfg)["run_dir"]
    store = CheckpointStore(run_dir)
    if damage == "checkpoints removed":
        store.clear()
    else:
        for _, path in store.complete():
            os.remove(os.path.join(path, STATE_FILE))
    kept = {name: read(os.path.join(run_dir, name)) for name in ("best.pdparams", "metrics.json", "config.yaml")}
    with pytest.raises(RunError, match="holds results") as refused:
        train(tiny_config(QUIET, "train.epochs=1", "train.resume=auto"))
    message = str(refused.value)
    assert "run.overwrite=true" in message and "run.name=" in message and "checkpoints/" in message, message
    assert {name: read(os.path.join(run_dir, name)) for name in kept} == kept
    assert not os.path.exists(os.path.join(run_dir, LOCK_FILE))


# ----------------------------------------------------------------------------------- damaged checkpoints, fallback
@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one_with_a_warning(tiny_config):
    """Issue 31.4: one checkpoint was kept; a truncated state.pdstate ended the run with Paddle's parse error."""
    cfg = tiny_config(QUIET, "train.epochs=3")
    run_dir = crashed_run(cfg, epoch=2, step=1)
    store = CheckpointStore(run_dir)
    assert [p for p, _ in store.complete()] == [Position(1), Position(2)]  # the previous one is kept
    newest = os.path.join(store.path(Position(2)), STATE_FILE)
    with open(newest, "r+b") as f:
        f.truncate(os.path.getsize(newest) // 2)
    result = train(tiny_config(QUIET, "train.epochs=3", "train.resume=auto"))
    assert result["steps"] == 3 * 3 and len(result["epochs"]) == 3
    warned = [line for line in read(os.path.join(run_dir, "train.log")).decode().splitlines()
              if "checkpoint damaged" in line]
    assert len(warned) == 1 and newest in warned[0] and "bytes" in warned[0], warned
    assert [p for p, _ in store.complete()] == [Position(2), Position(3)]  # the damaged one was replaced


@pytest.mark.parametrize("damage,said", [
    ("truncated state", "state.pdstate has"), ("empty state", "state.pdstate has 0 bytes"),
    ("no network", "network.pdparams is missing"), ("flipped byte", "network.pdparams has other bytes"),
])
def test_a_damaged_checkpoint_is_named_file_by_file(tmp_path, damage, said):
    """Before: Paddle's parse error, ``EOFError: Ran out of input`` or ``'network.pdparams'``, no file named."""
    store = CheckpointStore(str(tmp_path))
    path = store.save(Position(1), {NETWORK_FILE: {"w": paddle.ones([64])}, "optimizer.pdopt": {},
                                    STATE_FILE: {"format": 1, "n": 1}})
    network, state = os.path.join(path, NETWORK_FILE), os.path.join(path, STATE_FILE)
    if damage == "truncated state":
        with open(state, "r+b") as f:
            f.truncate(5)
    elif damage == "empty state":
        open(state, "wb").close()
    elif damage == "no network":
        os.remove(network)
    else:
        data = bytearray(read(network))
        data[len(data) // 2] ^= 0xFF
        with open(network, "wb") as f:
            f.write(bytes(data))
    with pytest.raises(DamagedCheckpoint, match=said):
        store.load(path)


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_resume_with_every_checkpoint_damaged_says_which_file(tiny_config):
    cfg = tiny_config(QUIET, "train.epochs=3")
    run_dir = crashed_run(cfg, epoch=2, step=1)
    for _, path in CheckpointStore(run_dir).complete():
        os.remove(os.path.join(path, NETWORK_FILE))
    with pytest.raises(RunError) as refused:
        train(tiny_config(QUIET, "train.epochs=3", f"train.resume={run_dir}"))
    message = str(refused.value)
    assert "no intact checkpoint" in message and message.count("network.pdparams is missing") == 2, message


def test_last_pdparams_is_a_file_of_its_own(tmp_path):
    """Issue 31.4: last.pdparams was a hard link into the checkpoint; a user overwriting it changed what a resume
    trained on (top-1 0.74 instead of 0.76, no warning)."""
    store = CheckpointStore(str(tmp_path))
    path = store.save(Position(1), {NETWORK_FILE: {"w": paddle.ones([4])}, STATE_FILE: {"n": 1}})
    last = str(tmp_path / "last.pdparams")
    checkpoint = read(os.path.join(path, NETWORK_FILE))
    with open(last, "r+b") as f:  # edited in place, as a careless script would
        f.seek(len(checkpoint) - 4)
        f.write(b"\0\0\0\0")
    assert read(os.path.join(path, NETWORK_FILE)) == checkpoint
    assert os.stat(last).st_ino != os.stat(os.path.join(path, NETWORK_FILE)).st_ino


def test_the_store_keeps_two_checkpoints_and_sets_a_damaged_one_aside(tmp_path):
    store = CheckpointStore(str(tmp_path))
    for epoch in (1, 2, 3):
        store.save(Position(epoch), {NETWORK_FILE: {"w": paddle.full([2], float(epoch))}, STATE_FILE: {"n": epoch}})
    assert [p for p, _ in store.complete()] == [Position(2), Position(3)]
    assert json.loads(read(os.path.join(store.path(Position(3)), MANIFEST_FILE)))["files"][STATE_FILE]["bytes"] > 0
    aside = store.set_aside(store.path(Position(3)))
    assert [p for p, _ in store.complete()] == [Position(2)] and os.path.isdir(aside)
    store.save(Position(3, 1), {NETWORK_FILE: {"w": paddle.ones([2])}, STATE_FILE: {"n": 4}})
    assert sorted(os.listdir(store.root)) == [Position(2).name, Position(3, 1).name]  # the damaged one is gone


# ---------------------------------------------------------------------------------------- one writer per folder
@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_a_second_training_into_a_running_run_is_refused_naming_the_holder(tiny_config, tmp_path):
    """Issue 31.3: no lock; two trainings into one run name left one's config.yaml, the other's metrics.json and a
    checkpoint holding only state.pdstate. A live process on this host holds the lock here."""
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        cfg = tiny_config(QUIET, "train.epochs=1")
        run_dir = os.path.join(cfg["run"]["output_dir"], cfg["run"]["name"])
        os.makedirs(run_dir)
        with open(os.path.join(run_dir, LOCK_FILE), "w") as f:
            json.dump({"pid": holder.pid, "host": socket.gethostname(), "started": time.time(),
                       "command": "rifle-train -o run.name=test"}, f)
        for overrides in ([], ["train.resume=auto"], ["run.overwrite=true"]):
            with pytest.raises(RunError, match=f"being written by another process \\(PID {holder.pid} on "):
                train(tiny_config(QUIET, "train.epochs=1", *overrides))
        assert os.listdir(run_dir) == [LOCK_FILE]  # nothing written, nothing emptied
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone (a crash, kill -9): its lock is stale and recovered
    result = train(tiny_config(QUIET, "train.epochs=1"))
    assert result["final"]["acc_top1"] >= 0 and not os.path.exists(os.path.join(run_dir, LOCK_FILE))


def test_a_lock_from_another_host_is_never_taken_over(tiny_config):
    cfg = tiny_config(QUIET)
    run_dir = os.path.join(cfg["run"]["output_dir"], cfg["run"]["name"])
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, LOCK_FILE), "w") as f:
        json.dump({"pid": 1, "host": "other-node-17", "started": time.time()}, f)
    with pytest.raises(RunError, match=f"PID 1 on other-node-17.*delete {os.path.join(run_dir, LOCK_FILE)}"):
        train(tiny_config(QUIET, "train.resume=auto"))


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_two_real_trainings_into_one_run_name_one_is_refused(tmp_path, tiny_folder, tiny_pretrained):
    """Two ``train.py`` processes with ``train.resume=auto`` into one name: the second exits 1 at once with one
    error line, and the first finishes a run of its own."""
    args = ["model.arch=resnet18", f"model.pretrained={tiny_pretrained}", "data.name=folder",
            f"data.root={tiny_folder}", "data.image_size=32", "data.resize_size=32", "data.batch_size=12", "data.num_workers=0", "train.epochs=2",
            "log.visualdl=false", "run.device=cpu", f"run.output_dir={tmp_path / 'out'}", "run.name=shared",
            "train.resume=auto"]
    cmd = [sys.executable, os.path.join(REPO, "train.py"), *[a for o in args for a in ("-o", o)]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO}
    run_dir = tmp_path / "out" / "shared"
    first = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not (run_dir / "config.yaml").exists():
        assert first.poll() is None and time.time() < deadline, first.communicate()[0][-2000:]
        time.sleep(0.05)
    second = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out[-2000:]
    assert second.returncode == 1 and "Traceback" not in second.stderr, second.stderr[-2000:]
    errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"PID {first.pid} on {socket.gethostname()}" in errors[0], second.stderr
    log_text = (run_dir / "train.log").read_text()
    assert log_text.count("run directory:") == 1  # one writer: no line twice
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == 2 * 3


# -------------------------------------------------------------------------------------------------- bad input
def test_a_single_class_is_refused(tiny_config, tiny_folder, tmp_path):
    """Issue 31.6: one class folder trained "perfectly" (loss 0.0000, top-1 1.0000, exit 0)."""
    root = copied_data(tiny_folder, tmp_path)
    for split in ("train", "test"):
        for cls in sorted(os.listdir(os.path.join(root, split)))[1:]:
            shutil.rmtree(os.path.join(root, split, cls))
    cfg = tiny_config(f"data.root={root}", QUIET)
    with pytest.raises(RunError, match="the data has 1 class .*a classifier needs at least 2"):
        train(cfg)
    assert not os.path.exists(os.path.join(cfg["run"]["output_dir"], cfg["run"]["name"]))


def _train_cli(tiny_config_overrides, monkeypatch=None):
    from rifle_paddle.app.cli import train_main
    with pytest.raises(SystemExit) as ended:
        train_main([a for o in tiny_config_overrides for a in ("-o", o)])
    return str(ended.value.code)


def _cli_overrides(tiny_folder, tiny_pretrained, output_dir):
    return ["model.arch=resnet18", f"model.pretrained={tiny_pretrained}", "data.name=folder",
            f"data.root={tiny_folder}", "data.image_size=32", "data.resize_size=32", "data.num_workers=0",
            "run.device=cpu", QUIET, f"run.output_dir={output_dir}", "run.name=run"]


def test_an_output_dir_under_a_file_is_one_error_line(tiny_folder, tiny_pretrained, tmp_path):
    """Issue 31.7: NotADirectoryError with a traceback."""
    (tmp_path / "notes.txt").write_text("a file")
    message = _train_cli(_cli_overrides(tiny_folder, tiny_pretrained, tmp_path / "notes.txt" / "out"))
    assert message.startswith("error: cannot create the run directory") and "notes.txt is a file" in message


def test_a_read_only_output_dir_is_one_error_line(tiny_folder, tiny_pretrained, tmp_path, monkeypatch):
    """Issue 31.7: ``OSError: [Errno 30] Read-only file system`` with a traceback (simulated: the tests run as
    root, for whom permissions do not stop a write)."""
    real = os.makedirs

    def read_only(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "makedirs", read_only)
    message = _train_cli(_cli_overrides(tiny_folder, tiny_pretrained, tmp_path / "ro"))
    assert message.startswith("error: cannot create the run directory") and "Read-only file system" in message


def test_an_unknown_architecture_is_named_before_any_weights():
    """Issue 31.7: model.arch=resnet19 was reported as a pretrained-weights problem too."""
    from rifle_paddle.config import ConfigError, load_config
    with pytest.raises(ConfigError) as refused:
        load_config(None, ["model.arch=resnet19"], paths_for="train")
    message = str(refused.value)
    assert "unknown architecture 'resnet19'" in message and "choices: resnet101" in message
    assert "pretrained" not in message, message


def test_the_resume_hint_is_the_command_the_user_ran(tiny_config, monkeypatch):
    """Issue 31.7: ``python train.py --resume`` was printed to ``rifle-train`` users."""
    from rifle_paddle.engine.resume import TrainingInterrupted

    class CtrlC(paddle.callbacks.Callback):
        def on_train_batch_begin(self, step, logs=None):
            if step == 1:
                os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/rifle-train", "-c", "x.yaml"])
    with pytest.raises(TrainingInterrupted) as stop:
        train(tiny_config(QUIET), callbacks=[CtrlC()])
    assert "resume with: rifle-train --resume " in str(stop.value) and "train.py" not in str(stop.value)
    from rifle_paddle.engine.resume import resume_command
    monkeypatch.setattr(sys, "argv", ["../rifle/train.py"])
    assert resume_command("output/r") == "python ../rifle/train.py --resume output/r"


# ----------------------------------------------------------------------------------------------------- export
@pytest.fixture
def finished_run(tiny_config):
    return train(tiny_config(QUIET, "train.epochs=1"))["run_dir"]


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_export_refuses_a_run_folder_as_out(finished_run, tiny_config):
    """Issue 31.1b: ``rifle-export runA --out runB`` (exit 0) replaced run B's classes.json."""
    from rifle_paddle.deploy.export import main as export_main
    other = train(tiny_config(QUIET, "train.epochs=1", "run.name=other"))["run_dir"]
    before = {name: read(os.path.join(other, name)) for name in os.listdir(other) if name.endswith((".json", ".yaml"))}
    assert export_main([finished_run, "--out", other]) == 1
    assert {name: read(os.path.join(other, name)) for name in before} == before
    assert not os.path.exists(os.path.join(other, "inference.json"))


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_export_refuses_class_names_that_do_not_fit_the_outputs(finished_run, capsys):
    from rifle_paddle.deploy.export import main as export_main
    with open(os.path.join(finished_run, "classes.json"), "w") as f:
        json.dump({"data": "folder", "classes": ["a", "b", "c", "d"]}, f)
    assert export_main([finished_run, "--out", os.path.join(finished_run, "exported")]) == 1
    assert "3 outputs but classes.json names 4 classes" in capsys.readouterr().err


# ------------------------------------------------------------------------- found by the battery (docs' promises)
def test_resume_given_a_checkpoint_folder_names_the_run_folder(tiny_config, tmp_path):
    """``--resume output/run/checkpoints/epoch_0002`` said only "is it a run directory?"."""
    from rifle_paddle.app.cli import train_main
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints" / "epoch_0002").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("run: {}\n")
    with pytest.raises(SystemExit) as ended:
        train_main(["--resume", str(run_dir / "checkpoints" / "epoch_0002")])
    assert f"--resume takes the run folder: --resume {run_dir}" in str(ended.value.code)


@pytest.mark.parametrize("name", ["..", "a/../..", "/tmp/elsewhere"])
def test_a_run_name_outside_the_output_dir_is_refused(name):
    """``run.name=..`` (with ``run.overwrite=true``) made the output folder's parent the run folder: emptied when it
    held a config.yaml."""
    from rifle_paddle.config import ConfigError, load_config
    with pytest.raises(ConfigError, match="must name a folder inside run.output_dir"):
        load_config(None, [f"run.name={name}", "run.overwrite=true"])


def test_a_lock_that_is_not_a_file_is_named(tiny_config):
    """A ``run.lock`` folder (made by hand, or copied) read as a lock "being written": PID ?, host ?."""
    cfg = tiny_config(QUIET)
    lock = os.path.join(cfg["run"]["output_dir"], cfg["run"]["name"], LOCK_FILE)
    os.makedirs(lock)
    with pytest.raises(RunError, match=f"{lock} is not a file"):
        train(cfg)


def test_the_lock_holder_s_command_is_shortened_in_the_message():
    from rifle_paddle.engine.run_lock import _describe
    line = _describe({"pid": 7, "host": "h", "started": 0, "command": "train.py " + "-o a.b=c " * 100})
    assert len(line) < 160 and line.endswith("...")


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_an_overwrite_that_cannot_start_gives_the_old_run_back(tiny_config, tmp_path):
    """``run.overwrite=true`` emptied the folder before the data and the weights were checked: a typo in the new
    command (here a damaged pretrained file) cost the old run, and left nothing in its place."""
    from rifle_paddle.models import PretrainedWeightsError
    run_dir = train(tiny_config(QUIET, "train.epochs=1"))["run_dir"]
    with open(os.path.join(run_dir, "eval.json"), "w") as f:  # an evaluation of the old run
        f.write("{}")
    before = {name: read(os.path.join(run_dir, name)) for name in os.listdir(run_dir)
              if os.path.isfile(os.path.join(run_dir, name))}
    bad = tmp_path / "bad.pdparams"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises((PretrainedWeightsError, RunError, ValueError)):
        train(tiny_config(QUIET, "train.epochs=1", "run.overwrite=true", f"model.pretrained={bad}"))
    after = {name: read(os.path.join(run_dir, name)) for name in os.listdir(run_dir)
             if os.path.isfile(os.path.join(run_dir, name))}
    assert after == before
    assert sorted(os.listdir(run_dir)) == sorted(set(before) | {"checkpoints"} | ({"vdl"} & set(os.listdir(run_dir))))
    train(tiny_config(QUIET, "train.epochs=1", "run.overwrite=true", "train.save_best=false"))
    assert "best.pdparams" not in os.listdir(run_dir) and ".replaced" not in os.listdir(run_dir)


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_a_checkpoint_from_before_manifests_and_data_records_still_resumes(tiny_config):
    """Runs interrupted under the previous version: no manifest.json, no data record in the state."""
    run_dir = crashed_run(tiny_config(QUIET))
    store = CheckpointStore(run_dir)
    for _, path in store.complete():
        os.remove(os.path.join(path, MANIFEST_FILE))
        state = paddle.load(os.path.join(path, STATE_FILE))
        for key in ("data", "manifested"):
            state.pop(key)
        paddle.save(state, os.path.join(path, STATE_FILE))
    assert train(tiny_config(QUIET, "train.resume=auto"))["steps"] == 2 * 3
