"""Mixed precision on the CPU: what of Paddle's AMP can run without a GPU, with stand-ins for half precision.

Paddle disables its loss scaler and its casts on the CPU, so these tests switch the scaler on by making it believe
the tracer's place is a GPU (``gpu_place_for_scaler``); its kernels (``check_finite_and_unscale``) run on the CPU.
What needs real fp16 kernels is in ``tests/gpu/``.
"""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from rifle_paddle.engine.amp import LossScaler
from rifle_paddle.engine.model import TransferModel


class _GpuPlace:
    """A place that answers like a GPU's to the checks in ``GradScaler.__init__``."""

    def is_gpu_place(self):
        return True

    def is_xpu_place(self):
        return False

    def is_custom_place(self):
        return False


class _Tracer:
    _expected_place = _GpuPlace()


@pytest.fixture
def gpu_place_for_scaler(monkeypatch):
    """Enable Paddle's loss scaler on the CPU (it would disable itself with a warning)."""
    import paddle.amp.grad_scaler as grad_scaler
    monkeypatch.setattr(grad_scaler, "_dygraph_tracer", lambda: _Tracer())


def _mean_output(output, label):
    return output.mean()


def _linear_model(amp_level: str = "O1") -> TransferModel:
    paddle.seed(0)
    net = paddle.nn.Linear(2, 1)
    model = TransferModel(net)
    model.prepare(paddle.optimizer.SGD(0.1, parameters=net.parameters()), _mean_output,
                  amp_configs={"level": amp_level, "init_loss_scaling": 2.0 ** 15})
    return model


def test_an_overflow_lowers_the_loss_scale_and_skips_the_step(gpu_place_for_scaler):
    """Paddle's GradScaler raised TypeError here with NumPy 2 (float() of its shape-[1] scale)."""
    model = _linear_model()
    weight = model.network.weight.numpy().copy()
    label = np.zeros([1], dtype="int64")
    # the mean output is finite in float32 (~1e35) but 2^15 times it is not: the scaled gradient overflows
    model.train_batch([np.full([1, 2], 1e35, dtype="float32")], [label])
    assert isinstance(model._scaler, LossScaler) and model._scaler.loss_scale == 2.0 ** 14
    np.testing.assert_array_equal(model.network.weight.numpy(), weight)  # the step was skipped
    # a normal batch then steps with the unscaled gradient: d mean(w.x + b)/dw = x, times lr 0.1
    model.train_batch([np.ones([1, 2], dtype="float32")], [label])
    np.testing.assert_allclose(model.network.weight.numpy(), weight - 0.1, rtol=1e-6)
    assert model._scaler.loss_scale == 2.0 ** 14


def test_loss_scaler_state_is_paddles(gpu_place_for_scaler):
    """A checkpoint's scaler state written by Paddle's GradScaler loads into ours and back."""
    paddle_scaler = paddle.amp.GradScaler(init_loss_scaling=512.0, incr_every_n_steps=7)
    ours = LossScaler()
    ours.load_state_dict(paddle_scaler.state_dict())
    assert ours.loss_scale == 512.0 and ours.state_dict()["incr_every_n_steps"] == 7
