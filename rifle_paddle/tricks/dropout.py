"""Dropout on the classifier input (Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from
Overfitting", JMLR 2014), one of the baselines RIFLE is compared with (Li et al., ICML 2020).

Why it is a baseline: like RIFLE it perturbs the classifier so that the backbone cannot rely on a head that has
already fitted the target task. Dropout does it continuously on the 2048-d pooled features; RIFLE does it a few
times, and completely, on the head's weights.

How: a forward pre-hook on the classifier drops each input feature with probability ``rate`` and scales the kept
ones by ``1 / (1 - rate)`` (Paddle's ``upscale_in_train``), so the expected input is unchanged and evaluation is
the identity. The mask is drawn explicitly (as ``F.dropout`` would), so that on several cards each rank takes its
rows of the mask of the global batch (``core/global_draw.py``), not the same mask as every other rank. A hook
rather than a wrapping layer keeps the classifier the very same layer (``find_classifier``, RIFLE and checkpoints
see no difference) and the state-dict keys unchanged.
"""
from __future__ import annotations

import paddle
from paddle import nn

from ..core.global_draw import rows_of_global_draw


class ClassifierInputDropout:
    """Forward pre-hook: inverted dropout on the first input of the layer it is registered on, in training only."""

    def __init__(self, rate: float):
        if not 0 <= rate < 1:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate = rate

    def __call__(self, layer: nn.Layer, inputs: tuple):
        if not layer.training or self.rate == 0:
            return None  # Paddle keeps the inputs unchanged
        x = inputs[0]
        # Paddle's upscale_in_train, with the mask drawn as this rank's rows of the global batch's (global_draw.py)
        keep = (rows_of_global_draw(paddle.rand, x.shape) >= self.rate).astype(x.dtype)
        return (x * keep * (1.0 / (1.0 - self.rate)), *inputs[1:])

    def __repr__(self) -> str:
        return f"dropout(p={self.rate}) on the classifier input"


def install_dropout(classifier: nn.Layer, rate: float) -> ClassifierInputDropout:
    """Register input dropout on ``classifier``; returns the hook (its ``handle`` removes it)."""
    hook = ClassifierInputDropout(rate)
    hook.handle = classifier.register_forward_pre_hook(hook)
    return hook
