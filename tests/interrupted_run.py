"""``train`` with a Ctrl-C at the start of a chosen batch, for runs launched as several ranks by the tests.

Usage: ``interrupted_run.py <epoch> <step> <override>...``; exits 0 when the run stopped with its checkpoint.
"""
from __future__ import annotations

import os
import signal
import sys

import paddle

from rifle_paddle.config import load_config
from rifle_paddle.engine.resume import TrainingInterrupted
from rifle_paddle.engine.trainer import train


class CtrlCAt(paddle.callbacks.Callback):
    """SIGINT to this process at batch ``step`` of ``epoch`` (the checkpointer then saves at the next batch)."""

    def __init__(self, epoch: int, step: int):
        super().__init__()
        self.at, self.epoch = (epoch, step), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, step, logs=None):
        if (self.epoch, step) == self.at:
            os.kill(os.getpid(), signal.SIGINT)


if __name__ == "__main__":
    epoch, step, overrides = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    try:
        train(load_config(None, overrides), callbacks=[CtrlCAt(epoch, step)])
    except TrainingInterrupted:
        sys.exit(0)
    sys.exit("the run was not interrupted")
