"""Finding the classifier of any Paddle model, so RIFLE and checkpoint loading are not tied to ``fc``."""
from __future__ import annotations

import math

import paddle
from paddle import nn

from ..config.schema import register_choices


def find_classifier(model: nn.Layer, name: str | None = None) -> tuple[str, nn.Layer]:
    """``(dotted name, layer)`` of the classifier.

    Order of preference: the explicit ``name``; the layer returned by ``model.get_classifier()`` (timm's
    convention, implemented by our ResNets); the last ``nn.Linear`` registered in the model.
    """
    layers = dict(model.named_sublayers())
    if name is not None:
        if name not in layers:
            candidates = [n for n, l in layers.items() if isinstance(l, (nn.Linear, nn.Conv2D))][-5:]
            raise ValueError(f"the model has no sub-layer named '{name}'; "
                             f"last Linear/Conv2D layers: {', '.join(candidates) or 'none'}")
        return name, layers[name]
    getter = getattr(model, "get_classifier", None)
    if callable(getter):
        head = getter()
        for n, layer in layers.items():
            if layer is head:
                return n, layer
    linears = [(n, l) for n, l in layers.items() if isinstance(l, nn.Linear)]
    if not linears:
        raise ValueError(f"cannot find a classifier in {type(model).__name__}: it has no get_classifier() and "
                         "no nn.Linear layer; name one with model.head / rifle.layer")
    return linears[-1]


HEAD_INITS = register_choices("model.head_init", ("authors", "paddle"))


@paddle.no_grad()
def initialize_classifier(layer: nn.Layer, rule: str = "authors") -> None:
    """Draw the initial classifier as ``rule`` says, from Paddle's global generator (``run.seed``).

    ``'authors'``: weight from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` and bias 0, the RIFLE authors' fc
    (``as_models/resnet.py``: ``Uniform(-stdv, stdv)`` with ``stdv = 1/sqrt(2048)`` on ResNet-50; fluid's default
    bias is 0). ``'paddle'``: leave the layer as Paddle constructed it (``nn.Linear``: Xavier-uniform weight,
    ``sqrt(6 / (fan_in + fan_out))``, bias 0).
    """
    if rule not in HEAD_INITS:
        raise ValueError(f"unknown classifier initialization '{rule}', expected one of {', '.join(HEAD_INITS)}")
    if rule == "paddle":
        return
    weight = getattr(layer, "weight", None)
    if weight is None or len(weight.shape) != 2:
        raise ValueError(f"head_init='authors' needs a Linear classifier, got {type(layer).__name__}")
    bound = 1.0 / math.sqrt(weight.shape[0])  # Paddle's Linear weight is [in, out]
    nn.initializer.Uniform(-bound, bound)(weight)
    bias = getattr(layer, "bias", None)
    if bias is not None:
        nn.initializer.Constant(0.0)(bias)
