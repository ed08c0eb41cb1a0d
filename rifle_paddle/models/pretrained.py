"""ImageNet (or any) pretrained weights: locate, download when online, load everything except the classifier.

The classifier is never taken from a checkpoint: the target task has its own classes, and RIFLE's premise is a
randomly initialized head. Any other mismatch is an error, because a silently half-loaded backbone is the most
expensive bug in transfer learning (the run "works" and is a few points worse).
"""
from __future__ import annotations

import hashlib
import logging
import os

import paddle
from paddle import nn

from ..config.schema import no_weights
from ..core import paddle_compat
from ..core.weights import WeightsMismatch, load_weights
from .registry import pretrained_source

log = logging.getLogger(__name__)

WEIGHTS_DIR_ENV = "RIFLE_PADDLE_WEIGHTS_DIR"


class PretrainedWeightsError(RuntimeError):
    """Weights could not be found, fetched or matched to the model."""


def weights_dir() -> str:
    """Where official weights are cached: ``$RIFLE_PADDLE_WEIGHTS_DIR`` or Paddle's own hapi cache."""
    from paddle.utils.download import WEIGHTS_HOME
    return os.path.expanduser(os.environ.get(WEIGHTS_DIR_ENV) or WEIGHTS_HOME)


def file_md5(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, directory: str, md5: str) -> str:
    """Paddle's downloader; a separate function so tests can stand in for the network."""
    from paddle.utils.download import get_path_from_url
    return get_path_from_url(url, directory, md5)


def resolve_pretrained(arch: str, spec: str | None) -> str | None:
    """Path of the weights file meant by ``model.pretrained`` (None for no pretrained weights)."""
    if no_weights(spec):
        return None
    source = pretrained_source(arch, spec)
    if source is None:
        path = os.path.expanduser(spec)
        if os.path.isfile(path):
            return path
        raise PretrainedWeightsError(
            f"model.pretrained='{spec}' is neither a known weight tag for {arch} "
            f"('imagenet') nor an existing .pdparams file")
    url, md5 = source
    directory = weights_dir()
    cached = os.path.join(directory, os.path.basename(url))
    if os.path.isfile(cached):
        if file_md5(cached) == md5:
            return cached
        log.warning("cached %s has the wrong md5 (partial download?); fetching it again", cached)
    try:
        return _download(url, directory, md5)
    except Exception as e:  # network errors come as many types (requests, socket, RuntimeError from retries)
        raise PretrainedWeightsError(
            f"could not download the {spec} weights of {arch} ({type(e).__name__}: {e}).\n"
            f"  Offline? Fetch {url} on a machine with internet (md5 {md5}) and put it at\n"
            f"    {cached}\n"
            f"  (or set ${WEIGHTS_DIR_ENV} to the folder holding {os.path.basename(url)}),\n"
            f"  or pass the file directly: -o model.pretrained=/path/to/{os.path.basename(url)}") from None


def load_pretrained(model: nn.Layer, path: str, head_name: str) -> list[str]:
    """Load ``path`` into ``model`` except the classifier ``head_name`` (it keeps its fresh values), strictly
    (``core.weights``); return the keys that were loaded."""
    try:
        return load_weights(model, path, "this model (its classifier aside)", skip=head_name + ".")
    except WeightsMismatch as e:
        raise PretrainedWeightsError(str(e)) from None


@paddle.no_grad()
def reset_batchnorm_statistics(model: nn.Layer) -> int:
    """Set every batch norm's running mean to 0 and variance to 1 (their initial values); returns how many.

    The RIFLE authors' loader (``fine_tuning/run.py``, ``_predicate``) loads trainable variables only, so the
    pretrained moving mean/variance never reach their network: these are what it starts from
    (``model.pretrained_bn_stats=false``). Training-mode batch norm normalizes with batch statistics, so this changes
    only what evaluation sees until the running averages have caught up.
    """
    count = 0
    for layer in model.sublayers(include_self=True):
        if paddle_compat.is_batch_norm(layer):
            mean, variance = paddle_compat.running_statistics(layer)
            mean.set_value(paddle.zeros_like(mean))
            variance.set_value(paddle.ones_like(variance))
            count += 1
    return count
