"""The engine's training step for regularized fine-tuning, with or without DTNH.

``TransferModel.train_batch`` delegates forward and backward to a ``TrainStep`` and keeps the optimizer step,
gradient clipping, weight decay, AMP's ``GradScaler.step`` and the metrics. ``RegularizedStep`` fills ``.grad``:

- without DTNH: one backward of ``L + Omega_feature`` (the feature part shares the task's forward pass), then the
  closed-form gradient (L2-SP, head term) is added in place — no second backward for any regularizer;
- with DTNH: ``g_R`` of the feature part by ``paddle.grad`` (the graph is kept), ``g_L`` by the task backward into
  ``.grad``, the closed-form gradient added to ``g_R``, then ``DTNH.apply`` writes the never-hurt direction into
  ``.grad``. A feature regularizer therefore costs a second backward pass (through the layers it reads) — two
  different vectors ``J^T dL/dF`` and ``J^T dOmega/dF`` cannot come out of one reverse pass — while the closed-form
  regularizers (L2-SP) still cost none.

Composition: the optimizer then applies its weight decay and clips the *combined* gradient; RIFLE re-draws the
head in place (same Parameter objects), after which the head term pulls the new head towards 0; DisturbLabel and
other label-side tricks wrap this step. AMP: both gradients are kept in loss-scaled units (the closed-form one is
multiplied by the loss scale), decomposed as such — exact, the direction being positively homogeneous — and
``GradScaler.step`` unscales the combined gradient and skips the step if either part overflowed. Several cards:
``.grad`` is averaged by DataParallel during the task backward; ``g_R`` from ``paddle.grad`` is averaged here.
"""
from __future__ import annotations

import paddle
from paddle.hapi.model import to_list

from ..core import paddle_compat
from ..core.precision import master_weights
from ..core.step import TrainStep, as_tensor
from .base import Regularizer
from .dtnh import DTNH, add_aligned


class RegularizedStep(TrainStep):
    """``task loss + regularizer``; with ``dtnh`` the two gradients combined never-hurt.

    Returns the task loss terms followed by the regularizer's value (``Omega``, weighted), so the engine's
    ``train_loss`` stays the task loss and the regularizer is logged next to it.
    """

    def __init__(self, regularizer: Regularizer, dtnh: DTNH | None = None):
        if regularizer.network is None:
            raise ValueError("attach the regularizer to the network first: regularizer.attach(network)")
        self.regularizer, self.dtnh = regularizer, dtnh

    def __call__(self, model, inputs: list, labels: list, scaler) -> list[paddle.Tensor]:
        reg = self.regularizer
        inputs = [as_tensor(x) for x in inputs]
        with reg.observe():
            outputs = model.forward_train(inputs)
        task_terms = to_list(paddle_compat.model_loss(model)(*(to_list(outputs) + labels)))
        task = paddle.add_n(task_terms) if len(task_terms) > 1 else task_terms[0]
        with model.autocast(level="O1"):  # the teacher is never cast to half precision by prepare()
            penalty = reg.penalty(inputs)
        loss_scale = scaler.scale(paddle.ones([], dtype="float32")) if scaler is not None else None
        reg.master_weights = master_weights(paddle_compat.model_optimizer(model))  # AMP O2: from the fp32 weights
        closed_value, closed_grads = reg.closed_form(loss_scale)

        if self.dtnh is None:
            total = task if penalty is None else task + penalty
            (scaler.scale(total) if scaler is not None else total).backward()
            _add_to_grads(closed_grads)
        else:
            dtnh = self.dtnh
            reg_grads = [None] * len(dtnh.parameters)
            if penalty is not None:
                reg_grads = dtnh.regularizer_grads(scaler.scale(penalty) if scaler is not None else penalty)
                reg_grads = _average_over_ranks(reg_grads)
            reg_grads = add_aligned(reg_grads, dtnh.align(closed_grads))
            (scaler.scale(task) if scaler is not None else task).backward()
            dtnh.apply(reg_grads)

        model.update_metrics(outputs, labels)
        value = [v.detach() for v in (penalty, closed_value) if v is not None]
        return task_terms + [paddle.add_n(value) if value else paddle.zeros([], dtype="float32")]

    def state_dict(self) -> dict:
        """The regularizer's frozen references (what a resumable checkpoint must keep besides the network)."""
        return self.regularizer.state_dict()

    def set_state_dict(self, state: dict) -> None:
        self.regularizer.set_state_dict(state)

    def __repr__(self) -> str:
        return f"RegularizedStep({self.regularizer.describe()}{', ' + repr(self.dtnh) if self.dtnh else ''})"


@paddle.no_grad()
def _add_to_grads(pairs) -> None:
    for p, g in pairs:
        if p.grad is None:
            paddle_compat.set_gradient(p, g.astype(p.dtype))  # the task does not reach p
        elif p.grad.dtype == g.dtype:
            p.grad.add_(g)
        else:
            p.grad.add_(g.astype(p.grad.dtype))


def _average_over_ranks(grads: list) -> list:
    """Mean over the ranks of a multi-card run (DataParallel averages ``.grad``, not ``paddle.grad``'s output).

    Divided before the sum, as Paddle's reducer does: the loss-scaled gradients of AMP sit near the top of fp16's
    range, and a sum of N of them overflows N times earlier, a spurious inf that skips the step."""
    world = paddle.distributed.get_world_size()
    if world <= 1:
        return grads
    for g in grads:
        if g is not None:
            g.scale_(1.0 / world)
            paddle.distributed.all_reduce(g)
    return grads
