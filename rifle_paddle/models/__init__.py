"""Backbones (one registry), classifier lookup and pretrained-weight loading."""
from . import resnet  # noqa: F401  (registers the ResNets)
from .classifier import HEAD_INITS, find_classifier, initialize_classifier
from .pretrained import (PretrainedWeightsError, load_pretrained, reset_batchnorm_statistics, resolve_pretrained,
                         weights_dir)
from .registry import create_model, list_models, register_model

__all__ = ["HEAD_INITS", "PretrainedWeightsError", "create_model", "find_classifier", "initialize_classifier",
           "list_models", "load_pretrained", "register_model", "reset_batchnorm_statistics", "resolve_pretrained",
           "weights_dir"]
