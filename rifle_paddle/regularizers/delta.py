"""DELTA: feature-map distance to the pretrained network, weighted by a supervised channel attention.

Li, Xiong, Wang, Wang, Liu, Pan, Huan, "DELTA: DEep Learning Transfer using Feature Map with Attention for
Convolutional Networks", ICLR 2019 (arXiv:1901.09229).

Why: keeping *every* channel of the outer feature maps close to the pretrained network (plain distillation) also
preserves channels that are useless, or harmful, for the target task. DELTA weighs each channel by how much the
target task relies on it in the pretrained network, so the useful behaviour is kept and the rest may adapt::

    Omega(w) = alpha/2 * 1/B * sum_i sum_l sum_c  a_{l,c} * mean_{h,w} (FM_l(w, x_i) - FM_l(w0, x_i))_{c,h,w}^2
               + beta/2 * ||w_new||^2

(``feature_map_distance`` in ``feature_distillation.py``.) The attention of channel ``c`` of layer ``l`` comes from
the pretrained network ``w0`` with a linear classifier fitted on the target data on top of it (the paper's
"discriminator"): the increase of that classifier's cross-entropy when the channel is zeroed,

    delta_{l,c} = mean over batches ( CE(w0 with channel (l, c) removed) - CE(w0) ),

standardized over the channels of the layer and turned into weights ``a_{l,.} = C_l * softmax(delta_{l,.} / T)``,
``T = 5`` (the normalization of tllib's reference implementation; the factor ``C_l`` makes the weights average 1,
so ``alpha`` means the same as for plain distillation). ``attention='uniform'`` sets every ``a = 1``.

Defaults: the four ResNet stage outputs ``layer1..layer4`` (the DELTA authors' ``res2c, res3*, res4*, res5c``),
``alpha = beta = 0.01`` (the DELTA settings also used as tllib's defaults).

Cost: the attention is computed once, before training (``prepare(loader)``): a frozen forward of every batch
per channel — 960 channels for a ResNet-18, 3840 for a ResNet-50 — over ``attention_batches`` batches (several
channels per pass, on replicas of the batch).
It is part of ``state_dict()``, so a resumed run does not recompute it. During training DELTA costs one teacher
forward without gradient per step, like distillation.
"""
from __future__ import annotations

import logging

import paddle
import paddle.nn.functional as F
from paddle import nn

from .capture import INPUT, FeatureCapture, resolve_layers
from .feature_distillation import RESNET_STAGES, FeatureDistillation

log = logging.getLogger(__name__)

ATTENTIONS = ("supervised", "uniform")


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


def channel_importance(teacher: nn.Layer, head_name: str, layers: list[str], batches: list, num_classes: int,
                       images_per_forward: int = 128) -> dict[str, paddle.Tensor]:
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
    Returns: ``{layer: [C_l] float32}``.
    """
    head_input = FeatureCapture(teacher, [head_name], what=INPUT)
    labels = [paddle.reshape(y, [-1]).astype("int64") for _, y in batches]
    try:
        def probe_input(images):
            with paddle.no_grad(), head_input.recording() as recorded:
                teacher(images)
            return paddle.flatten(recorded[head_name], 1).astype("float32")

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
        scores = {}
        for name, layer in resolve_layers(teacher, layers).items():
            ablate = _ZeroChannels()
            handle = layer.register_forward_post_hook(ablate)
            try:
                probe_input(batches[0][0][:1])  # learn the channel count
                per_forward = max(1, images_per_forward // batches[0][0].shape[0])
                increase = []
                for start in range(0, ablate.count, per_forward):
                    ablate.channels = list(range(start, min(start + per_forward, ablate.count)))
                    increase.append(replica_losses(len(ablate.channels)) - base)
            finally:
                handle.remove()
            scores[name] = paddle.concat(increase)
        return scores
    finally:
        head_input.remove()


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
        layers: sub-layers whose outputs are compared (default: the four ResNet stages).
        attention: ``'supervised'`` (the paper) or ``'uniform'`` (every channel 1).
        attention_batches: training batches used to score the channels.
        temperature: softmax temperature of the attention.
    """

    name = "delta"
    DEFAULTS = {"alpha": 0.01, "beta": 0.01}
    DEFAULT_LAYERS = RESNET_STAGES

    def __init__(self, alpha: float = 0.01, beta: float = 0.01, layers=None, attention: str = "supervised",
                 attention_batches: int = 10, temperature: float = 5.0):
        super().__init__(alpha=alpha, beta=beta, layers=layers)
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}")
        if attention_batches <= 0:
            raise ValueError(f"attention_batches must be > 0, got {attention_batches}")
        self.attention_kind, self.attention_batches, self.temperature = attention, attention_batches, temperature
        self.attention: dict[str, paddle.Tensor] = {}

    def prepare(self, loader) -> None:
        """Score the channels on ``attention_batches`` batches of ``loader`` (no-op if loaded or uniform)."""
        self._require_attached()
        if self.attention_kind == "uniform" or self.attention:
            return
        if loader is None:
            raise ValueError("DELTA's supervised attention needs the training data: call prepare(loader)")
        batches = []
        for batch in loader:
            batches.append((batch[0], batch[1]))
            if len(batches) == self.attention_batches:
                break
        head = dict(self.teacher.named_sublayers())[self.head_name]
        num_classes = head.weight.shape[-1]
        log.info("DELTA: scoring the channels of %s on %d batches (a frozen forward of each batch per channel)",
                 ", ".join(self.layers), len(batches))
        importance = channel_importance(self.teacher, self.head_name, self.layers, batches, num_classes)
        self.attention = {name: attention_from_importance(score, self.temperature)
                          for name, score in importance.items()}
        if paddle.distributed.get_world_size() > 1:  # each rank scored its own shard: use rank 0's everywhere
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
                f"attention), beta={self.beta:g} on the head")
