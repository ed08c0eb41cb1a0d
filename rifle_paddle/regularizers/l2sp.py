"""L2-SP: weight decay towards the pretrained weights instead of towards zero.

Li, Grandvalet, Davoine, "Explicit Inductive Bias for Transfer Learning with Convolutional Networks", ICML 2018
(arXiv:1802.01483).

Why: fine-tuning starts from the pretrained weights ``w0`` but nothing keeps it near them; plain weight decay even
pulls every weight towards 0, i.e. away from what was learned on the source task. L2-SP pulls the shared
(pretrained) weights back towards their starting point and decays only the new head towards 0::

    Omega(w) = alpha/2 * ||w_S - w_S^0||^2  +  beta/2 * ||w_new||^2

    grad_S   = alpha * (w_S - w_S^0)          grad_new = beta * w_new

``w_S``: every trainable parameter of the backbone (convolutions and batch-norm affine parameters; running
statistics are buffers, not regularized); ``w_new``: the classifier. The gradient is closed-form, so L2-SP never
touches autograd: one pass over the parameters per step, no second backward, also under DTNH.

Defaults ``alpha = beta = 0.01``: the values the DELTA authors and the peer libraries (tllib's
``--trade-off-backbone/--trade-off-head``, PaddleTransfer's ``reg_weight``) use for L2-SP on these benchmarks; the
L2-SP paper selects them by cross-validation per task.

With the engine's optimizer, ``train.weight_decay`` still applies plain L2 on top (the RIFLE protocol's 1e-4);
set it to 0 for L2-SP exactly as in the paper.

Shapes: no inputs; ``closed_form()`` returns a scalar value and one gradient per parameter, shaped like it.

In one's own loop::

    l2sp = L2SP(alpha=0.01, beta=0.01).attach(model)        # after loading the pretrained weights
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    value, grads = l2sp.closed_form()
    with paddle.no_grad():
        for p, g in grads:
            p.grad.add_(g)
    opt.step(); opt.clear_grad()
"""
from __future__ import annotations

import paddle

from ._ops import inner
from .base import Regularizer, load_tensors


class L2SP(Regularizer):
    """``alpha/2 ||w_S - w_S^0||^2 + beta/2 ||w_new||^2`` with ``w_S^0`` a frozen in-memory copy taken at
    ``attach``.

    Args:
        alpha: weight of the distance of the backbone to its pretrained value.
        beta: weight of the classifier's squared norm.
    """

    name = "l2sp"
    DEFAULTS = {"alpha": 0.01, "beta": 0.01}

    def __init__(self, alpha: float = 0.01, beta: float = 0.01):
        super().__init__(beta=beta)
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)
        self.reference: dict[str, paddle.Tensor] = {}

    @paddle.no_grad()
    def _attach(self) -> None:
        # float32 copies: under AMP O2 the live weights are half precision, the reference must not be
        self.reference = {}
        for name, p in self.body_params:
            ref = p.detach().astype("float32").clone()
            ref.stop_gradient = True
            self.reference[name] = ref

    @paddle.no_grad()
    def closed_form(self, grad_scale=None):
        head_value, grads = super().closed_form(grad_scale)
        if self.alpha == 0:
            return head_value, grads
        factor = self.alpha if grad_scale is None else grad_scale * self.alpha
        squares = []
        for name, p in self.body_params:
            diff = self.fp32(p) - self.reference[name]
            squares.append(inner(diff, diff))
            if isinstance(factor, float):
                diff.scale_(factor)  # in place: the difference becomes the gradient, no extra tensor
            else:
                diff.multiply_(factor)
            grads.append((p, diff))
        value = 0.5 * self.alpha * paddle.add_n(squares)
        return (value if head_value is None else value + head_value), grads

    def distances(self) -> dict[str, float]:
        """``||w - w0||`` per backbone parameter (analysis: which layers moved)."""
        self._require_attached()
        with paddle.no_grad():
            diffs = {n: self.fp32(p) - self.reference[n] for n, p in self.body_params}
            return {n: float(paddle.sqrt(inner(d, d))) for n, d in diffs.items()}

    def state_dict(self):
        return {f"reference.{k}": v for k, v in self.reference.items()}

    def set_state_dict(self, state):
        self._require_attached()
        load_tensors(self.reference, state, "reference.", "L2-SP reference")

    def describe(self) -> str:
        return (f"L2-SP alpha={self.alpha:g} on {len(self.body_params)} pretrained tensors, "
                f"beta={self.beta:g} on the head")
