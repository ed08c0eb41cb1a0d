"""What to do when a training loss is NaN or infinite (``train.nan_policy``).

One non-finite loss makes non-finite gradients, and one optimizer step with them turns every weight it touches
into NaN; from then on the run burns GPU hours computing nothing. So by default (``stop``) the first non-finite
loss ends the run with a message naming where it happened and the last good checkpoint, from which it can be
resumed after the cause is fixed (a lower ``train.lr``, ``train.grad_clip``). With ``skip`` such a batch makes no
optimizer step and is counted (``metrics.json``: ``nonfinite_batches``); for the occasional pathological batch.
Skipping cannot rescue a diverged run, so ``MAX_CONSECUTIVE_SKIPS`` non-finite batches in a row stop it anyway.

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
    """The loss of a training batch was NaN or infinite (the message says which terms)."""


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
