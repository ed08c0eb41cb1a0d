"""DisturbLabel (Xie, Wang, Wei, Wang, Tian, "DisturbLabel: Regularizing CNN on the Loss Layer", CVPR 2016), one
of the baselines RIFLE is compared with (Li et al., ICML 2020).

Why it is a baseline: it regularizes at the loss layer instead of the weights; like RIFLE it keeps the classifier
from settling on the training labels so the backbone keeps receiving informative gradients.

The rule: in every training mini-batch each label is, with probability ``alpha``, replaced by a label drawn
uniformly from all ``K`` classes (which may be the true one). A label therefore changes with probability
``alpha * (1 - 1/K)``. Xie et al. evaluate ``alpha`` in {10, 20, 40} %; the default here is 10 %.

How: ``DisturbLabel`` wraps the engine's training step (any ``TrainStep``: plain cross-entropy, a regularizer,
DTNH) and hands it the disturbed labels. Only training batches go through a ``TrainStep``, so evaluation never
sees noise. The training accuracy the engine logs is measured against the labels the network was trained on,
i.e. the disturbed ones. Draws use Paddle's global generator (seeded by ``run.seed``); on several cards each rank
takes its rows of the draws for the global batch (``core/global_draw.py``), as one card with that batch would.
"""
from __future__ import annotations

import paddle

from ..core.global_draw import rows_of_global_draw


def disturb_labels(labels: paddle.Tensor, alpha: float, num_classes: int) -> paddle.Tensor:
    """``labels`` with each entry replaced, with probability ``alpha``, by a uniform draw from ``num_classes``."""
    if not 0 <= alpha < 1:
        raise ValueError(f"DisturbLabel alpha must be in [0, 1), got {alpha}")
    if num_classes < 2:
        raise ValueError(f"DisturbLabel needs at least 2 classes, got {num_classes}")
    # several cards: each rank its own rows of the draws for the global batch (core/global_draw.py)
    replace = rows_of_global_draw(paddle.rand, labels.shape) < alpha
    random_labels = rows_of_global_draw(lambda shape: paddle.randint(0, num_classes, shape, dtype=labels.dtype),
                                        labels.shape)
    return paddle.where(replace, random_labels, labels)


class DisturbLabel:
    """A training step that disturbs the first label tensor, then runs ``inner`` (a ``TrainStep``)."""

    def __init__(self, alpha: float, num_classes: int, inner=None):
        if not 0 <= alpha < 1:
            raise ValueError(f"DisturbLabel alpha must be in [0, 1), got {alpha}")
        if inner is None:
            from ..core.step import TrainStep
            inner = TrainStep()
        self.alpha, self.num_classes, self.inner = alpha, num_classes, inner

    def __call__(self, model, inputs: list, labels: list, scaler) -> list:
        noisy = [disturb_labels(labels[0], self.alpha, self.num_classes), *labels[1:]]
        return self.inner(model, inputs, noisy, scaler)

    def __getattr__(self, name: str):
        """Anything else is the wrapped step's (a regularizer's weights or logs stay reachable)."""
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def __repr__(self) -> str:
        return f"DisturbLabel(alpha={self.alpha}, classes={self.num_classes}, inner={type(self.inner).__name__})"
