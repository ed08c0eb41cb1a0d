"""NaN/Inf training losses: ``train.nan_policy: stop`` ends the run naming the step and the last good checkpoint;
``skip`` makes no optimizer step for such a batch and counts it."""
from __future__ import annotations

import math
import os

import numpy as np
import paddle
import pytest
from paddle.static import InputSpec

from rifle_paddle.engine import RunError, TransferModel, train
from rifle_paddle.engine.nonfinite import MAX_CONSECUTIVE_SKIPS, NonFiniteLossError, NonFiniteLossGuard


def tiny_model(policy: str) -> TransferModel:
    paddle.seed(0)
    model = TransferModel(paddle.nn.Linear(3, 2), inputs=[InputSpec([None, 3], "float32", "x")],
                          labels=[InputSpec([None], "int64", "y")])
    model.prepare(paddle.optimizer.Momentum(0.1, parameters=model.network.parameters()), paddle.nn.CrossEntropyLoss())
    model.nonfinite = NonFiniteLossGuard(policy)
    return model


def batch(poisoned: bool):
    x = np.ones([4, 3], dtype="float32")
    if poisoned:
        x[0, 0] = np.nan
    return [x], [np.array([0, 1, 0, 1], dtype="int64")]


def weights(model) -> list[np.ndarray]:
    return [p.numpy().copy() for p in model.network.parameters()]


def test_skip_makes_no_update_from_a_nonfinite_batch_and_counts_it():
    model = tiny_model("skip")
    before = weights(model)
    loss = model.train_batch(*batch(poisoned=True))
    assert math.isnan(float(loss[0]))
    assert all(np.array_equal(a, b) for a, b in zip(before, weights(model)))
    velocities = model._optimizer._accumulators  # created lazily at the first step: a skipped batch creates none
    assert not any(np.isnan(a.numpy()).any() for per_param in velocities.values() for a in per_param.values())
    assert model.nonfinite.skipped == 1
    model.train_batch(*batch(poisoned=False))  # a finite batch trains as usual
    assert not all(np.array_equal(a, b) for a, b in zip(before, weights(model)))
    assert all(np.isfinite(w).all() for w in weights(model))


def test_stop_raises_and_skip_gives_up_after_too_many_in_a_row():
    with pytest.raises(NonFiniteLossError, match="non-finite training loss"):
        tiny_model("stop").train_batch(*batch(poisoned=True))
    model = tiny_model("skip")
    for _ in range(MAX_CONSECUTIVE_SKIPS - 1):
        model.train_batch(*batch(poisoned=True))
    with pytest.raises(NonFiniteLossError, match="in a row"):
        model.train_batch(*batch(poisoned=True))


class PoisonLosses(paddle.callbacks.Callback):
    """Makes the loss of the given (1-based) global steps NaN, after the step's backward (as a NaN would be)."""

    def __init__(self, steps):
        super().__init__()
        self.steps, self.count = set(steps), 0

    def on_train_begin(self, logs=None):
        inner = self.model.train_step

        def poisoned(model, inputs, labels, scaler):
            losses = inner(model, inputs, labels, scaler)
            self.count += 1
            return [losses[0] * float("nan"), *losses[1:]] if self.count in self.steps else losses
        self.model.train_step = poisoned


def test_a_nan_loss_stops_the_run_naming_the_step_and_the_last_checkpoint(tiny_config):
    cfg = tiny_config("train.epochs=3", "log.visualdl=false")  # 3 steps per epoch
    with pytest.raises(RunError) as e:
        train(cfg, callbacks=[PoisonLosses({5})])
    message = str(e.value)
    assert "non-finite training loss (nan" in message
    assert "epoch 2, batch 2 of 3, global step 5" in message
    assert "checkpoints/epoch_0001" in message and "rifle-train --resume" in message  # in-process


class PoisonWeight(paddle.callbacks.Callback):
    """Sets one convolution weight to NaN before the given (1-based) global step: the forward, the gradients and
    the step all turn non-finite, as in a real divergence (the loss-only poison above never reaches the weights)."""

    def __init__(self, step: int):
        super().__init__()
        self.step, self.count = step, 0

    def on_train_batch_begin(self, step, logs=None):
        self.count += 1
        if self.count == self.step:
            weight = self.model.network.conv1.weight
            weight.set_value(paddle.full(weight.shape, float("nan"), weight.dtype))


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_a_real_nan_stops_the_run_and_every_checkpoint_on_disk_is_finite(tiny_config):
    cfg = tiny_config("train.epochs=3", "log.visualdl=false")
    with pytest.raises(RunError, match="global step 5") as e:
        train(cfg, callbacks=[PoisonWeight(5)])
    named = str(e.value).split("last good checkpoint: ")[1].split(" ")[0]
    assert named.endswith("epoch_0001")
    run_dir = os.path.join(cfg["run"]["output_dir"], cfg["run"]["name"])
    for path in (os.path.join(named, "network.pdparams"), os.path.join(run_dir, "last.pdparams")):
        state = paddle.load(path)
        assert all(np.isfinite(np.asarray(v, dtype=np.float64)).all() for v in state.values()), path


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_skip_policy_trains_on_and_reports_the_skipped_batches(tiny_config):
    result = train(tiny_config("train.epochs=2", "train.nan_policy=skip", "log.visualdl=false"),
                   callbacks=[PoisonLosses({2, 4})])
    assert result["nonfinite_batches"] == 2 and result["steps"] == 6
    assert [e.get("nonfinite_batches") for e in result["epochs"]] == [1, 1]
    state = paddle.load(os.path.join(result["run_dir"], "last.pdparams"))  # no NaN step reached the weights
    assert all(np.isfinite(np.asarray(v, dtype=np.float64)).all() for v in state.values())
