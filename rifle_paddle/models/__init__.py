"""Backbones (one registry), classifier lookup, pretrained-weight loading, and the network a run starts from."""
from . import resnet  # noqa: F401  (registers the ResNets)
from .classifier import HEAD_INITS, find_classifier, initialize_classifier
from .network import build_network, drop_pretrained_bn_stats
from .pretrained import (PretrainedWeightsError, load_pretrained, reset_batchnorm_statistics, resolve_pretrained,
                         weights_dir)
from .registry import create_model, list_models, pretrained_source, register_model

from ..config.checks import register_check
from ..config.schema import no_weights


@register_check
def _model_problems(cfg: dict, purpose: str | None) -> list[str]:
    """``model.arch`` must name a registered model; for training, ``model.pretrained`` a weight tag of it or a file."""
    import difflib
    import os
    model = cfg["model"]
    arch, spec = model.get("arch"), model.get("pretrained")
    if purpose is None:
        models = list_models()
        if arch in models:
            return []
        close = difflib.get_close_matches(str(arch), models, n=2)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return [f"model.arch: unknown architecture '{arch}'{hint}; choices: {', '.join(models)}"]
    if purpose != "train" or not isinstance(spec, str) or no_weights(spec) or arch not in list_models():
        return []  # an unknown architecture is reported as such (purpose None), not as weights it has none of
    if pretrained_source(arch, spec) is not None or os.path.isfile(os.path.expanduser(spec)):
        return []
    return [f"model.pretrained: '{spec}' is neither a weight tag of {arch} (e.g. 'imagenet') nor an existing file"]


__all__ = ["HEAD_INITS", "PretrainedWeightsError", "build_network", "create_model", "drop_pretrained_bn_stats",
           "find_classifier", "initialize_classifier", "list_models", "load_pretrained", "register_model",
           "reset_batchnorm_statistics", "resolve_pretrained", "weights_dir"]
