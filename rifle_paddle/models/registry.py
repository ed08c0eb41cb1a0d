"""One registry of backbones, so configs, the CLI and tests name models the same way (``model.arch``)."""
from __future__ import annotations

from ..config.schema import register_choices
from ..core.registry import Registry

_MODELS = Registry("model")
_PRETRAINED: dict[str, dict[str, tuple[str, str]]] = {}


def register_model(name: str, pretrained: dict[str, tuple[str, str]] | None = None):
    """Register ``fn(num_classes, **kwargs) -> Layer`` under ``name``.

    ``pretrained`` maps a tag (``'imagenet'``) to ``(url, md5)`` of official weights for that model.
    """
    def decorator(fn):
        _MODELS.add(name, fn)
        register_choices("model.arch", [name])
        _PRETRAINED[name] = dict(pretrained or {})
        return fn
    return decorator


def list_models() -> list[str]:
    return _MODELS.names()


def pretrained_source(name: str, tag: str) -> tuple[str, str] | None:
    """``(url, md5)`` of the official ``tag`` weights of ``name``, or None when there are none."""
    return _PRETRAINED.get(name, {}).get(tag)


def create_model(name: str, num_classes: int, **kwargs):
    return _MODELS.lookup(name)(num_classes=num_classes, **kwargs)
