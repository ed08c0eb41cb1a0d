"""How a run ends when something goes wrong, seen from the command line: one ``error:`` line and an exit status,
never a hang, a traceback or a poisoned checkpoint (issue 15 of the reliability audit)."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _unreadable_folder(root) -> str:
    """An ImageFolder layout whose every image is a truncated JPEG."""
    for split in ("train", "test"):
        for cls in ("a", "b"):
            os.makedirs(root / split / cls)
            for i in range(4):
                (root / split / cls / f"{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0truncated")
    return str(root)


def _train(tmp_path, *overrides, timeout=180):
    args = ["model.arch=resnet18", "model.pretrained=none", "data.image_size=32", "data.resize_size=32",
            "run.device=cpu", f"run.output_dir={tmp_path / 'out'}", "run.name=run", *overrides]
    cmd = [sys.executable, os.path.join(REPO, "train.py"), *[a for o in args for a in ("-o", o)]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO}
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("workers,strict,message", [
    (0, "true", "unreadable image"),       # hung forever at 0 % CPU before: the reader thread died
    (2, "false", "no readable image left"),  # 53 lines and 3 tracebacks before
])
@pytest.mark.slow  # a second process (docs/development.md: Tests)
def test_a_data_error_ends_the_run_with_one_clean_line(tmp_path, workers, strict, message):
    root = _unreadable_folder(tmp_path / "data")
    proc = _train(tmp_path, f"data.root={root}", f"data.num_workers={workers}", f"data.strict={strict}")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], output[-3000:]
    assert "Traceback" not in output and "Blocking queue" not in output, output[-3000:]


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_a_diverging_run_stops_early_and_names_a_checkpoint_that_is_finite(tiny_config):
    """lr = 300 on the tiny folder: batch norm's running variance overflows while the loss is still finite. Before,
    the run stopped only at the first NaN loss (epoch 3) and named checkpoints/epoch_0002, in which 19 of 102 tensors
    were NaN or Inf."""
    import re

    import numpy as np
    import paddle

    from rifle_paddle.engine import RunError, train
    cfg = tiny_config("model.pretrained=none", "train.lr=300", "train.epochs=4", "log.visualdl=false")
    with pytest.raises(RunError) as failure:
        train(cfg)
    message = str(failure.value)
    assert "non-finite weights after the step" in message, message  # seen in the weights, before the loss
    named = re.search(r"last good checkpoint: (\S+) ", message)
    run_dir = os.path.join(cfg["run"]["output_dir"], cfg["run"]["name"])
    written = sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) if os.path.isdir(
        os.path.join(run_dir, "checkpoints")) else []
    if named:
        assert os.path.basename(named.group(1)) == written[-1]
    for checkpoint in written:  # every checkpoint on disk, the named one included, is finite throughout
        state = paddle.load(os.path.join(run_dir, "checkpoints", checkpoint, "network.pdparams"))
        bad = [k for k, v in state.items() if not np.isfinite(np.asarray(v, dtype=np.float64)).all()]
        assert not bad, f"{checkpoint}: {bad[:5]}"
    last = os.path.join(run_dir, "last.pdparams")
    if os.path.exists(last):
        assert all(np.isfinite(np.asarray(v, dtype=np.float64)).all() for v in paddle.load(last).values())
    # the advice is a command that works (before: "lower train.lr and resume", which --resume refuses)
    command = re.search(r"(?:rifle-train|python \S*train\.py) (-c \S+ -o train\.lr=30 -o run\.name=\S+)", message)
    assert command, message
    from rifle_paddle.app.cli import train_main
    assert train_main(command.group(1).split() + ["--print-config"]) == 0


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
@pytest.mark.parametrize("problem", ["empty data root", "too few classes", "bad pretrained file"])
def test_a_run_that_cannot_start_leaves_nothing_and_the_corrected_rerun_works(tiny_config, tmp_path, problem):
    from rifle_paddle.data import DataError
    from rifle_paddle.engine import RunError, train
    from rifle_paddle.models import PretrainedWeightsError
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = tmp_path / "bad.pdparams"
    bad.write_bytes(b"not a checkpoint")
    broken = {"empty data root": [f"data.root={empty}"], "too few classes": ["model.num_classes=2"],
              "bad pretrained file": [f"model.pretrained={bad}"]}[problem]
    cfg = tiny_config("train.epochs=1", "log.visualdl=false", *broken)
    run_dir = os.path.join(cfg["run"]["output_dir"], cfg["run"]["name"])
    with pytest.raises((DataError, RunError, PretrainedWeightsError, ValueError)):
        train(cfg)
    assert not os.path.exists(run_dir)  # before: config.yaml and train.log, and the re-run was refused
    assert train(tiny_config("train.epochs=1", "log.visualdl=false"))["final"]["acc_top1"] >= 0


def test_auto_resume_restarts_a_job_killed_before_its_first_checkpoint(tiny_config):
    from rifle_paddle.engine import train
    cfg = tiny_config("train.epochs=1", "log.visualdl=false", "train.resume=auto")
    run_dir = os.path.join(cfg["run"]["output_dir"], cfg["run"]["name"])
    os.makedirs(run_dir)  # what a job killed during its first epoch leaves: no checkpoints/
    for name in ("config.yaml", "train.log", "classes.json"):
        with open(os.path.join(run_dir, name), "w") as f:
            f.write("from the killed job\n")
    result = train(cfg)  # before: refused, "already exists and is not empty"
    assert result["final"]["acc_top1"] >= 0
    with open(os.path.join(run_dir, "train.log")) as f:
        assert "from the killed job" not in f.read()


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_overwrite_leaves_nothing_of_the_old_run_and_never_empties_a_foreign_folder(tiny_config, tmp_path):
    from rifle_paddle.engine import RunError, train
    first = train(tiny_config("train.epochs=1", "log.visualdl=false"))
    run_dir = first["run_dir"]
    with open(os.path.join(run_dir, "eval.json"), "w") as f:
        f.write('{"acc_top1": 0.37}')  # an evaluation of the old weights
    os.remove(os.path.join(run_dir, "best.pdparams"))
    with open(os.path.join(run_dir, "best.pdparams"), "w") as f:
        f.write("old weights")
    train(tiny_config("train.epochs=1", "log.visualdl=false", "run.overwrite=true", "train.save_best=false"))
    left = set(os.listdir(run_dir))
    assert "eval.json" not in left and "best.pdparams" not in left  # save_best=false: no best of the new run
    with open(os.path.join(run_dir, "train.log")) as f:
        assert f.read().count("run directory:") == 1  # not appended to the old log
    foreign = tmp_path / "output" / "photos"
    foreign.mkdir(parents=True)
    (foreign / "holiday.jpg").write_bytes(b"keep me")
    with pytest.raises(RunError, match="not a run directory"):
        train(tiny_config("run.name=photos", "run.overwrite=true", "log.visualdl=false"))
    assert (foreign / "holiday.jpg").read_bytes() == b"keep me"


def test_what_was_accepted_silently_is_refused(tiny_config, tiny_folder, tmp_path):
    import shutil

    from rifle_paddle.data import DataError
    from rifle_paddle.engine import RunError, train
    with pytest.raises(RunError, match="model.num_classes=5 but the data has 3 classes"):
        train(tiny_config("model.num_classes=5", "log.visualdl=false"))  # 2 outputs no image would ever train
    root = tmp_path / "folder"
    shutil.copytree(tiny_folder, root)
    (root / "train" / "zebra").mkdir()  # an empty class folder counted as a fourth class
    (root / "test" / "zebra").mkdir()
    with pytest.raises(DataError, match="class folder.s. without any image: zebra"):
        train(tiny_config(f"data.root={root}", "log.visualdl=false"))


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_a_full_disk_ends_cleanly_names_the_intact_checkpoint_and_leaves_no_temporary_file(tiny_config, monkeypatch):
    import errno

    import paddle

    from rifle_paddle.engine import RunError, train
    real_save = paddle.save

    def full_disk(obj, path, *args, **kwargs):
        if "epoch_0002.partial" in str(path):  # the checkpoint at the start of the third epoch
            with open(path, "wb") as f:
                f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(paddle, "save", full_disk)
    cfg = tiny_config("train.epochs=3", "log.visualdl=false")
    with pytest.raises(RunError) as failure:
        train(cfg)
    run_dir = os.path.join(cfg["run"]["output_dir"], cfg["run"]["name"])
    message = str(failure.value)
    assert "No space left on device" in message, message
    assert f"last good checkpoint: {os.path.join(os.path.abspath(run_dir), 'checkpoints', 'epoch_0001')}" in message
    left = [os.path.join(d, f) for d, dirs, files in os.walk(run_dir) for f in files + dirs
            if ".tmp" in f or ".partial" in f]
    assert not left, left
    with open(os.path.join(run_dir, "train.log")) as f:
        assert "stopped: could not write to" in f.read()  # the log says why the run ended


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_the_nan_stop_is_in_train_log(tiny_config):
    from rifle_paddle.engine import RunError, train
    cfg = tiny_config("model.pretrained=none", "train.lr=300", "train.epochs=4", "log.visualdl=false")
    with pytest.raises(RunError):
        train(cfg)
    with open(os.path.join(cfg["run"]["output_dir"], cfg["run"]["name"], "train.log")) as f:
        assert "stopped: non-finite" in f.read()


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_an_unreadable_test_image_is_left_out_of_the_evaluation_not_replaced(tiny_config, tiny_folder, tmp_path):
    """Before, it was replaced by another test image of its class: the accuracy was computed on a different test
    set, with a duplicate, and said nothing."""
    import glob
    import json
    import shutil

    from rifle_paddle.app.cli import eval_main
    from rifle_paddle.engine import train
    root = tmp_path / "folder"
    shutil.copytree(tiny_folder, root)
    broken = sorted(glob.glob(str(root / "test" / "*" / "*.jpg")))[0]
    with open(broken, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0truncated")
    cfg = tiny_config(f"data.root={root}", "train.epochs=1", "log.visualdl=false")
    result = train(cfg)
    assert result["unreadable_images"]["test"] == [broken]
    out = tmp_path / "eval.json"
    overrides = [f"data.root={root}", "model.arch=resnet18", "data.image_size=32", "data.resize_size=32",
                 "data.num_workers=0", "run.device=cpu", f"model.checkpoint={result['run_dir']}"]
    assert eval_main(sum((["-o", o] for o in overrides), []) + ["--out", str(out)]) == 0
    scored = json.loads(out.read_text())
    assert scored["num_test"] == 11 and scored["excluded_unreadable"] == [broken]  # 12 test images, one left out
    assert sum(c["num_test"] for c in scored["per_class"]) == 11
    # the training run's test scored the same 11 images: its top-1 is a multiple of 1/11
    assert round(result["final"]["acc_top1"] * 11, 6) == round(result["final"]["acc_top1"] * 11)
    assert result["final"]["acc_top1"] == pytest.approx(scored["acc_top1"])
