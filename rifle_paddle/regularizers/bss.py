"""BSS: Batch Spectral Shrinkage, penalizing the smallest singular values of the batch feature matrix.

Chen, Wang, Fu, Long, Wang, "Catastrophic Forgetting Meets Negative Transfer: Batch Spectral Shrinkage for Safe
Transfer Learning", NeurIPS 2019.

Why: the paper finds that the spectral components of the features with small singular values are the ones that
transfer badly (they carry source-specific detail the target data cannot correct); shrinking them suppresses
negative transfer without tying the network to the pretrained weights, so BSS needs no reference at all and
composes with any other fine-tuning method::

    Omega(F) = eta * sum_{i=1..k} sigma_{-i}(F)^2  (+ beta/2 ||w_new||^2)

``F``: the ``[B, D]`` matrix of the batch's features, the input of the classifier (pooled backbone output);
``sigma_{-i}``: its i-th smallest singular value. ``sigma^2`` are the eigenvalues of the smaller Gram matrix
(``F F^T`` when ``B <= D``), which is what is computed: a ``B x B`` symmetric eigenproblem instead of an SVD of
``F``, with the same values and gradient. Defaults ``eta = 0.001``, ``k = 1`` (the paper's).

Shapes: features ``[B, D]`` (more dims are flattened); ``k`` is capped at ``min(B, D)`` for a small last batch.
On N cards ``F`` is the global batch's ``[N B, D]`` matrix, gathered on every rank (``global_batch.py``), as on one
card with the same global batch.
"""
from __future__ import annotations

import paddle

from ._ops import as_float32
from .base import Regularizer
from .capture import INPUT, FeatureCapture
from .global_batch import gather_batch, gradient_times, world_size


def smallest_squared_singular_values(features: paddle.Tensor, k: int) -> paddle.Tensor:
    """``sum_{i<=k} sigma_{-i}(F)^2`` of ``features`` ``[B, D]``, differentiable, float32."""
    f = as_float32(paddle.flatten(features, 1)) if features.ndim > 2 else as_float32(features)
    gram = f @ f.T if f.shape[0] <= f.shape[1] else f.T @ f
    eigenvalues = paddle.linalg.eigvalsh(gram)  # ascending
    return paddle.clip(eigenvalues[:min(k, gram.shape[0])], min=0.0).sum()


class BatchSpectralShrinkage(Regularizer):
    """``eta * sum of the k smallest squared singular values`` of the classifier's input batch.

    Args:
        alpha: ``eta``, the weight of the penalty.
        k: how many of the smallest singular values are penalized.
        beta: optional weight of the classifier's squared norm (0: BSS alone).
    """

    name = "bss"
    uses_reference = False
    DEFAULTS = {"alpha": 0.001, "beta": 0.0}
    CONFIG_KEYS = {"k": "bss_k"}

    def __init__(self, alpha: float = 0.001, k: int = 1, beta: float = 0.0):
        super().__init__(beta=beta)
        if alpha < 0:
            raise ValueError(f"alpha (eta) must be >= 0, got {alpha}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.alpha, self.k = float(alpha), int(k)
        self._features: FeatureCapture | None = None

    def _attach(self) -> None:
        self._features = FeatureCapture(self.network, [self.head_name], what=INPUT)

    def observe(self):
        self._require_attached()
        return self._features.recording()

    def penalty(self, inputs: list) -> paddle.Tensor | None:
        self._require_attached()
        if self.alpha == 0:
            return None
        features = gather_batch(as_float32(paddle.flatten(self._features.get(self.head_name), 1)))
        # several cards: the spectrum of the global batch, each rank's gradient share times N (global_batch.py)
        return gradient_times(self.alpha * smallest_squared_singular_values(features, self.k), world_size())

    def describe(self) -> str:
        return f"BSS eta={self.alpha:g}, k={self.k} on the input of '{self.head_name}', beta={self.beta:g}"
