"""Per-epoch report of a regularized run: the regularizer's mean value and, with DTNH, how often and how much the
task and regularizer gradients conflicted — the evidence that tells whether the regularizer was hurting.

A hapi callback reading ``RegularizedStep``: console/train.log line per epoch, VisualDL scalars
(``regularizer/value``, ``dtnh/conflict_fraction``, ``dtnh/mean_cosine``, ``dtnh/global_cosine``) and a
``history`` list the engine puts into ``metrics.json`` (key ``regularization``).

The monitor is a checkpoint component (``state_dict``): ``history`` holds every finished epoch's record and is not
recomputed by a resumed run, which only runs the remaining epochs, and a checkpoint taken in the middle of an
epoch also keeps that epoch's partial sums (the regularizer's and DTNH's), because the resumed run replays the
epoch's finished batches without training on them.
"""
from __future__ import annotations

import logging
import math

import numpy as np
import paddle

from ..core.epoch_numbers import shown

log = logging.getLogger(__name__)


class RegularizationMonitor(paddle.callbacks.Callback):
    """``model.fit(..., callbacks=[RegularizationMonitor(step, writer)])`` with ``step`` a ``RegularizedStep``."""

    def __init__(self, step, writer=None):
        super().__init__()
        self.step, self.writer = step, writer
        self.history: list[dict] = []
        self._epoch: int | None = None  # the epoch in progress, None between epochs
        self._sum, self._seen = 0.0, 0

    # -- checkpoint protocol (engine/training_state.py) ---------------------------------------------------------
    def state_dict(self) -> dict:
        """The finished epochs' records and, in the middle of an epoch, its partial sums."""
        partial = None
        if self._epoch is not None:
            partial = {"epoch": self._epoch, "sum": self._sum, "seen": self._seen,
                       "dtnh_totals": self.step.dtnh.totals if self.step.dtnh is not None else None}
        return {"history": [dict(record) for record in self.history], "partial": partial}

    def set_state_dict(self, state: dict) -> None:
        self.history = [dict(record) for record in state["history"]]
        partial = state["partial"]
        self._epoch = partial["epoch"] if partial else None
        self._sum, self._seen = (partial["sum"], partial["seen"]) if partial else (0.0, 0)
        if partial and partial["dtnh_totals"] is not None and self.step.dtnh is not None:
            self.step.dtnh.totals = partial["dtnh_totals"]

    # -- hapi events ------------------------------------------------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        if self._epoch == epoch:
            return  # continuing an epoch interrupted midway (restored by set_state_dict): keep its partial sums
        self._epoch = epoch
        self._sum, self._seen = 0.0, 0
        if self.step.dtnh is not None:
            self.step.dtnh.summary(reset=True)  # drop anything recorded outside this epoch's training

    def on_train_batch_end(self, step, logs=None):
        losses = (logs or {}).get("loss")
        if isinstance(losses, (list, tuple)) and len(losses) > 1:  # [task terms..., regularizer]
            value = float(np.ravel(losses[-1])[0])
            if not math.isfinite(value):  # a batch nan_policy=skip skipped (or an fp16 overflow): no mean of it
                return
            n = int((logs or {}).get("batch_size", 1))
            self._sum += value * n
            self._seen += n

    def on_epoch_end(self, epoch, logs=None):
        record = {"epoch": epoch}
        if self._seen:
            record["regularizer"] = self._sum / self._seen
        if self.step.dtnh is not None:
            record.update(self.step.dtnh.summary(reset=True))
        self.history.append(record)
        self._epoch = None
        name = self.step.regularizer.name
        line = f"epoch {shown(epoch)}: {name} {record.get('regularizer', float('nan')):.5g}"
        if "conflict_fraction" in record:
            line += (f"; DTNH: g_L and g_R conflicted in {100 * record['conflict_fraction']:.1f}% of "
                     f"{record['layers']:g} layers (mean cosine {record['mean_cosine']:+.3f}; whole vector "
                     f"{record['global_cosine']:+.3f}, conflicting in {100 * record['global_conflict_fraction']:.0f}% "
                     f"of {record['steps']} steps)")
        log.info(line)
        if self.writer is not None:
            if "regularizer" in record:
                self.writer.add_scalar("regularizer/value", record["regularizer"], shown(epoch))
            for key in ("conflict_fraction", "mean_cosine", "global_cosine", "global_conflict_fraction"):
                if key in record:
                    self.writer.add_scalar(f"dtnh/{key}", record[key], shown(epoch))
