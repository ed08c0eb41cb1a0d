"""What a user reads about a run tells one story: VisualDL holds the numbers of ``metrics.json``, every epoch a
person reads counts from 1 (as hapi's ``Epoch 1/3`` line does), and RIFLE names parameters by their place in the
model (``fc.weight``), not by Paddle's process-dependent ``linear_7.w_0``."""
import re

import numpy as np
import pytest

from conftest import TINY_RUN_EPOCHS, TINY_RUN_STEPS

from rifle_paddle.core.epoch_numbers import epoch_index

EPOCHS, STEPS = TINY_RUN_EPOCHS, TINY_RUN_STEPS


@pytest.fixture
def run(tiny_rifle_run):
    """A RIFLE run re-drawing the head after the first epoch (``tests/conftest.py``, shared with ``test_throughput``):
    (metrics.json's content, VisualDL scalars, train.log)."""
    return tiny_rifle_run


def test_visualdl_epoch_scalars_are_metrics_json_numbers(run):
    metrics, scalars, _ = run
    for tag, key in (("train/loss", "train_loss"), ("train/acc_top1", "train_acc_top1"), ("train/lr", "lr"),
                     ("test/acc_top1", "test_acc_top1"), ("test/loss", "test_loss")):
        want = [(e["epoch"], e[key]) for e in metrics["epochs"] if key in e]
        assert want and [step for step, _ in scalars[tag]] == [epoch for epoch, _ in want], tag
        assert [v for _, v in scalars[tag]] == pytest.approx([v for _, v in want], rel=1e-6), tag  # VisualDL: float32


def test_train_loss_is_the_epoch_mean_and_the_batch_loss_has_its_own_tag(run):
    _, scalars, _ = run
    per_step = scalars["train_step/loss"]  # log_freq=1: every batch, at the 1-based global step
    assert [step for step, _ in per_step] == list(range(1, EPOCHS * STEPS + 1))
    # equal batches: the epoch's sample-weighted mean loss is the plain mean of its batches' losses
    means = [np.mean([v for _, v in per_step[e * STEPS:(e + 1) * STEPS]]) for e in range(EPOCHS)]
    assert [v for _, v in scalars["train/loss"]] == pytest.approx(means, rel=1e-5)
    assert [v for _, v in scalars["train/loss"]] != pytest.approx([per_step[(e + 1) * STEPS - 1][1]
                                                                   for e in range(EPOCHS)], rel=1e-3)


def test_epochs_a_user_reads_count_from_one(run):
    metrics, _, log_text = run
    assert metrics["epoch_numbering"] == "1-based"
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert [e["epoch"] for e in metrics["rifle_events"]] == [2]  # rifle.epochs=[1]: one epoch done, before the 2nd
    assert 1 <= metrics["best"]["epoch"] <= EPOCHS
    assert metrics["best"] == next(e for e in metrics["epochs"] if e["epoch"] == metrics["best"]["epoch"])
    assert "re-initializing 'fc' before epochs [2] of 3" in log_text
    assert "re-initialized the classifier before epoch 2 (" in log_text
    assert f"at epoch {metrics['best']['epoch']}); outputs in" in log_text
    assert not re.search(r"\bepoch 0\b|0-based", log_text)


def test_rifle_names_parameters_by_their_place_and_marks_the_redraw_beside_the_loss(run):
    metrics, scalars, log_text = run
    (event,) = metrics["rifle_events"]
    assert set(event) == {"epoch", "fc.weight", "fc.bias"}
    assert "fc.weight" in log_text and not re.search(r"linear_\d+\.[wb]_0", log_text)
    assert scalars["rifle/fc.weight/norm_after"][0][0] == 2
    assert scalars["train/rifle_reinit"] == [(1, 0.0), (2, 1.0), (3, 0.0)]
    assert scalars["train_step/rifle_reinit"] == [(STEPS + 1, 1.0)]  # the first step of the second epoch


def test_readers_of_metrics_json_get_0_based_indices_from_either_numbering():
    assert epoch_index({"epoch": 2}, {"epoch_numbering": "1-based"}) == 1
    assert epoch_index({"epoch": 2}, {}) == 2  # files written before the key existed counted from 0


def test_the_log_says_how_long_the_run_has_left(run):
    _, _, log_text = run
    lines = re.findall(r"epoch (\d)/3: run: .* so far, about .* left \(ends near \d\d:\d\d\)", log_text)
    assert lines == ["2", "3"]  # from the second epoch on, once one epoch has been timed


def test_eta_is_the_mean_unit_times_the_units_left():
    from rifle_paddle.core.eta import Eta, format_duration
    clock = iter([0.0, 100.0]).__next__
    eta = Eta(total=10, parallel=2, clock=clock)
    assert eta.left_s() is None
    for seconds in (30.0, 50.0, 40.0):
        eta.add(seconds)
    assert eta.left_s() == 40.0 * 4  # 7 runs left on 2 workers: 4 rounds of the mean run
    assert eta.left_s(skipped=1) == 40.0 * 3
    assert "1 min 40 s so far, about 2 min 40 s left" in eta.summary("3/10 runs")
    assert [format_duration(s) for s in (45, 425, 7380)] == ["45 s", "7 min 05 s", "2 h 03 min"]
