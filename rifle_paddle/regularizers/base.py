"""What every transfer regularizer is to the training step: a penalty ``Omega(w)`` with two possible parts.

Fine-tuning with a regularizer minimizes ``L(w) + Omega(w)``, where ``Omega`` already carries its weights
(``alpha``, ``beta``). Regularizers differ in *how their gradient can be had*, and that decides their cost:

- a **closed-form** part, a function of the weights alone (L2-SP's ``alpha/2 ||w - w0||^2``, the head's
  ``beta/2 ||w_head||^2``): value and gradient are computed directly (``alpha (w - w0)``, ``beta w``), never by
  autograd, so it costs one pass over the parameters and no backward pass at all;
- a **feature** part, a function of tensors inside the network (DELTA, feature distillation, BSS): its value is
  computed from tensors recorded during the task's own forward pass (``observe()``), and its gradient comes from
  autograd through that same graph.

The training step (``RegularizedStep``) asks for both parts and decides how to form the update: one backward of
``L + Omega_feature`` plus the closed-form gradient, or, with DTNH, ``g_L`` and ``g_R`` separately.

Plain L2 (weight decay towards 0 on every weight, the usual fine-tuning baseline) is *not* a regularizer here: it is
the optimizer's ``weight_decay`` (``train.weight_decay``, coupled ``L2Decay``), applied inside the optimizer step
to whatever gradient the step produced, so it is never projected by DTNH and never duplicated.

Frozen references (L2-SP's starting point, the teachers of DELTA and distillation) are built once, in memory, by
``attach``; ``state_dict()`` / ``set_state_dict()`` save and restore them so a resumed run regularizes towards the
same reference rather than towards the weights it resumed from.
"""
from __future__ import annotations

import contextlib
import copy

import paddle
from paddle import nn

from ..models.classifier import find_classifier
from ._ops import inner


def frozen_copy(network: nn.Layer) -> nn.Layer:
    """An independent copy of ``network`` in eval mode whose parameters take no gradient.

    Eval mode matters: batch norm then normalizes with the pretrained running statistics and never updates them,
    and the stochastic tricks (dropout, stochastic depth, DropConnect) are off. The copy is not a sub-layer of
    anything, so it is invisible to the optimizer and absent from the network's checkpoints.
    """
    teacher = copy.deepcopy(network)
    teacher.eval()
    for p in teacher.parameters():
        p.stop_gradient = True
    return teacher


class Regularizer:
    """Base class: ``Omega(w) = feature part + closed-form part``, plus ``beta/2 ||w_head||^2`` on the new head.

    The head term is the "new layer" term of L2-SP and DELTA (Li et al. 2018, 2019): the classifier has no
    pretrained value, so it is pulled towards 0 — also right after a RIFLE re-initialization, which draws a new head.

    Life cycle: ``attach(network)`` once, after the pretrained weights are loaded (this is when references are
    taken); ``prepare(loader)`` once before training for regularizers that need data (DELTA's attention); then per
    step ``with observe(): forward``, ``penalty(images)`` and ``closed_form()``.

    Subclasses set ``name``, ``uses_reference`` and override ``_attach`` / ``penalty`` / ``closed_form``.
    """

    name = "regularizer"
    #: regularizes towards the pretrained state (meaningless without pretrained weights; checked in the config)
    uses_reference = True
    #: constructor argument -> the ``regularizer`` config key that sets it (``build_regularizer`` reads these; the
    #: weights alpha/beta are common to all and come from ``DEFAULTS`` when null)
    CONFIG_KEYS: dict[str, str] = {}
    #: AMP O2: the optimizer's ``{parameter name: fp32 master weight}``, set by the training step. The closed-form
    #: terms read these, not the live half-precision weights, whose rounding alone put L2-SP's distance to the
    #: pretrained weights at 2e-2 at step 0 on ResNet-18 (``fp32``)
    master_weights: dict = {}

    def __init__(self, beta: float = 0.0):
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.beta = float(beta)
        self.network: nn.Layer | None = None
        self.head_name: str | None = None
        self.head_params: list[tuple[str, paddle.Tensor]] = []
        self.body_params: list[tuple[str, paddle.Tensor]] = []

    # -- set-up ------------------------------------------------------------------------------------------------
    def attach(self, network: nn.Layer, head_name: str | None = None) -> "Regularizer":
        """Bind to ``network`` (pretrained weights loaded, head new); returns ``self``."""
        if self.network is not None:
            raise RuntimeError(f"{type(self).__name__} is already attached to a network")
        self.head_name, head = find_classifier(network, head_name)
        head_ids = {id(p) for p in head.parameters()}
        trainable = [(n, p) for n, p in network.named_parameters() if not p.stop_gradient]
        self.head_params = [(n, p) for n, p in trainable if id(p) in head_ids]
        self.body_params = [(n, p) for n, p in trainable if id(p) not in head_ids]
        self.network = network
        self._attach()
        return self

    def _attach(self) -> None:
        """Subclass hook: take references, register hooks."""

    def prepare(self, loader) -> None:
        """Data-dependent set-up before training (DELTA's channel attention); default: nothing."""

    def fp32(self, p: paddle.Tensor) -> paddle.Tensor:
        """The float32 value of parameter ``p``: its master weight under AMP O2, else ``p`` (cast if needed)."""
        master = self.master_weights.get(p.name)
        if master is not None:
            return master
        return p if p.dtype == paddle.float32 else p.astype("float32")

    def _require_attached(self) -> None:
        if self.network is None:
            raise RuntimeError(f"{type(self).__name__} is not attached: call .attach(network) first")

    # -- per step ----------------------------------------------------------------------------------------------
    def observe(self):
        """Context manager around the task's forward pass that records what ``penalty`` needs."""
        return contextlib.nullcontext()

    def penalty(self, inputs: list) -> paddle.Tensor | None:
        """Weighted feature part of ``Omega`` for the batch ``inputs`` (the network's inputs), differentiable;
        ``None`` when the regularizer has none."""
        return None

    @paddle.no_grad()
    def closed_form(self, grad_scale: paddle.Tensor | None = None
                    ) -> tuple[paddle.Tensor | None, list[tuple[paddle.Tensor, paddle.Tensor]]]:
        """Value and gradient of the weighted closed-form part: ``(value, [(param, grad), ...])``.

        ``grad_scale`` (AMP's loss scale) multiplies the gradients, not the value, so they are in the same units
        as gradients of a scaled loss. Default: the head term ``beta/2 ||w_head||^2``, gradient ``beta w_head``.
        """
        self._require_attached()
        if self.beta == 0 or not self.head_params:
            return None, []
        factor = self.beta if grad_scale is None else grad_scale * self.beta
        squares, grads = [], []
        for _, p in self.head_params:
            w = self.fp32(p)
            squares.append(inner(w, w))
            grads.append((p, w * factor))
        return 0.5 * self.beta * paddle.add_n(squares), grads

    # -- checkpoints -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, paddle.Tensor]:
        """The frozen references (and data-dependent state) needed to continue exactly; default: none."""
        return {}

    def set_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got keys {sorted(state)[:5]}")

    def describe(self) -> str:
        return f"{self.name}(beta={self.beta:g})"

    def __repr__(self) -> str:
        return self.describe()


def load_tensors(target: dict[str, paddle.Tensor], state: dict, prefix: str, owner: str) -> None:
    """Copy ``state[prefix + key]`` into every ``target[key]`` (in place); all keys must be there, shapes equal."""
    missing = [k for k in target if prefix + k not in state]
    wrong = [f"{k}: {list(state[prefix + k].shape)} vs {list(t.shape)}" for k, t in target.items()
             if prefix + k in state and list(state[prefix + k].shape) != list(t.shape)]
    if missing or wrong:
        detail = (f"missing {missing[:3]}" if missing else "") + (f" shape mismatch {wrong[:3]}" if wrong else "")
        raise ValueError(f"{owner} state does not fit: {detail.strip()}")
    for key, tensor in target.items():
        value = state[prefix + key]
        tensor.set_value(value if isinstance(value, paddle.Tensor) else paddle.to_tensor(value))
