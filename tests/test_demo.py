"""The demo's plan (rifle_paddle/app/demo.py) against what it claims to show, without running it (it takes minutes).

It claims to be two cells of the evidence's method table, on the same images, scaled down only before RIFLE's last
re-initialization: its packaged cells must resolve to the evidence's (benchmarks/configs/), and its last head must
train exactly as many steps as the last head of the evidence cell it stands for (RIFLE cyclic_num 4 at 192 labels
per class), computed here from that cell's own 40-epoch config. The evidence's source model reaches it from a
checkout's train.py, never from the package.
"""
import hashlib
import os
import runpy

import pytest

from rifle_paddle.app import demo
from rifle_paddle.callbacks.rifle import rifle_schedule, tail_steps
from rifle_paddle.config import load_config
from rifle_paddle.experiments.sweep import TODO

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVIDENCE_CELLS = os.path.join(REPO, "benchmarks", "configs", "fashion_mnist_192")


def _steps_per_epoch(cfg) -> int:
    images = cfg["data"]["train_per_class"] * len(cfg["data"]["classes"])
    assert cfg["data"]["drop_last"], "the authors' protocol drops the last batch"
    return images // cfg["data"]["batch_size"]


def _tail(cfg) -> int:
    r = cfg["rifle"]
    schedule = rifle_schedule(cfg["train"]["epochs"], r["num_reinits"], r["min_tail_epochs"], r["epochs"])
    return tail_steps(schedule, cfg["train"]["epochs"], _steps_per_epoch(cfg))


@pytest.fixture(scope="module")
def jobs():
    return {j.cell.method.name: j for j in demo.demo_jobs("/nowhere/source.pdparams")}


def test_the_demo_runs_plain_and_rifle_of_the_evidence_table_on_the_same_images(jobs):
    assert set(jobs) == {"finetune", "rifle"}
    configs = {m: load_config(j.config_path, j.run_overrides) for m, j in jobs.items()}
    plain, rifle = configs["finetune"], configs["rifle"]
    assert not plain["rifle"]["enabled"] and rifle["rifle"]["enabled"]
    for key in ("data", "train", "model", "tricks", "regularizer", "dtnh"):
        assert plain[key] == rifle[key], key  # the pair differs by RIFLE alone
    assert plain["run"]["seed"] == rifle["run"]["seed"] == 0
    assert plain["model"]["pretrained"] == "/nowhere/source.pdparams"
    assert plain["data"]["test_per_class"] is None  # every target test image, as the evidence
    assert all(j.state == TODO for j in jobs.values())  # rerun, even when an earlier demo finished


def test_the_demo_cells_are_the_evidence_cells(jobs):
    for method, job in jobs.items():
        packaged, evidence = load_config(job.config_path), load_config(os.path.join(EVIDENCE_CELLS,
                                                                                    f"resnet18_{method}.yaml"))
        assert packaged.pop("_source") != evidence.pop("_source")
        assert packaged == evidence, method


def test_the_last_head_trains_as_long_as_in_the_evidence_cell_it_stands_for(jobs):
    evidence = load_config(os.path.join(EVIDENCE_CELLS, "resnet18_rifle.yaml"))  # as run in the evidence: 40 epochs
    assert evidence["train"]["epochs"] == 40
    assert _steps_per_epoch(evidence) == 30 and _tail(evidence) == (40 - 30) * 30  # cyclic_num 4: epochs 10, 20, 30
    scaled = load_config(jobs["rifle"].config_path, jobs["rifle"].run_overrides)
    assert scaled["train"]["epochs"] == demo.EPOCHS < 40
    assert _tail(scaled) == _tail(evidence) == demo.TAIL_STEPS
    schedule = rifle_schedule(demo.EPOCHS, explicit=scaled["rifle"]["epochs"])
    assert len(schedule) == 2  # two re-drawn heads before the last, as cyclic_num 3 or more gives


def test_the_reading_is_computed_from_the_printed_numbers():
    rows = [["conv1", 0.05, 0.055], ["layer4", 0.06, 0.09]]
    line = demo.reading(0.9456, 0.9442, rows)
    assert "-0.14 points" in line
    assert f"conv1 {0.055 / 0.05:.2f}x" in line and "conv1 1.10x" in line
    assert "layer4 1.50x" in line


def test_the_checkout_hands_the_demo_the_committed_source_only_when_intact(tmp_path, monkeypatch):
    from benchmarks import evidence
    monkeypatch.setattr(evidence, "REPO", str(tmp_path))
    assert evidence.committed_source() is None  # a checkout without the file: the demo trains its own
    folder = tmp_path / evidence.SUMMARIES
    folder.mkdir(parents=True)
    weights = tmp_path / evidence.SOURCE_COPY
    weights.write_bytes(b"not the recorded file")
    (folder / "source.json").write_text('{"md5": "00000000000000000000000000000000"}')
    assert evidence.committed_source() is None  # a file that is not the evidence's (md5) is not used as if it were
    (folder / "source.json").write_text("{broken")
    assert evidence.committed_source() is None
    (folder / "source.json").write_text('{"md5": "%s"}' % hashlib.md5(weights.read_bytes()).hexdigest())
    assert evidence.committed_source() == str(weights)


def test_train_py_passes_the_committed_source_to_the_demo(monkeypatch):
    """``python train.py`` without a config: the demo gets the evidence's source model; ``rifle-train`` gets none."""
    seen = []
    monkeypatch.setattr(demo, "main", lambda source=None: seen.append(source) or 0)
    entry = runpy.run_path(os.path.join(REPO, "train.py"))
    from benchmarks import evidence
    assert entry["train_main"]([], demo_source=entry["evidence_source"]) == 0
    from rifle_paddle.app.cli import train_main
    assert train_main([]) == 0
    assert seen == [evidence.committed_source(), None]
    assert seen[0] and seen[0].endswith(os.path.join("results", "evidence", "source_resnet18.pdparams"))


def test_the_time_split_adds_up_to_the_runs_time():
    epoch = {"throughput_step_s": 0.5}
    fast = {"elapsed_s": 100.0, "steps": 60, "epochs": [epoch, epoch]}
    slow = {"elapsed_s": 120.0, "steps": 60, "epochs": [epoch, {"throughput_step_s": 1.0}]}
    # the slower run: 130 s of the runs' time, 120 on its own clock; 30 steps at 0.5 s and 30 at 1 s = 45 s
    assert demo.time_split([fast, slow], 130.0) == \
        "10 s starting (Paddle, data, model), 45 s training steps, 75 s testing and checkpoints"
