"""Regularized fine-tuning (L2-SP, DELTA, feature distillation, BSS) and DTNH's never-hurt descent direction.

One module per method, each usable from a config (``regularizer`` / ``dtnh`` sections) and from one's own dygraph
loop (see each module's docstring):

- ``l2sp.py``                   L2-SP (Li et al., ICML 2018): ``alpha/2 ||w - w0||^2``, closed-form gradient
- ``delta.py``                  DELTA (Li et al., ICLR 2019): attention-weighted feature-map distance to ``w0``
- ``feature_distillation.py``   "KD": feature-map distance to the frozen pretrained network
- ``bss.py``                    BSS (Chen et al., NeurIPS 2019): shrink the smallest singular values of the features
- ``dtnh.py``                   DTNH (Wan et al., ICDM 2019): combine ``g_L`` and ``g_R`` so ``g_R`` never opposes
  ``g_L``
- ``step.py``                   the engine's ``TrainStep`` for all of the above; ``monitor.py`` its per-epoch report
- ``global_batch.py``           several cards: each regularizer means what it means on one card with the global batch

Plain L2 (decay towards 0) is the optimizer's weight decay (``train.weight_decay``), not a regularizer here.
"""
from __future__ import annotations

import logging

from ..config.checks import register_check
from ..config.schema import register_choices
from ..config.schema import no_weights
from .base import Regularizer, frozen_copy
from .bss import BatchSpectralShrinkage
from .capture import FeatureCapture
from .delta import DELTA
from .dtnh import DTNH, GRANULARITIES, never_hurt_direction
from .feature_distillation import FeatureDistillation, feature_map_distance
from .l2sp import L2SP
from .monitor import RegularizationMonitor
from .step import RegularizedStep

log = logging.getLogger(__name__)

#: ``regularizer.name`` -> class; every class has ``DEFAULTS`` (the papers' alpha/beta), ``CONFIG_KEYS`` (its other
#: constructor arguments' config keys) and ``uses_reference``. A new regularizer is one module plus one entry here.
REGULARIZERS: dict[str, type[Regularizer]] = {
    cls.name: cls for cls in (L2SP, DELTA, FeatureDistillation, BatchSpectralShrinkage)}
register_choices("regularizer.name", ("none", *REGULARIZERS))


def build_regularizer(reg_cfg: dict) -> Regularizer | None:
    """The regularizer of a validated ``regularizer`` config section (None for ``name: none``); not attached.

    ``alpha`` / ``beta`` / ``layers`` left null take the method's defaults (``REGULARIZERS[name].DEFAULTS``).
    """
    name = reg_cfg["name"]
    if name == "none":
        return None
    if name not in REGULARIZERS:
        raise ValueError(f"unknown regularizer '{name}'; available: none, {', '.join(REGULARIZERS)}")
    cls = REGULARIZERS[name]
    weights = {k: (reg_cfg[k] if reg_cfg.get(k) is not None else default) for k, default in cls.DEFAULTS.items()}
    options = {arg: reg_cfg[key] for arg, key in cls.CONFIG_KEYS.items() if key in reg_cfg}
    return cls(**weights, **options)


@register_check
def _regularization_problems(cfg: dict, purpose: str | None) -> list[str]:
    """Regularizer/DTNH settings that would silently train something else than what the config names."""
    if purpose is not None:
        return []
    reg, dtnh, problems = cfg["regularizer"], cfg["dtnh"], []
    name = reg["name"]
    if dtnh["enabled"] and name == "none":
        problems.append("dtnh.enabled=true but regularizer.name=none: DTNH corrects the regularizer's gradient "
                        f"against the task's; choose a regularizer ({', '.join(REGULARIZERS)})")
    if name == "none":
        unused = [k for k in ("alpha", "beta", "layers") if reg[k] is not None]
        if unused:
            problems.append(f"regularizer.{', regularizer.'.join(unused)} set but regularizer.name=none (no effect)")
        return problems
    cls, pretrained = REGULARIZERS[name], cfg["model"]["pretrained"]
    if cls.uses_reference and no_weights(pretrained):
        problems.append(f"regularizer.name={name} regularizes towards the pretrained network, but "
                        f"model.pretrained={pretrained}: the reference would be a random initialization")
    if reg["layers"] is not None and "layers" not in cls.CONFIG_KEYS:
        with_layers = [n for n, c in REGULARIZERS.items() if "layers" in c.CONFIG_KEYS]
        problems.append(f"regularizer.layers applies to {' and '.join(with_layers)} only, not to "
                        f"regularizer.name={name} (no effect)")
    if reg["alpha"] == 0 and reg["beta"] == 0:
        problems.append(f"regularizer.alpha=0 and regularizer.beta=0: {name} would have no effect")
    return problems


def build_train_step(cfg: dict, network, head_name: str | None = None, loader=None,
                     restoring: bool = False) -> RegularizedStep | None:
    """The engine's training step for ``cfg['regularizer']`` and ``cfg['dtnh']`` (None: the plain step).

    Call after the pretrained weights are loaded (the frozen references are taken now) and after the tricks are
    installed (a DropConnect head is the classifier the head term sees); ``loader`` serves DELTA's attention.
    ``restoring``: a resumed run, whose checkpoint brings what ``prepare`` would compute (DELTA's channel scores,
    minutes of work that a resume must not repeat).
    """
    regularizer = build_regularizer(cfg["regularizer"])
    if regularizer is None:
        if cfg["dtnh"]["enabled"]:
            raise ValueError("dtnh.enabled=true needs a regularizer (regularizer.name)")
        return None
    regularizer.attach(network, head_name)
    if not restoring:
        regularizer.prepare(loader)
    dtnh = DTNH(network.named_parameters(), cfg["dtnh"]["granularity"]) if cfg["dtnh"]["enabled"] else None
    log.info("regularizer: %s%s", regularizer.describe(),
             f"; DTNH ({dtnh.granularity} decomposition over {len(dtnh.layers)} layers)" if dtnh else "")
    return RegularizedStep(regularizer, dtnh)


__all__ = ["BatchSpectralShrinkage", "DELTA", "DTNH", "FeatureCapture", "FeatureDistillation", "GRANULARITIES",
           "L2SP", "REGULARIZERS", "RegularizationMonitor", "RegularizedStep", "Regularizer", "build_regularizer",
           "build_train_step", "feature_map_distance", "frozen_copy", "never_hurt_direction"]
