"""The DELTA authors' regularizers and channel scores, transcribed from lixingjian/DELTA @ 6ba10d2.

Files: ``train.py`` (T), ``channel_eval.py`` (C), ``run.sh`` (S). Every rule cites ``file:line``. Their code is
PyTorch on ``[b, c, h, w]`` feature maps; here NumPy on the same layout. Never imports ``rifle_paddle``.
"""
from __future__ import annotations

import math

import numpy as np

#: T:125
FC_NAME = 'fc.'
#: T:128-129, ResNet-50
HOOK_LAYERS_RESNET50 = ['layer1.2.conv3', 'layer2.3.conv3', 'layer3.5.conv3', 'layer4.2.conv3']


def alpha_for(dataset: str) -> float:
    """S:15-18: ``alpha=0.01``, ``0.1`` for Stanford_Dogs; beta keeps its default 0.01 (T:35)."""
    return 0.1 if dataset == "Stanford_Dogs" else 0.01


BETA = 0.01  # T:35


def weight_decay(reg_type: str) -> float:
    """T:265-270: ``weight_decay=1e-4`` for the plain 'l2' baseline only; none with 'l2_sp', 'fea_map',
    'att_fea_map'."""
    return 1e-4 if reg_type == 'l2' else 0.0


def reg_classifier(params: dict[str, np.ndarray]) -> float:
    """T:142-147: ``0.5 * ||p||^2`` over every parameter whose name starts with 'fc.' (weight and bias)."""
    return sum(0.5 * float(np.sum(p.astype(np.float64) ** 2)) for n, p in params.items() if n.startswith(FC_NAME))


def reg_l2sp(params: dict[str, np.ndarray], source: dict[str, np.ndarray]) -> float:
    """T:149-154: ``0.5 * ||p - p_source||^2`` over every named parameter not starting with 'fc.'
    (``named_parameters``: convolutions and batch-norm affine; running statistics are buffers, not included)."""
    return sum(0.5 * float(np.sum((p.astype(np.float64) - source[n]) ** 2))
               for n, p in params.items() if not n.startswith(FC_NAME))


def reg_fea_map(fm_src: list[np.ndarray], fm_tgt: list[np.ndarray]) -> float:
    """T:156-162: ``0.5 * ||fm_tgt - fm_src||^2`` per hooked layer, summed over batch, channels AND positions."""
    return sum(0.5 * float(np.sum((t.astype(np.float64) - s) ** 2)) for s, t in zip(fm_src, fm_tgt))


def channel_weights(js) -> np.ndarray:
    """T:111-116: ``js = (js - mean) / np.std(js)`` (population std), ``softmax(js / 5)``."""
    js = np.array(js, dtype=np.float64)
    js = (js - np.mean(js)) / np.std(js)  # T:113
    e = np.exp(js / 5)
    return e / e.sum()  # T:115


def reg_att_fea_map(fm_src: list[np.ndarray], fm_tgt: list[np.ndarray], scores: list) -> float:
    """T:167-178: per layer, ``distance = norm(fm_tgt - fm_src, 2, 2)`` over the flattened positions (T:175),
    ``c * cw * distance**2 / (h * w)`` (T:176), ``0.5 * sum`` over batch and channels (T:177), summed over layers."""
    fea_loss = 0.0
    for i, (s, t) in enumerate(zip(fm_src, fm_tgt)):
        b, c, h, w = s.shape  # T:171
        distance = np.linalg.norm((t.astype(np.float64) - s).reshape(b, c, h * w), 2, axis=2)  # T:172-175
        distance = c * channel_weights(scores[i]) * distance ** 2 / (h * w)  # T:176
        fea_loss += 0.5 * float(np.sum(distance))  # T:177
    return fea_loss


def total_loss(ce: float, feature: float, classifier: float, alpha: float, beta: float = BETA) -> float:
    """T:224."""
    return ce + alpha * feature + beta * classifier


# ------------------------------------------------------------------------------------------------ channel_eval.py
#: C:109-111
PROBE_EPOCHS, PROBE_DECAY_EPOCHS = 10, 6
PROBE = {"lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4}  # C:107-108 (lr: S:7 --lr_init=0.01)
SCORING_BATCHES = 4  # C:179-180


def probe_lr(epoch: int, lr: float = 0.01) -> float:
    """C:111, 117-118: ``ExponentialLR(gamma = exp(ln 0.1 / 6))`` stepped at the start of each epoch. Under the
    PyTorch of the commit's date (<= 1.0, whose scheduler constructor leaves ``last_epoch`` at -1), epoch ``e``
    (0-based) trains at ``lr * gamma^e``."""
    return lr * math.exp(math.log(0.1) / PROBE_DECAY_EPOCHS) ** epoch


def channel_scores(loss_fn, conv_weight: np.ndarray, batches) -> list[float]:
    """C:168-208 for one hooked layer: ``loss0`` on each of the first 4 batches (C:179-184), then for each output
    channel ``j`` its conv3 filter set to 0 (C:192-193), ``diff = loss1 - loss0`` (C:195-198), averaged over the
    batches as ``(i * hist + diff) / (i + 1)`` (C:199-200), the filter restored (C:202). ``loss_fn(weight, batch)``
    is the mean cross-entropy of the network with that conv3 weight (in eval mode, C:176)."""
    filter_weight = [0.0] * conv_weight.shape[0]
    for i, batch in enumerate(batches):
        if i >= SCORING_BATCHES:  # C:179
            break
        loss0 = loss_fn(conv_weight, batch)
        for j in range(conv_weight.shape[0]):
            zeroed = conv_weight.copy()
            zeroed[j, :, :, :] = 0  # C:193
            diff = loss_fn(zeroed, batch) - loss0  # C:195-197
            hist = filter_weight[j]
            filter_weight[j] = 1.0 * (i * hist + diff) / (i + 1)  # C:199-200
    return filter_weight
