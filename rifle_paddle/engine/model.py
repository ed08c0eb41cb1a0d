"""``paddle.Model`` with an explicit, replaceable training step.

hapi's own ``train_batch`` hard-wires "forward, loss, backward, step". Transfer-learning methods need to change
exactly that middle part (a regularizer that reads intermediate features, DTNH which needs the task and the
regularizer gradients separately), while keeping everything else hapi gives: ``fit``/``evaluate``, callbacks,
metrics, AMP, and ``paddle.distributed.launch`` through DataParallel. So ``TransferModel.train_batch`` delegates
the forward/backward to a ``TrainStep`` and keeps the optimizer update, AMP scaling and metrics here, once.
"""
from __future__ import annotations

import contextlib

import numpy as np
import paddle
from paddle.hapi.model import to_list

from ..data.base import EXCLUDED
from ..data.errors import DataError
from ..core.step import TrainStep, as_tensor  # noqa: F401 (TrainStep re-exported)
from ..core import paddle_compat
from .amp import LossScaler, is_converted
from .nonfinite import NonFiniteLossGuard


class TransferModel(paddle.Model):
    """hapi model whose ``train_batch`` runs ``self.train_step`` (a ``TrainStep``)."""

    def __init__(self, network, inputs=None, labels=None, train_step: TrainStep | None = None):
        super().__init__(network, inputs, labels)
        self.train_step = train_step or TrainStep()
        self.nonfinite = NonFiniteLossGuard("stop")  # train.nan_policy
        self._batch_metrics: list = []

    def fit(self, train_data=None, eval_data=None, *args, start_epoch: int = 0, skip_steps: int = 0, **kwargs):
        """hapi's ``fit`` on data loaders, able to continue a run: the first ``start_epoch`` epochs, and
        ``skip_steps`` batches of the next, are taken as done. It runs ``resume.fit_from`` (hapi's loop over its
        own ``_run_one_epoch``, from any epoch), which also tests after epochs ``eval_freq``, 2 ``eval_freq``, ...
        and the last, where hapi tests after the first. Data sets (hapi builds the loaders) go to hapi's ``fit``."""
        if isinstance(train_data, paddle.io.Dataset) or isinstance(eval_data, paddle.io.Dataset):
            if start_epoch or skip_steps:
                raise TypeError("continuing a run (start_epoch/skip_steps) takes data loaders, not data sets")
            return super().fit(train_data, eval_data, *args, **kwargs)
        from .resume import fit_from  # late: resuming builds on this module
        return fit_from(self, train_data, eval_data, *args, start_epoch=start_epoch, skip_steps=skip_steps,
                        **kwargs)

    def prepare(self, optimizer=None, loss=None, metrics=None, amp_configs=None):
        """hapi's ``prepare``; refuses AMP O2 on several cards for a network not yet in half precision: hapi casts
        it here, after its constructor wrapped it in DataParallel, whose buckets then expect fp32 (backward fails
        in the reducer). ``engine.amp.convert_for_o2`` before ``TransferModel(network)`` does it in the right order
        (``build_model`` does)."""
        level = amp_configs if isinstance(amp_configs, str) else \
            (amp_configs or {}).get("level", "O1") if amp_configs else "O0"
        if level == "O2" and optimizer is not None and paddle_compat.world_size_of(self) > 1 \
                and not is_converted(self.network):
            raise RuntimeError("AMP O2 on several cards needs the network in half precision before it is wrapped "
                               "in DataParallel: call rifle_paddle.engine.amp.convert_for_o2(network, optimizer) "
                               "before TransferModel(network) (train.py does)")
        super().prepare(optimizer, loss, metrics, amp_configs)

    @property
    def amp_level(self) -> str:
        return paddle_compat.amp_level(self)

    def grad_scaler(self) -> LossScaler | None:
        """AMP's loss scaler (None without AMP), created at first use: hapi's ``prepare`` resets it. A
        ``LossScaler``, not Paddle's ``GradScaler``, which crashes at the first overflow (``engine.amp``)."""
        if self.amp_level == "O0":
            return None
        if paddle_compat.model_grad_scaler(self) is None:
            paddle_compat.set_model_grad_scaler(self, LossScaler(**paddle_compat.amp_configs(self)))
        return paddle_compat.model_grad_scaler(self)

    def autocast(self, level: str | None = None):
        """The AMP context of the training forward (inactive without AMP). ``level='O1'`` for a network that
        ``prepare`` did not cast to half precision, e.g. a frozen teacher under O2."""
        return paddle.amp.auto_cast(enable=self.amp_level != "O0", level=level or self.amp_level,
                                    **paddle_compat.amp_custom_lists(self))

    def forward_train(self, inputs: list):
        """Forward through DataParallel when launched on several cards, under AMP when enabled."""
        network = paddle_compat.parallel_network(self)
        with self.autocast():
            return network(*[as_tensor(x) for x in inputs])

    def eval_autocast(self):
        """Evaluation's AMP context: the training one under O2, where the network is in half precision and hapi's
        ``eval_batch``, which runs without autocast, gives conv2d and linear fp32 inputs they refuse. Under O1 the
        network is fp32 and evaluation stays fp32."""
        return self.autocast() if self.amp_level == "O2" else contextlib.nullcontext()

    def eval_batch(self, inputs, labels=None):
        """hapi's, without the rows of unreadable test images (labelled ``data.base.EXCLUDED``): they are left out
        of the loss and the metrics, not scored as some other image."""
        inputs, labels = to_list(inputs), to_list(labels or [])
        if labels and paddle_compat.world_size_of(self) > 1:
            return self._eval_batch_on_ranks(inputs, labels)
        if labels:
            keep = np.flatnonzero(np.asarray(as_tensor(labels[0]).numpy()).reshape(-1) != EXCLUDED)
            if len(keep) < as_tensor(labels[0]).shape[0]:
                if len(keep) == 0:
                    raise DataError("a whole test batch is unreadable: check the data with "
                                    "python -m rifle_paddle.app.check_data")
                index = paddle.to_tensor(keep)
                inputs = [paddle.index_select(as_tensor(x), index, axis=0) for x in inputs]
                labels = [paddle.index_select(as_tensor(y), index, axis=0) for y in labels]
        with self.eval_autocast():
            return super().eval_batch(inputs, labels)

    @paddle.no_grad()
    def _eval_batch_on_ranks(self, inputs: list, labels: list):
        """``eval_batch`` on several cards: hapi's (every rank's outputs and labels gathered, the sampler's padding
        cut off at the end of the test set), with the unreadable rows left out *after* the gather. Left out before
        it, as on one card, a rank with an unreadable image held fewer rows than the others, the gather of unequal
        shapes failed ("Connection reset by peer" on gloo; NCCL would hang) and the padding count was off. The loss
        is the one of the gathered batch, so every rank reports the same."""
        self.network.eval()
        self.mode = "eval"
        with self.eval_autocast():
            outputs = [paddle.cast(o, "float32") for o in to_list(self.network(*[as_tensor(x) for x in inputs]))]
        outputs = [_gather_rows(o) for o in outputs]
        labels = [_gather_rows(as_tensor(y)) for y in labels]
        total, counts, loader = None, paddle_compat.merge_counts(self), paddle_compat.test_loader(self)
        if isinstance(loader, paddle.io.DataLoader):
            total = len(loader.dataset)
        rows = outputs[0].shape[0]
        if total is not None:  # hapi's count: the rows past the test set's end are the sampler's padding
            done = counts.get("eval_total", 0)
            rows = min(rows, total - done)
            counts["eval_total"] = 0 if done + outputs[0].shape[0] >= total else done + rows
        keep = np.flatnonzero(labels[0].numpy().reshape(-1)[:rows] != EXCLUDED)
        if len(keep) == 0:  # the same gathered labels on every rank: all raise together
            raise DataError("a whole test batch is unreadable: check the data with "
                            "python -m rifle_paddle.app.check_data")
        index = paddle.to_tensor(keep)
        outputs = [paddle.index_select(o, index, axis=0) for o in outputs]
        labels = [paddle.index_select(y, index, axis=0) for y in labels]
        counts["eval_batch"] = len(keep)
        loss_fn = paddle_compat.model_loss(self)
        losses = [loss.numpy() for loss in to_list(loss_fn(*(outputs + labels)))] if loss_fn else []
        metrics = []
        for metric in paddle_compat.model_metrics(self):
            metric_outs = metric.compute(*(outputs + labels))
            metrics.append(metric.update(*[m.numpy() for m in to_list(metric_outs)]))
        if loss_fn and metrics:
            return losses, metrics
        return losses if loss_fn else metrics

    def predict_batch(self, inputs):
        with self.eval_autocast():
            return super().predict_batch(inputs)

    def update_metrics(self, outputs, labels) -> None:
        for metric in paddle_compat.model_metrics(self):
            outs = metric.compute(*(to_list(outputs) + labels))
            self._batch_metrics.append(metric.update(*[o.numpy() for o in to_list(outs)]))

    def train_batch(self, inputs, labels=None, update=True):
        optimizer = paddle_compat.model_optimizer(self)
        if optimizer is None:
            raise RuntimeError("model not ready: call prepare() with an optimizer first")
        self.network.train()
        self.mode = "train"
        inputs = to_list(inputs)
        labels = [as_tensor(label) for label in to_list(labels or [])]
        scaler = self.grad_scaler()
        self._batch_metrics = []
        losses = self.train_step(self, inputs, labels, scaler)
        if update:
            if not self.nonfinite.skips(losses):  # nan_policy=skip: no update from a non-finite loss
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
            optimizer.clear_grad()
        loss_values = [loss.numpy() for loss in losses]
        # nan_policy=stop: a non-finite loss; after an update, non-finite weights (a finite loss does not prove
        # finite weights); several cards: all ranks together. Raises NonFiniteLossError
        self.nonfinite.check(loss_values, self.network if update else None)
        return (loss_values, self._batch_metrics) if paddle_compat.model_metrics(self) else loss_values


def _gather_rows(tensor: paddle.Tensor) -> paddle.Tensor:
    """Every rank's ``tensor`` concatenated along the first axis, in rank order (hapi's ``_all_gather``)."""
    parts: list = []
    paddle.distributed.all_gather(parts, tensor)
    return paddle.concat(parts, axis=0)
