"""The network a fine-tuning run starts from: a registered backbone, a fresh classifier, the pretrained weights."""
from __future__ import annotations

import logging

from paddle import nn

from ..config.keywords import keyword_section
from .classifier import find_classifier, initialize_classifier
from .pretrained import load_pretrained, reset_batchnorm_statistics, resolve_pretrained
from .registry import create_model

log = logging.getLogger("rifle_paddle")


def build_network(model: str | dict, num_classes: int | None = None, **options) -> tuple[nn.Layer, str]:
    """The backbone ``model`` (an architecture name, ``list_models()``, or a ``model`` config section) with a
    ``num_classes`` head drawn as ``head_init`` and the ``pretrained`` weights loaded into all but the head;
    returns the network and the head's name (what RIFLE re-draws).

    ``options`` are ``model.*`` keys as keywords (``pretrained="imagenet"`` / ``"none"`` / a .pdparams path,
    ``head_init=``, ``head=``, ``pretrained_bn_stats=``), which override the section's; keys left out take the
    schema's defaults (docs/config.md). ``num_classes`` may also come as ``model.num_classes``. An unknown keyword
    raises ``TypeError`` naming the allowed ones, a bad value ``ValueError``.
    """
    if "checkpoint" in options:  # rifle-eval's weights: taken here, it would be silently ignored
        raise TypeError("build_network() does not load checkpoint (model.checkpoint is the weights rifle-eval "
                        "scores): load them with network.set_state_dict(paddle.load(path))")
    given = dict(model) if isinstance(model, dict) else {"arch": model}
    if num_classes is not None:  # checked as model.num_classes is (a positive integer)
        given["num_classes"] = num_classes
    cfg = keyword_section("model", {**given, **options}, "build_network")
    num_classes = cfg["num_classes"]
    if not num_classes:
        raise ValueError("build_network(): num_classes is not set (pass num_classes=, e.g. dataset.num_classes)")
    network = create_model(cfg["arch"], num_classes=num_classes)
    head_name, head = find_classifier(network, cfg["head"])
    initialize_classifier(head, cfg["head_init"])
    weights = resolve_pretrained(cfg["arch"], cfg["pretrained"])
    if weights is not None:
        loaded = load_pretrained(network, weights, head_name)
        log.info("loaded %d pretrained tensors from %s (classifier '%s' left random)", len(loaded), weights,
                 head_name)
    else:
        log.info("no pretrained weights: training %s from scratch", cfg["arch"])
    if not cfg["pretrained_bn_stats"]:
        drop_pretrained_bn_stats(network)
    return network, head_name


def drop_pretrained_bn_stats(network: nn.Layer) -> None:
    """``model.pretrained_bn_stats: false``: every batch norm's running statistics reset to 0/1, and logged. The
    engine builds with them kept and calls this itself once a regularizer's teacher copy has taken them."""
    log.info("batch norm: running statistics of %d layers reset to 0/1 (model.pretrained_bn_stats=false)",
             reset_batchnorm_statistics(network))
