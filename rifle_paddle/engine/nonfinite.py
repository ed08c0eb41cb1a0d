"""What to do when a training loss is NaN or infinite (``train.nan_policy``).

One non-finite loss makes non-finite gradients, and one optimizer step with them turns every weight it touches
into NaN; from then on the run burns GPU hours computing nothing. So by default (``stop``) the first non-finite
loss ends the run with a message naming where it happened and the last good checkpoint, from which it can be
resumed after the cause is fixed (a lower ``train.lr``, ``train.grad_clip``). With ``skip`` such a batch makes no
optimizer step and is counted (``metrics.json``: ``nonfinite_batches``); for the occasional pathological batch.
Skipping cannot rescue a diverged run, so ``MAX_CONSECUTIVE_SKIPS`` non-finite batches in a row stop it anyway.

A finite loss does not prove finite weights: a huge step can overflow some weights, or batch norm's running
statistics (buffers, which no loss sees in training mode), while the loss stays finite for a few more batches; a
checkpoint taken then is poisoned. So after every step ``weights_are_finite`` checks the whole network state with
one fused reduction (one host sync; a sum of finite values is finite), and no checkpoint is ever written from a
non-finite state (``require_finite``), so the "last good checkpoint" a failure names really is one.

Cost: the engine already copies each loss to the host after the step. ``stop`` checks that copy (the weights of
the offending step are lost with the process, the checkpoint on disk predates them); ``skip`` must decide before
the step, which makes the host wait for the backward pass before it launches the update. Several cards: the
decision is taken on all ranks together, one all-reduce of two flags per step (the failure message then names the
rank that saw the NaN, and rank 0 writes it to ``train.log`` with the last good checkpoint).
"""
from __future__ import annotations

import numpy as np

from ..config.schema import register_choices
from .multicard import any_rank, any_rank_each, gather

NAN_POLICIES = register_choices("train.nan_policy", ("stop", "skip"))
MAX_CONSECUTIVE_SKIPS = 10


class NonFiniteLossError(ArithmeticError):
    """The loss of a training batch, or the weights after a step, were NaN or infinite (the message says which)."""


def _state_tensors(network) -> list:
    return [t for t in list(network.parameters()) + list(network.buffers()) if t.size > 0 and t.is_floating_point()]


def weights_are_finite(network) -> bool:
    """Whether every parameter and floating-point buffer of ``network`` is finite: one reduction, one sync."""
    import paddle
    tensors = _state_tensors(network)
    if not tensors:
        return True
    total = paddle.add_n([t.astype("float32").sum() for t in tensors])
    return bool(paddle.isfinite(total))


def nonfinite_names(state: dict) -> list[str]:
    """The keys of ``state`` (a state dict) whose tensor holds a NaN or an infinity."""
    return [k for k, v in state.items() if hasattr(v, "is_floating_point") and v.is_floating_point()
            and not np.isfinite(v.astype("float32").numpy()).all()]


def require_finite(state: dict, what: str) -> None:
    """Refuse to write ``what`` from a state dict holding NaN or Inf."""
    bad = nonfinite_names(state)
    if bad:
        raise NonFiniteLossError(f"non-finite weights ({len(bad)} tensors, e.g. {', '.join(bad[:3])}); {what} was "
                                 f"not written")


def _describe(values) -> str:
    return ", ".join(f"{float(np.ravel(v)[0]):g}" for v in values)


class NonFiniteLossGuard:
    """Applies ``train.nan_policy`` inside ``TransferModel.train_batch``; counts the skipped batches."""

    def __init__(self, policy: str = "stop"):
        if policy not in NAN_POLICIES:
            raise ValueError(f"unknown nan_policy '{policy}', expected one of {', '.join(NAN_POLICIES)}")
        self.policy = policy
        self.skipped = 0
        self._in_a_row = 0

    def skips(self, losses) -> bool:
        """Under ``skip``: whether this batch must not update the weights (called before the update)."""
        if self.policy != "skip":
            return False
        values = [loss.numpy() for loss in losses]
        # several cards: together, else a rank would step with the NaN its gradient all-reduce averaged in
        if not any_rank(not all(np.isfinite(v).all() for v in values)):
            self._in_a_row = 0
            return False
        self.skipped += 1
        self._in_a_row += 1
        if self._in_a_row >= MAX_CONSECUTIVE_SKIPS:
            raise NonFiniteLossError(f"{self._in_a_row} non-finite losses in a row (last: {_describe(values)}) "
                                     f"with train.nan_policy=skip: the run has diverged")
        return True

    def check(self, values, network=None) -> None:
        """After the step: under ``stop``, raise on a non-finite loss (``values``: the host copies of the loss
        terms); under either policy, with ``network`` (the step updated it), raise when the step left a NaN or Inf
        anywhere in it (no policy can continue from there).

        Several cards: decided on every rank together (one all-reduce of both flags), else the rank that saw the
        NaN stopped alone and the others died in the next collective (gloo) or waited forever (NCCL), and the
        reason was only in that rank's worker log, not in rank 0's ``train.log``. The message names the rank(s)."""
        loss_bad = self.policy == "stop" and not all(np.isfinite(v).all() for v in values)
        weights_bad = network is not None and not weights_are_finite(network)
        loss_any, weights_any = any_rank_each([loss_bad, weights_bad])
        if loss_any:
            raise NonFiniteLossError(f"non-finite training loss{_on_ranks(loss_bad, _describe(values))}; "
                                     f"train.nan_policy=skip would skip such batches)")
        if weights_any:
            bad = nonfinite_names(network.state_dict()) if weights_bad else []
            detail = f"{len(bad)} tensors, e.g. {', '.join(bad[:3])}"
            raise NonFiniteLossError(f"non-finite weights after the step{_on_ranks(weights_bad, detail)}) although "
                                     f"the loss was finite")


def _on_ranks(here: bool, detail: str) -> str:
    """`` (detail`` on one process; `` on rank 1 of 2 (detail`` on several, naming every rank that saw it, with
    the first one's detail (every rank must call it)."""
    seen = gather((here, detail))
    if len(seen) == 1:
        return f" ({detail}"
    ranks = [rank for rank, (flag, _) in enumerate(seen) if flag]
    return f" on rank {', '.join(map(str, ranks))} of {len(seen)} ({seen[ranks[0]][1]}"
