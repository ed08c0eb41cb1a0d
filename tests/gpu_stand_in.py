"""Paddle's loss scaler switched on without a GPU, for ``tests/test_amp.py`` and the two-rank
``tests/multicard_probe.py``: ``GradScaler.__init__`` disables itself (with a warning) unless the tracer's place is a
GPU, XPU or custom device, yet its kernels (``check_finite_and_unscale``) run on the CPU. Answering the place check
as a GPU's is all it takes to test the scaler's arithmetic here."""
from __future__ import annotations


class GpuPlace:
    """A place that answers like a GPU's to the checks in ``GradScaler.__init__``."""

    def is_gpu_place(self):
        return True

    def is_xpu_place(self):
        return False

    def is_custom_place(self):
        return False


class _Tracer:
    _expected_place = GpuPlace()


def enable_loss_scaler_on_cpu(set_attribute=setattr) -> None:
    """Make ``paddle.amp.grad_scaler`` see a GPU tracer; pass ``monkeypatch.setattr`` to have it undone after a
    test (a launched rank, which ends with its scenario, uses the plain ``setattr``)."""
    import paddle.amp.grad_scaler as grad_scaler
    set_attribute(grad_scaler, "_dygraph_tracer", lambda: _Tracer())
