"""VisualDL scalars per optimizer step: hapi's last-batch loss and accuracy, and the learning rate.

The per-epoch scalars (``train/*``, ``test/*``) are written by ``RunRecorder`` from the same records as
``metrics.json``; this callback adds the per-step view under its own tag group, ``train_step/``, whose ``loss`` is the
batch's loss (hapi's ``logs``), not an epoch mean.
"""
from __future__ import annotations

import paddle

from ..core import paddle_compat


class VisualDLLogger(paddle.callbacks.Callback):
    """Writes to ``writer`` (a ``visualdl.LogWriter`` shared with other callbacks, e.g. RIFLE's) every
    ``log_freq`` optimizer steps; the x axis is the 1-based global step, computed from the epoch and the batch
    (not counted), so a resumed run continues the same axis."""

    def __init__(self, writer, log_freq: int = 10):
        super().__init__()
        self.writer, self.log_freq = writer, log_freq
        self.epoch, self.global_step = 0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, step, logs=None):
        self.global_step = self.epoch * (self.params.get("steps") or 0) + step + 1
        if self.global_step % self.log_freq:
            return
        for key, value in (logs or {}).items():
            if key in ("step", "batch_size"):
                continue
            if isinstance(value, (list, tuple)):
                value = value[0]
            try:
                self.writer.add_scalar(f"train_step/{key}", float(value), self.global_step)
            except (TypeError, ValueError):
                pass
        lr = float(paddle_compat.model_optimizer(self.model).get_lr())
        self.writer.add_scalar("train_step/lr", lr, self.global_step)

    def on_train_end(self, logs=None):
        self.writer.flush()
