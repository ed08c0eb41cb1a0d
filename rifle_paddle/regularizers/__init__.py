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
from ..config.keywords import keyword_section
from ..config.schema import no_weights, register_choices
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


def build_regularizer(regularizer: str | dict, **options) -> Regularizer | None:
    """The regularizer named ``regularizer`` (or of a ``regularizer`` config section), not attached; None for
    ``'none'``. ``options`` are ``regularizer.*`` keys as keywords (``build_regularizer("delta", alpha=0.1,
    delta_attention="uniform")``), which override the section's; keys left out take the schema's defaults, and
    ``alpha`` / ``beta`` / ``layers`` left null the method's (``REGULARIZERS[name].DEFAULTS``). An unknown keyword
    raises ``TypeError`` naming the allowed ones, a bad value ``ValueError``.
    """
    given = dict(regularizer) if isinstance(regularizer, dict) else {"name": regularizer}
    reg_cfg = keyword_section("regularizer", {**given, **options}, "build_regularizer")
    useless = without_effect(reg_cfg)
    if useless:
        raise ValueError(f"build_regularizer(): {'; '.join(useless)}")
    if reg_cfg["name"] == "none":
        return None
    cls = REGULARIZERS[reg_cfg["name"]]
    weights = {k: (default if reg_cfg[k] is None else reg_cfg[k]) for k, default in cls.DEFAULTS.items()}
    return cls(**weights, **{arg: reg_cfg[key] for arg, key in cls.CONFIG_KEYS.items()})


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
    problems.extend(without_effect(reg))
    if name == "none":
        return problems
    cls, pretrained = REGULARIZERS[name], cfg["model"]["pretrained"]
    if cls.uses_reference and no_weights(pretrained):
        problems.append(f"regularizer.name={name} regularizes towards the pretrained network, but "
                        "model.pretrained is null (no weights): the reference would be a random initialization")
    return problems


def without_effect(reg: dict) -> list[str]:
    """Keys of a complete ``regularizer`` section that would do nothing (checked for configs and keywords alike)."""
    name = reg["name"]
    if name == "none":
        unused = [k for k in ("alpha", "beta", "layers") if reg[k] is not None]
        return [f"regularizer.{', regularizer.'.join(unused)} set but regularizer.name=none (no effect)"] if unused \
            else []
    problems = []
    if reg["layers"] is not None and "layers" not in REGULARIZERS[name].CONFIG_KEYS:
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
