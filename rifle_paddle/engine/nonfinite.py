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
the step, which makes the host wait for the backward pass before it launches the update.
"""
from __future__ import annotations

import numpy as np

from .multicard import any_rank

NAN_POLICIES = ("stop", "skip")
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

    def check(self, values) -> None:
        """Under ``stop``: raise on a non-finite loss (``values``: the host copies of the loss terms)."""
        if self.policy == "stop" and not all(np.isfinite(v).all() for v in values):
            raise NonFiniteLossError(f"non-finite training loss ({_describe(values)}; train.nan_policy=skip would "
                                     f"skip such batches)")

    @staticmethod
    def check_weights(network) -> None:
        """Under either policy: raise when the step just taken left a NaN or Inf anywhere in the network (no policy
        can continue from there)."""
        if not weights_are_finite(network):
            bad = nonfinite_names(network.state_dict())
            raise NonFiniteLossError(f"non-finite weights after the step ({len(bad)} tensors, e.g. "
                                     f"{', '.join(bad[:3])}) although the loss was finite")
