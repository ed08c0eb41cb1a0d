"""Feature-map distillation from the frozen pretrained network ("KD" in the DTNH paper).

Knowledge distillation used as a transfer regularizer: the pretrained network, frozen, is the teacher, and the
network being fine-tuned is kept close to it in *behaviour* — its feature maps on the target images — rather than
in weight space as L2-SP does. DTNH (Wan et al., ICDM 2019, arXiv:1911.07489) evaluates this regularizer with and
without its descent-direction correction; DELTA (``delta.py``) is the same distance with a channel attention.

Formula, for the batch ``x_1..x_B`` and the chosen layers ``l`` with feature maps ``FM_l`` of shape
``[B, C_l, H_l, W_l]`` (``w0``: the frozen pretrained network)::

    Omega(w) = alpha/2 * sum_i sum_l sum_c  a_{l,c} * mean_{h,w} (FM_l(w, x_i) - FM_l(w0, x_i))_{c,h,w}^2
               + beta/2 * ||w_new||^2

with ``a_{l,c} = 1`` here (DELTA: an attention averaging 1 over the channels). The per-channel *mean* over the
spatial positions keeps ``alpha`` comparable across layers and resolutions. The images of the batch are *summed*
(``reduction='sum'``), as the DELTA authors (``train.py``, ``reg_att_fea_map``) and tllib do, so ``alpha = 0.01``
means what it means there; ``reduction='mean'`` divides by the batch size ``B`` (alpha then acts ``B`` times
weaker). A 2-D feature ``[B, D]`` is treated as ``D`` channels of one position. On N cards ``B`` is the global
batch: each rank's sum is multiplied by N (DataParallel averages the ranks' gradients; ``global_batch.py``).

Source of the formula: DTNH's code is not public. The nearest authors' code is the DELTA authors' unweighted
baseline (``train.py`` lines 156-162, ``reg_fea_map``): ``0.5 ||FM_t - FM_s||^2`` on their four conv3 layers,
summed over the batch, the channels AND the positions (no ``1/(H W)``), plus their head term ``beta = 0.01``
(lines 216-217, 224). ``positions='sum'`` gives that sum; the paper configs (``configs/methods/kd.yaml``) select it
with their layers and beta. ``positions='mean'`` (the default) is DELTA's attention term with every channel weight
1, which keeps ``alpha`` comparable across layers and resolutions (``docs/fidelity.md``).

Default layer ``layer4`` (the last stage of a ResNet: the teacher's "outer-layer" feature maps, as in DTNH's
description of the KD baseline); ``alpha = 0.01`` as DELTA's feature term, ``beta = 0`` (pure distillation; the
optimizer's weight decay still applies).

Cost: the student's feature maps are read with forward hooks from the task's own forward pass; the teacher runs
one forward per step without gradient (eval mode, pretrained batch-norm statistics). The teacher is built once, in
memory, at ``attach`` (a frozen copy of the network at that moment: pretrained backbone).

Shapes: ``penalty(inputs)`` takes the network's input list (``[images]``, images ``[B, 3, H, W]``) and returns a
0-d float32 tensor.

In one's own loop::

    kd = FeatureDistillation(alpha=0.01, layers=["layer4"]).attach(model)
    with kd.observe():
        logits = model(x)
    loss = F.cross_entropy(logits, y) + kd.penalty([x])
    loss.backward()
"""
from __future__ import annotations

import paddle

from ..config.schema import register_choices
from ._ops import as_float32
from .base import Regularizer, frozen_copy, load_tensors
from .capture import FeatureCapture, resolve_layers
from .global_batch import as_global_sum

RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")


def default_layers(network, stages: tuple[str, ...]) -> list[str]:
    """``stages`` when ``network`` has them (our ResNets), else an error asking for ``regularizer.layers``."""
    names = dict(network.named_sublayers())
    if all(s in names for s in stages):
        return list(stages)
    raise ValueError(f"{type(network).__name__} has no {', '.join(stages)}: name the feature layers to regularize "
                     f"with regularizer.layers (or layers=[...])")


REDUCTIONS = register_choices("regularizer.feature_reduction", ("sum", "mean"))
POSITIONS = register_choices("regularizer.feature_positions", ("mean", "sum"))


def feature_map_distance(student: paddle.Tensor, teacher: paddle.Tensor,
                         channel_weights: paddle.Tensor | None = None, reduction: str = "sum",
                         positions: str = "mean") -> paddle.Tensor:
    """``sum_i sum_c a_c mean_{spatial} (student - teacher)^2`` in float32 (``reduction='mean'``: ``1/B sum_i``;
    ``positions='sum'``: ``sum_{spatial}``, the DELTA authors' ``reg_fea_map``).

    Args:
        student: ``[B, C, ...]`` (any number of trailing spatial dims, or none).
        teacher: same shape, no gradient needed.
        channel_weights: ``[C]`` or ``None`` (all ones).
        reduction: over the batch, ``'sum'`` (the DELTA authors) or ``'mean'``.
    Returns: a 0-d tensor.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    if positions not in POSITIONS:
        raise ValueError(f"positions must be one of {', '.join(POSITIONS)}, got {positions!r}")
    if student.shape != teacher.shape:
        raise ValueError(f"student and teacher features differ in shape: {student.shape} vs {teacher.shape}")
    squared = (as_float32(student) - as_float32(teacher)) ** 2
    spatial = list(range(2, squared.ndim))
    if not spatial:
        per_channel = squared  # [B, C]
    else:
        per_channel = squared.mean(axis=spatial) if positions == "mean" else squared.sum(axis=spatial)
    if channel_weights is not None:
        per_channel = per_channel * channel_weights
    per_image = per_channel.sum(axis=1)
    return per_image.sum() if reduction == "sum" else per_image.mean()


class FeatureDistillation(Regularizer):
    """Distance of feature maps to those of the frozen pretrained network (see the module docstring).

    Args:
        alpha: weight of the feature distance.
        beta: weight of the classifier's squared norm.
        layers: dotted names of the sub-layers whose outputs are compared (default: ``['layer4']``).
        reduction: ``'sum'`` (default, the DELTA authors) or ``'mean'`` over the images of a batch.
        positions: ``'mean'`` (default) or ``'sum'`` (the DELTA authors' ``reg_fea_map``) over the positions.
    """

    name = "kd"
    DEFAULTS = {"alpha": 0.01, "beta": 0.0}
    CONFIG_KEYS = {"layers": "layers", "reduction": "feature_reduction", "positions": "feature_positions"}
    DEFAULT_LAYERS: tuple[str, ...] = ("layer4",)

    def __init__(self, alpha: float = 0.01, beta: float = 0.0, layers=None, reduction: str = "sum",
                 positions: str = "mean"):
        super().__init__(beta=beta)
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {', '.join(POSITIONS)}, got {positions!r}")
        self.alpha, self.reduction, self.positions = float(alpha), reduction, positions
        self.layers = list(layers) if layers else None
        self.teacher = None
        self._student_features: FeatureCapture | None = None
        self._teacher_features: FeatureCapture | None = None

    def _attach(self) -> None:
        if self.layers is None:
            self.layers = self.default_layers(self.network)
        resolve_layers(self.network, self.layers)  # fail before copying a large network
        self.teacher = frozen_copy(self.network)  # before the student's hooks, so the copy has none of them
        self._student_features = FeatureCapture(self.network, self.layers)
        self._teacher_features = FeatureCapture(self.teacher, self.layers)

    def default_layers(self, network) -> list[str]:
        """The layers compared when none are named: ``DEFAULT_LAYERS`` of our ResNets."""
        return default_layers(network, self.DEFAULT_LAYERS)

    def observe(self):
        self._require_attached()
        return self._student_features.recording()

    @paddle.no_grad()
    def teacher_features(self, inputs: list) -> dict[str, paddle.Tensor]:
        """The frozen pretrained network's feature maps for ``inputs``."""
        with self._teacher_features.recording() as features:
            self.teacher(*inputs)
        return dict(features)

    def channel_weights(self, layer: str) -> paddle.Tensor | None:
        """``a_{l,c}`` of ``layer``; plain distillation weighs every channel 1."""
        return None

    def penalty(self, inputs: list) -> paddle.Tensor | None:
        self._require_attached()
        if self.alpha == 0:
            return None
        targets = self.teacher_features(inputs)
        terms = [feature_map_distance(self._student_features.get(name), targets[name], self.channel_weights(name),
                                      self.reduction, self.positions)
                 for name in self.layers]
        penalty = (0.5 * self.alpha) * paddle.add_n(terms)
        return as_global_sum(penalty) if self.reduction == "sum" else penalty  # several cards: global_batch.py

    def state_dict(self):
        self._require_attached()
        return {f"teacher.{k}": v for k, v in self.teacher.state_dict().items()}

    def set_state_dict(self, state):
        self._require_attached()
        load_tensors(self.teacher.state_dict(), {k: v for k, v in state.items() if k.startswith("teacher.")},
                     "teacher.", f"{type(self).__name__} teacher")

    def describe(self) -> str:
        return (f"feature distillation alpha={self.alpha:g} on {', '.join(self.layers or [])} (batch "
                f"{self.reduction}, positions {self.positions}), beta={self.beta:g}")
