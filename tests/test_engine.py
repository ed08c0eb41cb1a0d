"""End to end through the engine and the CLI on tiny generated data (seconds on a CPU)."""
import csv
import json
import os

import numpy as np
import paddle
import pytest

from rifle_paddle.app.cli import eval_main, train_main
from rifle_paddle.engine import RunError, train
from rifle_paddle.engine.optim import build_lr_scheduler
from rifle_paddle.config import load_config


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_a_short_run_learns_and_writes_every_output(tiny_config):
    cfg = tiny_config("train.epochs=5", "train.lr=0.01", "rifle.enabled=true", "rifle.num_reinits=1",
                      "rifle.min_tail_epochs=2")
    result = train(cfg)
    run_dir = result["run_dir"]
    for name in ("config.yaml", "train.log", "metrics.json", "last.pdparams", "last.pdopt", "best.pdparams"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    assert os.listdir(os.path.join(run_dir, "vdl"))
    losses = [e["train_loss"] for e in result["epochs"]]
    assert len(losses) == 5 and losses[-1] < 0.5 * losses[0]  # learns, and re-converges after the re-init
    assert [e["epoch"] for e in result["rifle_events"]] == [3]  # rifle.epochs index 2 is the 3rd epoch
    assert result["final"]["acc_top1"] == result["epochs"][-1]["test_acc_top1"]
    assert result["num_train"] == 36 and result["num_test"] == 12 and result["num_classes"] == 3
    with open(os.path.join(run_dir, "metrics.json")) as f:
        assert json.load(f)["best"]["test_acc_top1"] == max(e["test_acc_top1"] for e in result["epochs"])
    log_text = open(os.path.join(run_dir, "train.log")).read()
    assert "re-initialized the classifier before epoch 3" in log_text
    # the run's config is self-contained and reloads to the same run
    again = load_config(os.path.join(run_dir, "config.yaml"))
    assert again["rifle"] == cfg["rifle"] and again["train"] == cfg["train"]


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_the_time_before_training_is_recorded_as_setup_s(tiny_config, monkeypatch):
    """A regularizer's preparation (DELTA scores channels for minutes) is in ``setup_s``."""
    import time

    import rifle_paddle.regularizers as regularizers
    real = regularizers.build_train_step

    def slow_preparation(*args, **kwargs):
        time.sleep(1.5)
        return real(*args, **kwargs)
    monkeypatch.setattr(regularizers, "build_train_step", slow_preparation)
    result = train(tiny_config("train.epochs=1", "log.visualdl=false"))
    assert result["setup_s"] >= 1.5


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_the_saved_config_describes_the_run_and_does_not_resume(tiny_config):
    """``train.resume=auto`` without a checkpoint starts the run; its config.yaml must not carry the action."""
    cfg = tiny_config("train.epochs=1", "train.resume=auto", "log.visualdl=false")
    run_dir = train(cfg)["run_dir"]
    saved = load_config(os.path.join(run_dir, "config.yaml"))
    assert saved["train"]["resume"] is None
    assert {**saved["train"], "resume": "auto"} == cfg["train"]
    assert all(saved[section] == cfg[section] for section in cfg if section not in ("train", "_source"))
    assert train_main(["--resume", run_dir]) == 0  # resuming is still one option away (a finished run: evaluates)


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_tests_after_every_eval_freq_epochs_and_after_the_last(tiny_config):
    result = train(tiny_config("train.epochs=5", "train.eval_freq=2", "train.lr=0.001"))
    tested = [e["epoch"] for e in result["epochs"] if "test_acc_top1" in e]
    assert tested == [2, 4, 5]  # metrics.json counts from 1: after epochs 2 and 4, and the last; never the first
    assert result["final"]["acc_top1"] == result["epochs"][-1]["test_acc_top1"]


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_lr_is_cosine_per_iteration_and_not_restarted(tiny_config):
    cfg = tiny_config("train.epochs=3", "rifle.enabled=true", "rifle.num_reinits=1", "rifle.min_tail_epochs=1")
    result = train(cfg)
    steps = 3  # 36 images / batch 12
    total = 3 * steps
    for record in result["epochs"]:  # lr logged after the epoch's last step
        done = record["epoch"] * steps  # 1-based: the steps of this epoch and those before
        assert record["lr"] == pytest.approx(0.01 * (1 + np.cos(np.pi * done / total)) / 2, abs=1e-7)


def test_warmup_then_cosine():
    cfg = load_config(None, ["train.warmup_epochs=1", "train.epochs=3", "train.lr=0.1"])
    sched = build_lr_scheduler(cfg["train"], steps_per_epoch=4)
    values = []
    for _ in range(12):
        values.append(sched.get_lr())
        sched.step()
    assert values[0] == 0 and values[2] == pytest.approx(0.05)
    assert values[4] == pytest.approx(0.1) and values[-1] < 0.01


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_an_existing_run_directory_is_not_overwritten(tiny_config):
    cfg = tiny_config("train.epochs=1")
    train(cfg)
    with pytest.raises(RunError, match="already exists"):
        train(cfg)


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_cli_train_then_eval_prints_and_writes_json(tiny_config, tmp_path, capsys):
    cfg = tiny_config()
    overrides = [f"{section}.{k}={json.dumps(v)}" for section in ("model", "data", "run")
                 for k, v in cfg[section].items() if v is not None]
    args = sum((["-o", o] for o in overrides + ["train.epochs=1", "run.name=cli"]), [])
    assert train_main(args) == 0
    run_dir = os.path.join(cfg["run"]["output_dir"], "cli")
    out = str(tmp_path / "eval.json")
    assert eval_main(args + ["-o", f"model.checkpoint={run_dir}", "--out", out]) == 0
    printed = capsys.readouterr().out
    result = json.load(open(out))
    assert f"top-1 {result['acc_top1']:.4f}" in printed
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    assert result["acc_top1"] == pytest.approx(metrics["best"]["test_acc_top1"])  # best.pdparams re-evaluated
    assert result["loss"] == pytest.approx(metrics["best"]["test_loss"], rel=1e-4)  # hapi's loss, our numpy
    assert result["num_test"] == 12
    assert "acc_top5" not in result and "top-5 is always 1" in result["acc_top5_omitted"]  # 3 classes
    with open(result["confusion_csv"], encoding="utf-8") as f:
        rows = list(csv.reader(f))
    classes = [c["class"] for c in result["per_class"]]
    assert rows[0] == ["true \\ predicted"] + classes and [r[0] for r in rows[1:]] == classes
    matrix = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    assert matrix.sum() == 12 and np.trace(matrix) / 12 == pytest.approx(result["acc_top1"])
    for i, entry in enumerate(result["per_class"]):  # hapi's overall accuracy, split by class from the CSV
        assert entry["num_test"] == matrix[i].sum() == 4
        assert entry["acc_top1"] == pytest.approx(matrix[i, i] / 4)
    assert os.path.getsize(result["confusion_png"]) > 0 and result["confusion_png"].endswith("eval_confusion.png")
    assert "weakest classes:" in printed
    # without -c, a run's checkpoint is evaluated with the run's own config.yaml (the defaults have no data.root)
    for checkpoint in (run_dir, os.path.join(run_dir, "last.pdparams")):  # one epoch: best is last
        alone = str(tmp_path / "alone.json")
        assert eval_main(["-o", f"model.checkpoint={checkpoint}", "--out", alone]) == 0
        assert "using the run's own" in capsys.readouterr().err
        assert json.load(open(alone))["acc_top1"] == result["acc_top1"]
    # the run's own record is never replaced by an evaluation; a missing folder is created; nothing half-written
    record = open(os.path.join(run_dir, "metrics.json")).read()
    with pytest.raises(SystemExit, match="refusing to write the evaluation over the run file"):
        eval_main(args + ["-o", f"model.checkpoint={run_dir}", "--out", os.path.join(run_dir, "metrics.json")])
    assert open(os.path.join(run_dir, "metrics.json")).read() == record
    nested = tmp_path / "results" / "seed0" / "eval.json"
    assert eval_main(args + ["-o", f"model.checkpoint={run_dir}", "--out", str(nested)]) == 0
    assert json.load(open(nested))["acc_top1"] == result["acc_top1"]
    assert sorted(os.listdir(nested.parent)) == ["eval.json", "eval_confusion.csv", "eval_confusion.png"]


def test_cli_rejects_unknown_keys_before_doing_anything(capsys):
    with pytest.raises(SystemExit) as exc:
        train_main(["-o", "train.epoch=3"])
    assert "train.epochs" in str(exc.value)


def test_eval_rejects_a_checkpoint_of_another_shape(tiny_config, tmp_path):
    path = str(tmp_path / "other.pdparams")
    from rifle_paddle.models import create_model
    paddle.save(create_model("resnet18", num_classes=5).state_dict(), path)
    from rifle_paddle.engine import evaluate
    with pytest.raises(RunError, match="fc.weight"):
        evaluate(tiny_config(f"model.checkpoint={path}"))


def test_cpu_threads_come_from_the_config_then_the_sweep_then_every_core(monkeypatch):
    from rifle_paddle.engine.trainer import CPU_THREADS_ENV, cpu_threads
    monkeypatch.delenv(CPU_THREADS_ENV, raising=False)
    assert cpu_threads(None) == (os.cpu_count() or 1)
    monkeypatch.setenv(CPU_THREADS_ENV, "1")
    assert cpu_threads(None) == 1 and cpu_threads(3) == 3  # the config wins
    monkeypatch.setenv(CPU_THREADS_ENV, "two")
    with pytest.raises(RunError, match="RIFLE_PADDLE_CPU_THREADS"):
        cpu_threads(None)


@pytest.mark.slow  # other processes (docs/development.md: Tests)
def test_the_sweep_gives_each_worker_its_share_of_the_cores(monkeypatch):
    from types import SimpleNamespace

    from rifle_paddle.experiments import sweep
    from rifle_paddle.engine.trainer import CPU_THREADS_ENV
    from sweep_probe import report_threads
    monkeypatch.delenv(CPU_THREADS_ENV, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    jobs = [SimpleNamespace(name=f"job{i}", config_path="x.yaml", state="todo") for i in range(2)]
    failures = sweep._run_in_pool(jobs, keep_going=True, runner=report_threads, workers=2)
    assert sorted(error for _, error in failures) == ["RuntimeError: threads=2"] * 2  # 4 cores // 2 workers
    assert CPU_THREADS_ENV not in os.environ  # the parent's environment is as it was
