"""Time left: one line per epoch with the run's estimated end (the estimator, ``Eta``, is ``core.eta``).

hapi's own bar (``verbose=2``, what a log file can hold) prints seconds per step but no time left, and nothing
above the epoch. ``RunProgress`` adds, at the start of every epoch after the first, one ``train.log`` line saying how
long the run has taken and about how long it has left (``Eta``: the mean duration of the finished units, which here
include the test after an epoch, times the units left). The estimate is plain arithmetic, so it is written down
rather than drawn; interactive bars (``tqdm``) are for work that happens outside hapi's loop: ``eval.py``'s
prediction pass and the data checker.
"""
from __future__ import annotations

import logging

import paddle

from ..core.eta import Eta
from ..core.epoch_numbers import shown

log = logging.getLogger(__name__)


class RunProgress(paddle.callbacks.Callback):
    """``model.fit(..., callbacks=[RunProgress()])``: an estimated end of the run at the start of each epoch
    (from the second one this process trains; a resumed run estimates from its own epochs)."""

    def __init__(self):
        super().__init__()
        self.eta: Eta | None = None
        self._first: int | None = None
        self._epoch_start: float | None = None

    def on_train_begin(self, logs=None):
        self.eta = Eta(self.params["epochs"])

    def on_epoch_begin(self, epoch, logs=None):
        now = self.eta.clock()
        if self._epoch_start is not None:  # the previous epoch and its test are over
            self.eta.add(now - self._epoch_start)
            log.info("epoch %d/%d: %s", shown(epoch), self.params["epochs"],
                     self.eta.summary("run", skipped=self._first))
        else:
            self._first = epoch
        self._epoch_start = now
