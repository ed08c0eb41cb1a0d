"""DTNH: the descent direction that lets a transfer regularizer never push against the task loss.

Wan, Xiong, Li, Zhu, Huan, "Towards Making Deep Transfer Learning Never Hurt", ICDM 2019 (arXiv:1911.07489);
journal version "GrOD" (ACM TKDD 2022).

Why: regularized fine-tuning minimizes ``L(w) + Omega(w)``, and its step follows ``g_L + g_R`` (``g_L = dL/dw``,
``g_R = dOmega/dw``). When the pretrained reference is a poor fit for the target task, ``g_R`` points partly
*against* ``g_L`` and the step trades empirical loss for closeness to the reference: the regularizer hurts. DTNH
computes the two gradients separately and, when ``<g_L, g_R> < 0``, removes from ``g_R`` its component along
``g_L``; the part of ``g_R`` orthogonal to ``g_L`` is kept, so the regularization still acts wherever it does
not conflict::

    d = g_L + g_R                                     if <g_L, g_R> >= 0
    d = g_L + g_R - (<g_L, g_R> / ||g_L||^2) g_L      otherwise      (= g_L + the part of g_R orthogonal to g_L)

Then ``<d, g_L> >= ||g_L||^2 > 0``: to first order the step lowers the task loss at least as much as the step on
``L`` alone would.

Granularity: the decomposition can be made per layer (each layer's parameters are one vector: ``g_L^l`` against
``g_R^l``) or once over the whole parameter vector (``granularity='global'``). Per layer is the stricter form —
it removes conflicts that a global inner product averages away — and it is the default here. What we found about
the paper's choice, and where: the copies of the paper reachable from this project (the abstract and the
introduction of arXiv:1911.07489v1, as mirrored at deepai.org/publication/towards-making-deep-transfer-learning-
never-hurt and docslib.org/doc/12912201) say only that DTNH "computes the derivatives of the two terms separately,
then re-estimates a new descent direction"; its method section (Sec. III) was not readable there. The default is
therefore our choice, not a verified reading of the paper: check Sec. III of the PDF and switch the default to
``'global'`` if the paper decomposes the whole vector.

Cost: on top of the two gradients, two float32 inner products per parameter tensor and one in-place rescaling of
the task gradient; no host synchronization (statistics stay on the device until ``summary()``).

Statistics (the evidence users want): per step, for every layer on which both gradients are non-zero, whether
they conflicted and their cosine; plus the cosine of the whole vectors. ``summary()`` averages them since the last
call. They are computed per layer whatever the granularity.

In one's own loop (``reg`` a differentiable penalty, e.g. ``alpha * distance``)::

    dtnh = DTNH(model.named_parameters())                 # granularity='layer'
    ...
    dtnh.backward(task_loss, reg)                         # .grad <- the never-hurt direction
    opt.step(); opt.clear_grad()

or, with a closed-form regularizer gradient (L2-SP)::

    dtnh.backward(task_loss, reg_grad_pairs=l2sp.closed_form()[1])
"""
from __future__ import annotations

import paddle

from ..core import paddle_compat
from ..config.schema import register_choices
from ._ops import as_float32, inner, zero_scalar

GRANULARITIES = register_choices("dtnh.granularity", ("layer", "global"))

# accumulated statistics, in this order, in one device tensor
_CONFLICTS, _LAYERS, _COSINE_SUM, _GLOBAL_COSINE_SUM, _GLOBAL_CONFLICTS, _STEPS = range(6)


def never_hurt_direction(task_grad: paddle.Tensor, reg_grad: paddle.Tensor) -> paddle.Tensor:
    """The DTNH direction for one vector pair (reference form of what ``DTNH.apply`` does per group)."""
    dot = inner(task_grad, reg_grad)
    if float(dot) < 0:
        reg_grad = reg_grad - (dot / inner(task_grad, task_grad)) * task_grad
    return task_grad + reg_grad


def add_aligned(a: list, b: list) -> list:
    """Element-wise sum of two aligned gradient lists where None means zero."""
    return [y if x is None else (x if y is None else x + y) for x, y in zip(a, b)]


def layer_of(parameter_name: str) -> str:
    """The layer owning a parameter: ``'layer1.0.conv1.weight'`` -> ``'layer1.0.conv1'``."""
    return parameter_name.rpartition(".")[0] or parameter_name


class DTNH:
    """Combines task and regularizer gradients of ``named_parameters`` into the never-hurt direction, in place.

    Args:
        named_parameters: ``(name, parameter)`` pairs, e.g. ``model.named_parameters()``; parameters that take
            no gradient (batch-norm statistics, frozen layers) are skipped.
        granularity: ``'layer'`` (one decomposition per layer, the default) or ``'global'`` (one for all).
    """

    def __init__(self, named_parameters, granularity: str = "layer"):
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")
        pairs = [(n, p) for n, p in named_parameters if not p.stop_gradient]
        if not pairs:
            raise ValueError("DTNH needs at least one trainable parameter")
        self.granularity = granularity
        self.names = [n for n, _ in pairs]
        self.parameters = [p for _, p in pairs]
        self._index = {id(p): i for i, p in enumerate(self.parameters)}
        self.layers = list(dict.fromkeys(layer_of(n) for n in self.names))
        membership = [[1.0 if layer_of(n) == layer else 0.0 for n in self.names] for layer in self.layers]
        self._layer_of_param = paddle.to_tensor(membership, dtype="float32")  # [layers, params]
        self._groups = (self._layer_of_param if granularity == "layer"
                        else paddle.ones([1, len(self.parameters)], dtype="float32"))
        self._groups_t = self._groups.T
        self._zero = zero_scalar()
        self._totals = paddle.zeros([6], dtype="float32")

    def align(self, pairs) -> list[paddle.Tensor | None]:
        """``[(param, grad), ...]`` (e.g. a regularizer's ``closed_form()[1]``) as a list aligned with
        ``self.parameters`` (None where absent); gradients of the same parameter are summed."""
        grads: list[paddle.Tensor | None] = [None] * len(self.parameters)
        for p, g in pairs:
            i = self._index.get(id(p))
            if i is None:
                raise ValueError(f"{p.name} is not one of the parameters DTNH was built with")
            grads[i] = g if grads[i] is None else grads[i] + g
        return grads

    def regularizer_grads(self, reg_loss: paddle.Tensor, retain_graph: bool = True) -> list[paddle.Tensor | None]:
        """``g_R`` of a differentiable ``reg_loss`` without touching ``.grad`` (keeps the graph for ``g_L``)."""
        return list(paddle.grad(reg_loss, self.parameters, retain_graph=retain_graph, allow_unused=True))

    def backward(self, task_loss: paddle.Tensor, reg_loss: paddle.Tensor | None = None,
                 reg_grad_pairs=()) -> None:
        """``.grad`` <- the DTNH direction of ``task_loss`` and the regularizer: a differentiable ``reg_loss``
        and/or closed-form ``(param, grad)`` pairs. One backward for each loss over the one forward."""
        reg = self.regularizer_grads(reg_loss) if reg_loss is not None else [None] * len(self.parameters)
        task_loss.backward()
        self.apply(add_aligned(reg, self.align(reg_grad_pairs)))

    @paddle.no_grad()
    def apply(self, reg_grads) -> None:
        """Replace each parameter's ``.grad`` (``g_L``) by the DTNH combination with ``reg_grads`` (``g_R``).

        ``reg_grads`` is aligned with ``self.parameters`` (None: no regularizer gradient for it). Both must be in
        the same units: under AMP either both scaled by the loss scale or both unscaled — the direction is
        positively homogeneous (``d(s g_L, s g_R) = s d(g_L, g_R)``), so decomposing scaled gradients equals
        scaling the decomposed one, and a GradScaler's inf check then sees the combined gradient.
        """
        if len(reg_grads) != len(self.parameters):
            raise ValueError(f"expected {len(self.parameters)} regularizer gradients, got {len(reg_grads)}")
        dots, task_sq, reg_sq = [], [], []
        for p, g_r in zip(self.parameters, reg_grads):
            g_l = p.grad
            dots.append(inner(g_l, g_r) if g_l is not None and g_r is not None else self._zero)
            task_sq.append(inner(g_l, g_l) if g_l is not None else self._zero)
            reg_sq.append(inner(g_r, g_r) if g_r is not None else self._zero)
        dot, task_sq, reg_sq = paddle.stack(dots), paddle.stack(task_sq), paddle.stack(reg_sq)  # [params]

        group_dot = paddle.mv(self._groups, dot)
        group_task_sq = paddle.mv(self._groups, task_sq)
        coefficient = paddle.where(group_dot < 0, group_dot / paddle.clip(group_task_sq, min=1e-30),
                                   paddle.zeros_like(group_dot))
        factors = paddle.unbind(1.0 - paddle.mv(self._groups_t, coefficient))  # per parameter: 1 - <.,.>/||.||^2

        for p, g_r, factor in zip(self.parameters, reg_grads, factors):
            g_l = p.grad
            if g_l is None:
                if g_r is not None:
                    paddle_compat.set_gradient(p, g_r.astype(p.dtype))  # the task does not reach p: the regularizer
                continue
            if g_l.dtype == paddle.float32:
                g_l.multiply_(factor)
                if g_r is not None:
                    g_l.add_(g_r if g_r.dtype == paddle.float32 else g_r.astype("float32"))
            else:  # half-precision gradients (AMP O2): combine in float32, write back
                combined = as_float32(g_l) * factor
                if g_r is not None:
                    combined = combined + as_float32(g_r)
                paddle.assign(combined.astype(g_l.dtype), output=g_l)
        self._accumulate(dot, task_sq, reg_sq)

    def _accumulate(self, dot, task_sq, reg_sq) -> None:
        """Add this step's statistics to the running sums, unless a gradient was not finite: under AMP that step
        overflowed and the loss scaler skips it, and its inf or NaN would stay in the sums for the whole epoch.
        Decided on the device (``where``), no host synchronization. The cosines are taken as ``dot / (|a| |b|)``:
        the product of two loss-scaled squared norms overflows float32 long before either norm does."""
        layer_dot = paddle.mv(self._layer_of_param, dot)
        layer_task, layer_reg = paddle.mv(self._layer_of_param, task_sq), paddle.mv(self._layer_of_param, reg_sq)
        both = paddle.logical_and(layer_task > 0, layer_reg > 0).astype("float32")
        cosine = layer_dot / paddle.clip(paddle.sqrt(layer_task) * paddle.sqrt(layer_reg), min=1e-30) * both
        total_dot, total_task, total_reg = dot.sum(), task_sq.sum(), reg_sq.sum()
        has_both = paddle.logical_and(total_task > 0, total_reg > 0).astype("float32")
        step = paddle.stack([
            ((layer_dot < 0).astype("float32") * both).sum(), both.sum(), cosine.sum(),
            total_dot / paddle.clip(paddle.sqrt(total_task) * paddle.sqrt(total_reg), min=1e-30) * has_both,
            (total_dot < 0).astype("float32") * has_both, has_both])
        finite = paddle.isfinite(paddle.stack([total_dot, total_task, total_reg])).all()
        self._totals = paddle.where(finite, self._totals + paddle.nan_to_num(step), self._totals)

    @property
    def totals(self) -> list[float]:
        """The running sums ``summary`` averages, as plain numbers: what a checkpoint taken in the middle of an
        epoch keeps so that the epoch's statistics still cover all its steps (one host synchronization)."""
        return self._totals.numpy().tolist()

    @totals.setter
    def totals(self, values: list[float]) -> None:
        self._totals = paddle.to_tensor(values, dtype="float32")

    def summary(self, reset: bool = True) -> dict:
        """Averages since the last reset (one host synchronization):

        ``conflict_fraction``: share of (layer, step) pairs where ``<g_L, g_R> < 0``; ``mean_cosine``: mean
        per-layer ``cos(g_L, g_R)``; ``global_cosine``: mean whole-vector cosine; ``global_conflict_fraction``:
        share of steps whose whole vectors conflicted; ``steps``, ``layers``. Only layers (steps) where both
        gradients are non-zero count; a step whose gradients were not finite (an AMP overflow, which the loss scaler
        skips) does not count at all. Empty dict when nothing was recorded.
        """
        t = self._totals.numpy().tolist()
        if reset:
            self._totals = paddle.zeros([6], dtype="float32")
        steps = t[_STEPS]
        if t[_LAYERS] == 0 or steps == 0:
            return {}
        return {"conflict_fraction": t[_CONFLICTS] / t[_LAYERS], "mean_cosine": t[_COSINE_SUM] / t[_LAYERS],
                "global_cosine": t[_GLOBAL_COSINE_SUM] / steps,
                "global_conflict_fraction": t[_GLOBAL_CONFLICTS] / steps, "steps": int(steps),
                "layers": round(t[_LAYERS] / steps, 1)}

    def __repr__(self) -> str:
        return f"DTNH(granularity={self.granularity!r}, {len(self.parameters)} tensors in {len(self.layers)} layers)"
