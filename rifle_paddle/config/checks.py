"""Checks beyond one key's type and range. Each returns messages; `load_config` reports them all together.

``cross_checks``: combinations of keys and values only known to a registry (model.arch, data.name), run for every
loaded config. ``path_problems``: files, directories and devices the run will need, checked only when a config is
loaded to train or evaluate (``load_config(..., paths_for=...)``, ``require_paths``) so that printing or generating
configs works on a machine without the data or the GPU. ``train(cfg)`` runs them all (``require_valid``)
before it creates anything.
"""
from __future__ import annotations

import os
import re

from .schema import ConfigError


def cross_checks(cfg: dict) -> list[str]:
    problems = []
    train, rifle, data = cfg["train"], cfg["rifle"], cfg["data"]
    if rifle["enabled"] and rifle["epochs"] is not None:
        late = [e for e in rifle["epochs"] if e >= train["epochs"] or e == 0]
        if late:
            problems.append(f"rifle.epochs: {late} not in 1..{train['epochs'] - 1} (each entry counts the epochs "
                            f"finished before a re-initialization, within train.epochs={train['epochs']})")
        tail_start = train["epochs"] - rifle["min_tail_epochs"]
        in_tail = [e for e in rifle["epochs"] if tail_start < e < train["epochs"]]
        if in_tail:
            problems.append(f"rifle.epochs: {in_tail} fall in the last rifle.min_tail_epochs="
                            f"{rifle['min_tail_epochs']} epochs, kept free for convergence (latest allowed: "
                            f"{max(tail_start, 0)})")
    if rifle["enabled"] and rifle["epochs"] is None and rifle["num_reinits"] > 0 \
            and train["epochs"] // (rifle["num_reinits"] + 1) == 0:
        problems.append(f"rifle.num_reinits={rifle['num_reinits']} needs at least {rifle['num_reinits'] + 1} "
                        f"epochs, train.epochs={train['epochs']}")
    if train["warmup_epochs"] >= train["epochs"]:
        problems.append(f"train.warmup_epochs={train['warmup_epochs']} must be < train.epochs={train['epochs']}")
    if data["image_size"] > data["resize_size"]:
        problems.append(f"data.image_size={data['image_size']} is larger than data.resize_size="
                        f"{data['resize_size']} (the evaluation crop would not fit)")
    problems.extend(_registered_problems(cfg, None))
    problems.extend(_execution_problems(cfg))
    return problems


#: checks of values that name what another package owns (a model architecture, a weight tag, a data reader, a
#: regularizer), each ``check(cfg, purpose) -> problems`` with ``purpose`` None (any config), "train" or "eval".
#: The owning package registers them when it is imported (``rifle_paddle/__init__`` imports every owner), so this
#: layer never imports the layers that build on it and names none of their members.
REGISTERED_CHECKS: list = []


def register_check(check):
    """Add ``check(cfg, purpose) -> list of problems`` to every config validation (a decorator)."""
    REGISTERED_CHECKS.append(check)
    return check


def _registered_problems(cfg: dict, purpose: str | None) -> list[str]:
    return [problem for check in REGISTERED_CHECKS for problem in check(cfg, purpose)]


def _execution_problems(cfg: dict) -> list[str]:
    run, train, problems = cfg["run"], cfg["train"], []
    if train["amp"] and run["device"] == "cpu":
        problems.append("train.amp=true needs a GPU, but run.device=cpu: set -o train.amp=false")
    if train["resume"] == "auto" and not run["name"]:
        problems.append("train.resume=auto needs run.name: the run to continue is <run.output_dir>/<run.name> "
                        "(the default name has a timestamp and never matches)")
    name = run["name"]
    if isinstance(name, str) and (os.path.isabs(name) or not name.strip()
                                  or any(part in (".", "..") for part in re.split(r"[\\/]", name))):
        problems.append(f"run.name={name!r} must name a folder inside run.output_dir (no '..', '.', or absolute "
                        f"path): a run writes, and with run.overwrite empties, <run.output_dir>/<run.name>")
    return problems


def path_problems(cfg: dict, purpose: str) -> list[str]:
    """Missing files and directories the run will read; ``purpose`` is ``'train'`` or ``'eval'``.

    Tolerates values of a wrong type (reported by the schema check), so that all problems come out together.
    """
    if purpose not in ("train", "eval"):
        raise ValueError(f"purpose must be 'train' or 'eval', got {purpose!r}")
    model, data, train, problems = cfg["model"], cfg["data"], cfg["train"], []
    root = data.get("root")
    if isinstance(root, str) and not os.path.isdir(root):
        problems.append(f"data.root: directory not found: {root}")
    problems.extend(_registered_problems(cfg, purpose))
    if purpose == "train":
        problems.extend(_device_problems(cfg))
        resume = train.get("resume")
        if isinstance(resume, str) and resume != "auto" and not os.path.isdir(resume):
            problems.append(f"train.resume: run directory not found: {resume}")
    else:
        checkpoint = model.get("checkpoint")
        if checkpoint is None:
            problems.append("model.checkpoint: not set; the run directory or .pdparams file to evaluate")
        elif isinstance(checkpoint, str) and not os.path.exists(checkpoint):
            problems.append(f"model.checkpoint: not found: {checkpoint}")
    return problems


def gpu_available() -> bool:
    """Whether Paddle can train on a GPU here: what ``run.device=auto`` resolves by."""
    import paddle
    return paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


def _device_problems(cfg: dict) -> list[str]:
    """AMP on a machine whose Paddle has no GPU (``run.device=cpu`` is a config error caught by ``cross_checks``;
    ``auto`` resolves to the CPU here): found now, not once the run directory exists and the model is built."""
    train, run = cfg["train"], cfg["run"]
    if train.get("amp") is True and run.get("device") in ("auto", "gpu") and not gpu_available():
        return [f"train.amp=true needs a GPU, but this Paddle sees none (run.device={run['device']}; "
                f"paddlepaddle-gpu and a visible card are needed): set -o train.amp=false to train on the CPU"]
    return []


def require_valid(cfg: dict, purpose: str) -> None:
    """What ``load_config(..., paths_for=purpose)`` checks, on a config handed over as a dict (``train(cfg)``):
    one edited after loading gets the same one-line refusals, before anything is created; raises ``TypeError``
    for what is not a config dict, ``ConfigError`` listing the problems."""
    from .loader import validate  # late: the loader imports this module's checks late too
    from .schema import SCHEMA
    if not isinstance(cfg, dict) or not all(isinstance(cfg.get(section), dict) for section in SCHEMA):
        raise TypeError(f"expected a config as load_config(...) returns it (a dict with the sections "
                        f"{', '.join(SCHEMA)}), got {type(cfg).__name__}")
    problems = validate(cfg) or cross_checks(cfg)
    if problems:
        raise ConfigError(problems)
    require_paths(cfg, purpose)


def require_paths(cfg: dict, purpose: str) -> None:
    """Raise ``ConfigError`` listing every ``path_problems`` (for configs not loaded with ``paths_for``)."""
    problems = path_problems(cfg, purpose)
    if problems:
        raise ConfigError(problems)

