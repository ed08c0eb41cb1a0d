"""The run's record: ``metrics.json`` after every epoch and ``best.pdparams``.

``RunRecorder`` subclasses hapi's ``ModelCheckpoint`` so that ``fit`` does not add its own (which would write a
second copy of every epoch into ``save_dir``). The resumable checkpoints, and ``last.pdparams``/``last.pdopt`` with
them, are the engine's ``Checkpointer`` (``engine/resume.py``); the recorder's own state (the epochs so far, the
best one) is part of them through ``state_dict``.

Both are written through ``core/files.py`` (to a temporary name, flushed to the disk and renamed), so a run killed
(or a machine losing power) while saving never leaves a truncated file behind, only the previous version.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time

import paddle

from ..core import paddle_compat, strict_json
from ..core.files import atomic_save, atomic_write_text
from ..core.strict_json import finite_or_none
from ..core.epoch_numbers import NUMBERING, shown, shown_record

log = logging.getLogger(__name__)

#: the keys of ``metrics.json`` holding per-epoch records, written with their epochs counted from 1
EPOCH_RECORDS = ("epochs", "rifle_events", "regularization")


def _scalar(value):
    if isinstance(value, (list, tuple)):
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


class RunRecorder(paddle.callbacks.ModelCheckpoint):
    """Keeps ``metrics.json`` up to date and saves ``best`` (highest test top-1).

    ``metrics.json`` holds one record per epoch (train loss and accuracy, learning rate, test metrics when
    evaluated, ``nonfinite_batches`` when some training losses were NaN/Inf), the best epoch, and ``extra`` (run
    facts from the engine; a callable value is called at each write, so live records such as RIFLE's events are
    always current). Epochs in the file count from 1 (``core.epoch_numbers``); the recorder's own state counts from 0,
    as hapi does.

    With a VisualDL ``writer``, each finished record is also written there (``train/loss``, ``train/acc_top1``,
    ``train/lr``, ``test/...`` at the 1-based epoch): the same numbers as ``metrics.json``, from the same record,
    so the two cannot tell different stories. hapi's per-batch values are ``VisualDLLogger``'s, under
    ``train_step/``.
    """

    def __init__(self, run_dir: str, save_best: bool = True, extra: dict | None = None, rank: int = 0,
                 writer=None, epoch_fields: dict | None = None):
        super().__init__(save_freq=1, save_dir=None)
        self.run_dir, self.save_best, self.rank, self.writer = run_dir, save_best, rank, writer
        self.extra = dict(extra or {})
        #: ``{prefix: callable}``: more numbers for the epoch just ended (e.g. ``Throughput.epoch_record``), recorded
        #: as ``<prefix>_<key>``; a callback that computes them at its ``on_epoch_end`` must come before this one
        self.epoch_fields = dict(epoch_fields or {})
        self.epochs: list[dict] = []
        self.best: dict | None = None
        self._current: dict | None = None  # the epoch in progress, until it is appended to ``epochs``
        self._loss_sum, self._seen, self._nonfinite = 0.0, 0, 0
        self._start = time.time()

    @property
    def metrics_path(self) -> str:
        return os.path.join(self.run_dir, "metrics.json")

    def record(self) -> dict:
        """What ``metrics.json`` holds, as plain JSON-compatible values."""
        extra = {k: (v() if callable(v) else v) for k, v in self.extra.items()}
        record = {"epoch_numbering": NUMBERING, "epochs": self.epochs, "best": shown_record(self.best),
                  "elapsed_s": round(time.time() - self._start, 2),
                  "nonfinite_batches": sum(e.get("nonfinite_batches", 0) for e in self.epochs), **extra}
        for key in EPOCH_RECORDS:
            if isinstance(record.get(key), list):
                record[key] = [shown_record(entry) for entry in record[key]]
        return finite_or_none(json.loads(json.dumps(record, default=_scalar)))  # strict JSON: NaN -> null

    def _write_scalars(self, prefix: str) -> None:
        """The current epoch's ``<prefix>_*`` numbers to VisualDL as ``<prefix>/*`` at its 1-based epoch."""
        if self.writer is None or self.rank != 0:
            return
        for key, value in self._current.items():
            if key.startswith(prefix + "_") and isinstance(value, (int, float)):
                self.writer.add_scalar(f"{prefix}/{key[len(prefix) + 1:]}", float(value), shown(self._current["epoch"]))
        if prefix == "train" and "lr" in self._current:
            self.writer.add_scalar("train/lr", self._current["lr"], shown(self._current["epoch"]))

    def write_metrics(self) -> None:
        if self.rank == 0:
            atomic_write_text(strict_json.dumps(self.record(), indent=2), self.metrics_path)

    # -- checkpoint protocol (engine/training_state.py) ---------------------------------------------------------
    def state_dict(self) -> dict:
        in_progress = self._current is not None and not (self.epochs and self.epochs[-1] is self._current)
        return {"epochs": self.epochs, "best": self.best, "elapsed_s": time.time() - self._start,
                "current": self._current if in_progress else None,
                "partial": [self._loss_sum, self._seen, self._nonfinite]}

    def set_state_dict(self, state: dict) -> None:
        self.epochs, self.best = list(state["epochs"]), state["best"]
        self._start = time.time() - state["elapsed_s"]
        self._current = state["current"]
        self._loss_sum, self._seen, self._nonfinite = state["partial"]

    # -- hapi events ------------------------------------------------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        if self._current is not None and self._current["epoch"] == epoch:
            return  # continuing an epoch interrupted midway (restored by set_state_dict): keep its partial sums
        self._current = {"epoch": epoch}
        self._loss_sum, self._seen, self._nonfinite = 0.0, 0, 0

    def on_train_batch_end(self, step, logs=None):
        # hapi's logs carry the LAST batch's loss; the epoch's loss is the mean over its samples
        loss = _scalar(logs["loss"])
        if not math.isfinite(loss):  # only reached with train.nan_policy=skip: that batch made no step
            self._nonfinite += 1
            return
        n = int((logs or {}).get("batch_size", 1))
        self._loss_sum += loss * n
        self._seen += n

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        self._current.update({f"train_{k}": _scalar(v) for k, v in logs.items() if k not in ("step", "batch_size")})
        if self._seen:
            self._current["train_loss"] = self._loss_sum / self._seen
        if self._nonfinite:
            self._current["nonfinite_batches"] = self._nonfinite
        self._current["lr"] = float(paddle_compat.model_optimizer(self.model).get_lr())
        for prefix, fields in self.epoch_fields.items():
            self._current.update({f"{prefix}_{k}": v for k, v in fields().items()})
        self.epochs.append(self._current)
        self._write_scalars("train")
        self.write_metrics()

    def on_eval_end(self, logs=None):
        if self._current is None:  # evaluate() outside fit
            return
        logs = dict(logs or {})
        self._current.update({f"test_{k}": _scalar(v) for k, v in logs.items() if k not in ("step", "batch_size")})
        self._write_scalars("test")
        top1 = self._current.get("test_acc_top1")
        if top1 is not None and (self.best is None or top1 > self.best["test_acc_top1"]):
            self.best = dict(self._current)
            if self.save_best and self.rank == 0:
                from ..core.precision import fp32_state_dict
                optimizer = paddle_compat.model_optimizer(self.model)
                atomic_save(fp32_state_dict(self.model.network, optimizer),  # O2: fp32 master weights
                            os.path.join(self.run_dir, "best.pdparams"))
        self.write_metrics()

    def on_train_end(self, logs=None):
        self.write_metrics()
