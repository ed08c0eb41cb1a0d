"""DELTA: feature-map distance to the pretrained network, weighted by a supervised channel attention.

Li, Xiong, Wang, Wang, Liu, Pan, Huan, "DELTA: DEep Learning Transfer using Feature Map with Attention for
Convolutional Networks", ICLR 2019 (arXiv:1901.09229).

Why: keeping *every* channel of the outer feature maps close to the pretrained network (plain distillation) also
preserves channels that are useless, or harmful, for the target task. DELTA weighs each channel by how much the
target task relies on it in the pretrained network, so the useful behaviour is kept and the rest may adapt::

    Omega(w) = alpha/2 * sum_i sum_l sum_c  a_{l,c} * mean_{h,w} (FM_l(w, x_i) - FM_l(w0, x_i))_{c,h,w}^2
               + beta/2 * ||w_new||^2

summed over the images ``i`` of the batch, as the DELTA authors' ``reg_att_fea_map`` (``train.py``):
``0.5 * sum(c * w_c * ||FM_t - FM_s||^2 / (h w))`` with ``w = softmax(z / 5)``, i.e. ``a_{l,c} = C_l w_c``.

(``feature_map_distance`` in ``feature_distillation.py``.) The attention of channel ``c`` of layer ``l`` comes from
the pretrained network ``w0`` with a linear classifier fitted on the target data on top of it (the paper's
"discriminator"): the increase of that classifier's cross-entropy when the channel is zeroed,

    delta_{l,c} = mean over batches ( CE(w0 with channel (l, c) removed) - CE(w0) ),

standardized over the channels of the layer and turned into weights ``a_{l,.} = C_l * softmax(delta_{l,.} / T)``,
``T = 5`` (the DELTA authors' ``train.py``: ``(js - mean) / std``, then ``softmax(cw / 5)``, later multiplied by
the channel count ``c``; the factor ``C_l`` makes the weights average 1, so ``alpha`` means the same as for plain
distillation). ``attention='uniform'`` sets every ``a = 1``.

Defaults, the DELTA authors': the output of the last convolution of each stage's last block, before its batch
norm and the residual add (``layer1.2.conv3, layer2.3.conv3, layer3.5.conv3, layer4.2.conv3`` on ResNet-50; the
last block's ``conv2`` on the basic-block ResNet-18/34, which the authors did not use); channels scored by zeroing
that convolution's output channel, which is what their ``channel_eval.py`` does by zeroing the filter; 4 scoring
batches; ``alpha = beta = 0.01``. ``layers=['layer1', ..., 'layer4']`` compares the stage outputs instead.
The "discriminator" (``probe``): ``'authors'`` trains a new fc on a copy of the pretrained network as
``channel_eval.py``'s ``train_classifier`` does: 10 epochs over the training loader, SGD lr 0.01 momentum 0.9 weight
decay 1e-4, the learning rate multiplied by ``exp(ln 0.1 / 6)`` every epoch, backbone frozen but in training mode
(``model.train()``: batch statistics, running statistics updated), then scores the channels with that copy in
eval mode. ``'fast'`` (ours, for quick runs) fits a linear probe with Adam on the frozen eval-mode features of the
scoring batches only.

Cost: the attention is computed once, before training (``prepare(loader)``): a frozen forward of every batch
per channel — 960 channels for a ResNet-18, 3840 for a ResNet-50 — over ``attention_batches`` batches (several
channels per pass, on replicas of the batch).
It is part of ``state_dict()``, so a resumed run does not recompute it. On N cards every rank scores, and trains
the discriminator, on the global batches (each gathered from all ranks, ``global_batch.py``): the attention one card
computes with the same global batch, identical on every rank. During training DELTA costs one teacher
forward without gradient per step, like distillation.
"""
from __future__ import annotations

import logging
import math

import paddle
import paddle.nn.functional as F
from paddle import nn

from ..config.schema import register_choices
from ..core.eta import Eta
from .base import frozen_copy
from .capture import INPUT, FeatureCapture, resolve_layers
from .global_batch import GlobalBatches
from .feature_distillation import RESNET_STAGES, FeatureDistillation

log = logging.getLogger(__name__)

ATTENTIONS = register_choices("regularizer.delta_attention", ("supervised", "uniform"))


def _probe(features: paddle.Tensor, labels: paddle.Tensor, num_classes: int, steps: int = 200,
           lr: float = 0.05) -> nn.Linear:
    """A linear classifier fitted on fixed features (full batch, Adam): the "discriminator" of DELTA."""
    probe = nn.Linear(features.shape[1], num_classes)
    opt = paddle.optimizer.Adam(learning_rate=lr, parameters=probe.parameters())
    for _ in range(steps):
        loss = F.cross_entropy(probe(features), labels)
        loss.backward()
        opt.step()
        opt.clear_grad()
    return probe


class _ZeroChannels:
    """Forward post-hook for a batch made of ``k`` replicas of the same images: zeroes channel ``channels[j]`` in
    replica ``j`` (``channels`` None: pass through, only record the layer's channel count)."""

    def __init__(self):
        self.channels: list[int] | None = None
        self.count = 0

    def __call__(self, layer, inputs, output):
        self.count = output.shape[1]
        if self.channels is None:
            return None
        k = len(self.channels)
        keep = paddle.ones([k, output.shape[1]], dtype=output.dtype)
        keep[paddle.arange(k), paddle.to_tensor(self.channels)] = 0.0
        trailing = [1] * (output.ndim - 2)
        replicas = output.reshape([k, -1] + list(output.shape[1:]))
        return (replicas * keep.reshape([k, 1, -1] + trailing)).reshape(output.shape)


PROBES = register_choices("regularizer.attention_probe", ("authors", "fast"))


def train_probe_like_the_authors(network: nn.Layer, head_name: str, loader, num_classes: int, epochs: int = 10,
                                 lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 1e-4,
                                 decay_epochs: int = 6) -> nn.Linear:
    """A new classifier on top of ``network`` (frozen), trained as the DELTA authors' ``channel_eval.py``.

    ``network`` runs in training mode, as their ``model.train()``: batch norm normalizes with batch statistics and
    updates its running statistics, so pass a copy. The new fc starts as PyTorch's ``nn.Linear``
    (``U(+-1/sqrt(in))`` for weight and bias); epoch ``e`` uses ``lr * gamma**e``, ``gamma = exp(ln(0.1) /
    decay_epochs)`` (``ExponentialLR`` stepped at each epoch's start, in the PyTorch of 2019).
    """
    head_input = FeatureCapture(network, [head_name], what=INPUT)
    in_features = dict(network.named_sublayers())[head_name].weight.shape[0]
    probe = nn.Linear(in_features, num_classes)
    bound = 1.0 / math.sqrt(in_features)
    for p in probe.parameters():
        nn.initializer.Uniform(-bound, bound)(p)
    gamma = math.exp(math.log(0.1) / decay_epochs)
    opt = paddle.optimizer.Momentum(learning_rate=lr, momentum=momentum, parameters=probe.parameters(),
                                    weight_decay=paddle.regularizer.L2Decay(weight_decay))
    network.train()
    try:
        for epoch in range(epochs):
            opt.set_lr(lr * gamma ** epoch)
            for batch in loader:
                with paddle.no_grad(), head_input.recording() as recorded:
                    network(batch[0])
                features = paddle.flatten(recorded[head_name], 1).astype("float32")
                loss = F.cross_entropy(probe(features), paddle.reshape(batch[1], [-1]).astype("int64"))
                loss.backward()
                opt.step()
                opt.clear_grad()
    finally:
        network.eval()
        head_input.remove()
    return probe


def channel_importance(teacher: nn.Layer, head_name: str, layers: list[str], batches: list, num_classes: int,
                       images_per_forward: int = 128, probe: nn.Linear | None = None,
                       progress_every_s: float = 60.0) -> dict[str, paddle.Tensor]:
    """Mean increase of a fitted linear probe's cross-entropy when each channel of each layer is zeroed.

    Several channels are scored per forward pass: the batch is replicated, one channel zeroed per replica (same
    arithmetic as one forward per channel, far fewer kernel launches).

    Args:
        teacher: the frozen pretrained network (eval mode).
        head_name: its classifier; the probe reads the classifier's input.
        layers: the layers whose output channels are scored.
        batches: ``[(images, labels), ...]`` of the target training data.
        num_classes: target classes.
        images_per_forward: cap on the replicated batch.
        probe: the classifier on the head's input; None: fit one on ``batches`` (``_probe``).
        progress_every_s: log the channels scored and the time left this often (the four stages of a ResNet-18
            are 960 channels: 12 minutes on one CPU core at 32 px, silent without it).
    Returns: ``{layer: [C_l] float32}``.
    """
    head_input = FeatureCapture(teacher, [head_name], what=INPUT)
    labels = [paddle.reshape(y, [-1]).astype("int64") for _, y in batches]
    try:
        def probe_input(images):
            with paddle.no_grad(), head_input.recording() as recorded:
                teacher(images)
            return paddle.flatten(recorded[head_name], 1).astype("float32")

        if probe is None:
            probe = _probe(paddle.concat([probe_input(x) for x, _ in batches]), paddle.concat(labels), num_classes)

        def replica_losses(k: int) -> paddle.Tensor:  # [k]: mean loss of each of k replicas, over all batches
            total = paddle.zeros([k], dtype="float32")
            with paddle.no_grad():
                for (images, _), y in zip(batches, labels):
                    logits = probe(probe_input(paddle.concat([images] * k)))
                    loss = F.cross_entropy(logits, paddle.concat([y] * k), reduction="none")
                    total += loss.reshape([k, -1]).mean(axis=1)
            return total / len(batches)

        base = float(replica_losses(1)[0])
        resolved = resolve_layers(teacher, layers)
        ablations = {name: _ZeroChannels() for name in resolved}
        handles = [layer.register_forward_post_hook(ablations[name]) for name, layer in resolved.items()]
        try:
            probe_input(batches[0][0][:1])  # learn the channel counts (channels None: nothing is zeroed)
            per_forward = max(1, images_per_forward // batches[0][0].shape[0])
            total = sum(a.count for a in ablations.values())
            eta, scored = Eta(-(-total // per_forward)), 0
            last_report = eta.clock()
            scores = {}
            for name, ablate in ablations.items():
                increase = []
                for start in range(0, ablate.count, per_forward):
                    started = eta.clock()
                    ablate.channels = list(range(start, min(start + per_forward, ablate.count)))
                    increase.append(replica_losses(len(ablate.channels)) - base)
                    eta.add(eta.clock() - started)
                    scored += len(ablate.channels)
                    if eta.clock() - last_report >= progress_every_s and scored < total:
                        log.info("DELTA: %s", eta.summary(f"{scored}/{total} channels scored"))
                        last_report = eta.clock()
                ablate.channels = None
                scores[name] = paddle.concat(increase)
            return scores
        finally:
            for handle in handles:
                handle.remove()
    finally:
        head_input.remove()


def last_convolutions(network: nn.Layer, stages=RESNET_STAGES) -> list[str]:
    """The last convolution of the last block of each ResNet stage (``layer1.2.conv3`` ... on ResNet-50).

    These are the DELTA authors' ``hook_layers``: the block's residual branch output before its batch norm and the
    residual add. Basic blocks (ResNet-18/34) end in ``conv2``.
    """
    names = dict(network.named_sublayers())
    found = []
    for stage in stages:
        blocks = names.get(stage)
        if blocks is None or not len(blocks):
            raise ValueError(f"{type(network).__name__} has no ResNet stage '{stage}': name the feature layers to "
                             f"regularize with regularizer.layers (or layers=[...])")
        last = f"{stage}.{len(blocks) - 1}"
        conv = next((f"{last}.{c}" for c in ("conv3", "conv2") if f"{last}.{c}" in names), None)
        if conv is None:
            raise ValueError(f"{last} has neither conv3 nor conv2: name the feature layers with regularizer.layers")
        found.append(conv)
    return found


def attention_from_importance(importance: paddle.Tensor, temperature: float = 5.0) -> paddle.Tensor:
    """``C * softmax(standardized importance / T)``: positive weights averaging 1 over the ``C`` channels."""
    centered = importance - importance.mean()
    std = float(paddle.sqrt((centered * centered).mean()))  # population std (Tensor.std warns about dtypes)
    z = centered / std if std > 0 else paddle.zeros_like(importance)
    return F.softmax(z / temperature) * float(importance.shape[0])


class DELTA(FeatureDistillation):
    """Attention-weighted feature-map distance to the frozen pretrained network (see the module docstring).

    Args:
        alpha: weight of the feature term.
        beta: weight of the classifier's squared norm.
        layers: sub-layers whose outputs are compared (default: ``last_convolutions``, the DELTA authors').
        attention: ``'supervised'`` (the paper) or ``'uniform'`` (every channel 1).
        attention_batches: training batches used to score the channels.
        probe: the discriminator of the supervised attention, ``'authors'`` or ``'fast'`` (module docstring).
        temperature: softmax temperature of the attention.
    """

    name = "delta"
    DEFAULTS = {"alpha": 0.01, "beta": 0.01}
    CONFIG_KEYS = {**FeatureDistillation.CONFIG_KEYS, "attention": "delta_attention",
                   "attention_batches": "attention_batches", "probe": "attention_probe"}

    def __init__(self, alpha: float = 0.01, beta: float = 0.01, layers=None, attention: str = "supervised",
                 attention_batches: int = 4, temperature: float = 5.0, reduction: str = "sum",
                 probe: str = "authors", positions: str = "mean"):
        super().__init__(alpha=alpha, beta=beta, layers=layers, reduction=reduction, positions=positions)
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}")
        if probe not in PROBES:
            raise ValueError(f"probe must be one of {', '.join(PROBES)}, got {probe!r}")
        self.probe = probe
        if attention_batches <= 0:
            raise ValueError(f"attention_batches must be > 0, got {attention_batches}")
        self.attention_kind, self.attention_batches, self.temperature = attention, attention_batches, temperature
        self.attention: dict[str, paddle.Tensor] = {}

    def default_layers(self, network) -> list[str]:
        return last_convolutions(network)

    def prepare(self, loader) -> None:
        """Score the channels on ``attention_batches`` batches of ``loader`` (no-op if loaded or uniform)."""
        self._require_attached()
        if self.attention_kind == "uniform" or self.attention:
            return
        if loader is None:
            raise ValueError("DELTA's supervised attention needs the training data: call prepare(loader)")
        loader = GlobalBatches(loader)  # several cards: every rank scores on the global batches (global_batch.py)
        batches = []
        for batch in loader:
            batches.append(batch)
            if len(batches) == self.attention_batches:
                break
        head = dict(self.teacher.named_sublayers())[self.head_name]
        num_classes = head.weight.shape[-1]
        scorer, probe = self.teacher, None
        if self.probe == "authors":
            log.info("DELTA: training the discriminator as the authors (10 epochs, backbone frozen)")
            scorer = frozen_copy(self.teacher)  # its batch norm statistics move while the fc trains
            probe = train_probe_like_the_authors(scorer, self.head_name, loader, num_classes)
        log.info("DELTA: scoring the channels of %s on %d batches (a frozen forward of each batch per channel)",
                 ", ".join(self.layers), len(batches))
        importance = channel_importance(scorer, self.head_name, self.layers, batches, num_classes, probe=probe)
        self.attention = {name: attention_from_importance(score, self.temperature)
                          for name, score in importance.items()}
        if paddle.distributed.get_world_size() > 1:  # the ranks computed the same; rank 0's rounding everywhere
            for weights in self.attention.values():
                paddle.distributed.broadcast(weights, src=0)

    def set_attention(self, attention: dict[str, paddle.Tensor]) -> None:
        """Use precomputed weights ``{layer: [C]}`` (e.g. from another run)."""
        self._require_attached()
        unknown = sorted(set(attention) - set(self.layers))
        if unknown or set(self.layers) - set(attention):
            raise ValueError(f"attention must have exactly the layers {self.layers}, got {sorted(attention)}")
        self.attention = {k: paddle.to_tensor(v, dtype="float32") for k, v in attention.items()}

    def channel_weights(self, layer: str) -> paddle.Tensor | None:
        if self.attention_kind == "uniform":
            return None
        if not self.attention:
            raise RuntimeError("DELTA's channel attention is not computed: call prepare(train_loader) before "
                               "training (or set_attention / set_state_dict)")
        return self.attention[layer]

    def state_dict(self):
        state = super().state_dict()
        state.update({f"attention.{k}": v for k, v in self.attention.items()})
        return state

    def set_state_dict(self, state):
        super().set_state_dict(state)
        if self.attention_kind == "supervised":
            missing = [n for n in self.layers if f"attention.{n}" not in state]
            if missing:
                raise ValueError(f"DELTA state has no attention for {missing}")
            self.attention = {n: paddle.to_tensor(state[f"attention.{n}"], dtype="float32") for n in self.layers}

    def describe(self) -> str:
        return (f"DELTA alpha={self.alpha:g} on {', '.join(self.layers or [])} ({self.attention_kind} channel "
                f"attention, batch {self.reduction}), beta={self.beta:g} on the head")
