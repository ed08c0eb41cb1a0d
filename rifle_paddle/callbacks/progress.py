"""Time left: one line per epoch with the run's estimated end, and the estimator the sweep uses for its runs.

hapi's own bar (``verbose=2``, what a log file can hold) prints seconds per step but no time left, and nothing
above the epoch. ``RunProgress`` adds, at the start of every epoch after the first, one ``train.log`` line saying how
long the run has taken and about how long it has left (``Eta``: the mean duration of the finished units, which here
include the test after an epoch, times the units left). The estimate is plain arithmetic, so it is written down
rather than drawn; interactive bars (``tqdm``) are for work that happens outside hapi's loop: ``eval.py``'s
prediction pass and the data checker.
"""
from __future__ import annotations

import logging
import time

import paddle

from .epoch_numbers import shown

log = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    """``45 s``, ``7 min 05 s``, ``2 h 03 min``: as precise as a person planning their day needs."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {(seconds % 3600) // 60:02d} min"


class Eta:
    """Time left for ``total`` units of similar work after ``done`` of them took ``elapsed`` seconds, with
    ``parallel`` units running at once (a sweep's workers)."""

    def __init__(self, total: int, parallel: int = 1, clock=time.monotonic):
        self.total, self.parallel, self.clock = total, max(1, parallel), clock
        self.durations: list[float] = []
        self.started = clock()

    def add(self, seconds: float) -> None:
        self.durations.append(seconds)

    @property
    def done(self) -> int:
        return len(self.durations)

    def left_s(self, skipped: int = 0) -> float | None:
        """Estimated seconds for the units not done yet (``skipped`` of them were done before this process
        started, and need no time); None before the first unit has finished."""
        if not self.durations:
            return None
        mean = sum(self.durations) / len(self.durations)
        remaining = max(0, self.total - skipped - self.done)
        return mean * -(-remaining // self.parallel)  # ceil: a last partial round takes a whole unit

    def summary(self, what: str, skipped: int = 0) -> str:
        left = self.left_s(skipped)
        took = format_duration(self.clock() - self.started)
        if left is None:
            return f"{what}: nothing finished yet"
        finish = time.strftime("%H:%M", time.localtime(time.time() + left))
        return f"{what}: {took} so far, about {format_duration(left)} left (ends near {finish})"


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
