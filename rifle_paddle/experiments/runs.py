"""Run directories as records: what the sweep, the report and the analysis read back from the engine's outputs.

A run directory (written by ``engine.trainer.train``) holds ``config.yaml`` (written first) and ``metrics.json``
(updated every epoch; the ``final`` entry is written only once training has finished). So a directory with a
``config.yaml`` is a run, and a run is *complete* when its ``metrics.json`` has ``final.acc_top1``.

Which table cell and seed a run belongs to is read from its ``config.yaml`` (``Run.cell``): ``run.cell`` (set by
every generated table config) and ``run.seed``. Folder names (``<dataset>-<method>-s<seed>``, ``run_name``) are
what the sweep calls its runs, but a folder can be renamed or copied: where its name says something else than its
config, the config wins and ``Run.mismatch`` says so.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

import yaml

RUN_NAME_PATTERN = re.compile(r"^(?P<dataset>[a-z0-9_]+)-(?P<method>[a-z0-9_]+)-s(?P<seed>\d+)$")


def run_name(dataset: str, method: str, seed: int) -> str:
    return f"{dataset}-{method}-s{seed}"


def parse_run_name(name: str) -> tuple[str, str, int] | None:
    """``'cub200-rifle-s2'`` -> ``('cub200', 'rifle', 2)``; None for a name that is not a table run's."""
    match = RUN_NAME_PATTERN.match(name)
    return (match["dataset"], match["method"], int(match["seed"])) if match else None


def _read_json(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _read_yaml(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


#: trick switches and the method names the tables give them
_TRICKS = (("dropout", "dropout"), ("dropconnect", "dropconnect"), ("stochastic_depth", "stochastic_depth"),
           ("disturb_label", "disturblabel"))


def method_from_switches(config: dict) -> str:
    """A method name for a run outside the tables, built from its switches in the tables' own words
    (``rifle_l2sp``, ``l2sp_dtnh``, ``dropout``, ``cyclic_lr``; ``finetune`` when none is on)."""
    parts = []
    rifle = config.get("rifle") or {}
    if rifle.get("enabled"):
        parts.append("rifle_reset" if rifle.get("reset_optimizer_state") else "rifle")
    regularizer = (config.get("regularizer") or {}).get("name") or "none"
    if regularizer != "none":
        parts.append(regularizer)
    if (config.get("dtnh") or {}).get("enabled"):
        parts.append("dtnh")
    tricks = config.get("tricks") or {}
    parts += [name for key, name in _TRICKS if tricks.get(key)]
    if (config.get("train") or {}).get("lr_schedule") == "cyclic":
        parts.append("cyclic_lr")
    return "_".join(parts) or "finetune"


@dataclass
class Run:
    path: str
    config: dict | None
    metrics: dict | None

    @property
    def name(self) -> str:
        return os.path.basename(os.path.normpath(self.path))

    @property
    def cell(self) -> tuple[str, str, int] | None:
        """``(dataset, method, seed)`` of the run, from its config.

        ``run.cell`` and ``run.seed`` when the config names its cell. A config from before ``run.cell`` existed
        takes the folder name's cell when the name agrees with the config (data set, seed, RIFLE on or off), and
        otherwise ``data.name`` and ``method_from_switches``. None only when ``config.yaml`` is unreadable and the
        name is not a table run's."""
        if self.config is None:
            return parse_run_name(self.name)
        run = self.config.get("run") or {}
        seed = int(run.get("seed", 0))
        if run.get("cell"):
            dataset, _, method = str(run["cell"]).partition("/")
            return dataset, method, seed
        named = parse_run_name(self.name)
        if named is not None and not self._disagreements(named):
            return named
        return (self.config.get("data") or {}).get("name", "unknown"), method_from_switches(self.config), seed

    def _disagreements(self, named: tuple[str, str, int]) -> list[str]:
        """What the folder name ``named`` says that the config contradicts."""
        dataset, method, seed = named
        data_name = (self.config.get("data") or {}).get("name", "")
        run = self.config.get("run") or {}
        found = []
        if run.get("cell") and run["cell"] != f"{dataset}/{method}":
            found.append(f"cell {dataset}/{method} (config: {run['cell']})")
        elif not run.get("cell") and data_name not in ("folder", "filelist") and not dataset.startswith(data_name):
            found.append(f"data set {dataset} (config: data.name={data_name})")
        if not run.get("cell") and method.startswith("rifle") != bool((self.config.get("rifle") or {}).get("enabled")):
            found.append(f"method {method} (config: rifle.enabled={(self.config.get('rifle') or {}).get('enabled')})")
        if "seed" in run and int(run["seed"]) != seed:
            found.append(f"seed {seed} (config: run.seed={run['seed']})")
        return found

    @property
    def mismatch(self) -> str | None:
        """A warning when the folder's name claims a cell or seed its config contradicts (the config wins)."""
        named = parse_run_name(self.name)
        if named is None or self.config is None:
            return None
        found = self._disagreements(named)
        return f"{self.path}: the folder name says {', '.join(found)}; reported as its config says" if found else None

    @property
    def complete(self) -> bool:
        final = (self.metrics or {}).get("final") or {}
        return isinstance(final.get("acc_top1"), (int, float))

    def accuracy(self, which: str = "final") -> float | None:
        """Top-1 test accuracy at the end of training (``final``) or at the best epoch (``best``)."""
        if which == "final":
            return (self.metrics or {}).get("final", {}).get("acc_top1") if self.complete else None
        if which == "best":
            return ((self.metrics or {}).get("best") or {}).get("test_acc_top1") if self.complete else None
        raise ValueError(f"unknown accuracy '{which}', expected 'final' or 'best'")

    def weights_path(self, which: str = "last") -> str:
        return os.path.join(self.path, f"{which}.pdparams")


def read_run(path: str) -> Run:
    return Run(path=path, config=_read_yaml(os.path.join(path, "config.yaml")),
               metrics=_read_json(os.path.join(path, "metrics.json")))


def is_complete(run_dir: str) -> bool:
    return os.path.isfile(os.path.join(run_dir, "metrics.json")) and read_run(run_dir).complete


def find_runs(root: str) -> list[Run]:
    """Every run directory under ``root`` (``root`` itself included), sorted by path."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no such directory: {root}")
    runs = []
    for directory, subdirs, files in os.walk(root):
        if "config.yaml" in files:
            runs.append(read_run(directory))
            subdirs.clear()  # a run's own sub-folders (vdl/) hold no runs
        else:
            subdirs.sort()
    return sorted(runs, key=lambda r: r.path)
