"""A results table of the papers as a small matrix: data sets x methods, each method a list of config fragments.

One file per table in ``<configs>/tables/`` (the package's ``configs/``, or a folder of one's own laid out alike);
``configgen`` turns every cell into a run config
``<configs>/<dataset>/<arch>_<method>.yaml`` and ``sweep`` runs the cells. Format::

    title: "RIFLE vs. the regularization tricks"   # free text, for the report
    arch: resnet50                                   # optional; names the files (base.yaml pins the model)
    baseline: finetune                               # the row every delta is taken against
    datasets: [cub200, stanford_cars]                # configs/datasets/<name>.yaml
    methods:
      finetune:   {title: "Fine-tuning (L2)", fragments: [finetune]}
      rifle_l2sp: {title: "L2-SP + RIFLE",    fragments: [l2sp, rifle]}   # configs/methods/<name>.yaml, in order
    packaged_fragments: false                        # optional; true: a base, data set or method this configs
                                                     # folder lacks is the package's (a folder outside the package)
    cells:                                           # optional additions to single cells
      cub200/rifle:
        note: "why this cell differs"               # becomes a comment in the generated file
        config: {rifle: {num_reinits: 2}}

Names are lower-case words joined by ``_`` so that a run name ``<dataset>-<method>-s<seed>`` parses back.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import yaml

from ..config import CONFIGS_DIR
from ..config.packaged import resolve_config
from ..config.schema import SCHEMA, field_of

NAME_PATTERN = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)*$")

# Display names, shared by the generated configs and the report.
DATASET_TITLES = {
    "cub200": "CUB-200-2011", "stanford_cars": "Stanford Cars", "fgvc_aircraft": "FGVC-Aircraft",
    "stanford_dogs": "Stanford Dogs", "flowers102": "Flowers-102", "indoor67": "MIT Indoor-67",
    "caltech256": "Caltech-256", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "fashion_mnist": "Fashion-MNIST",
    # the CPU evidence's regimes (docs/evidence.md): Fashion-MNIST with N labels per target class
    **{f"fashion_mnist_{n}": f"Fashion-MNIST, {n} labels/class" for n in (32, 96, 192, 640)},
}


def dataset_title(name: str) -> str:
    return DATASET_TITLES.get(name, name)


def arch_title(arch: str) -> str:
    match = re.fullmatch(r"resnet(\d+)", arch)
    return f"ResNet-{match.group(1)}" if match else arch


class TableError(ValueError):
    """Every problem of a table file at once."""

    def __init__(self, path: str, problems: list[str]):
        self.path, self.problems = path, problems
        super().__init__(f"{path}: invalid table:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Method:
    name: str
    title: str
    fragments: tuple[str, ...]


@dataclass(frozen=True)
class Cell:
    """One table entry: a data set, a method and what this entry adds on top of the method's fragments."""

    dataset: str
    method: Method
    note: str | None = None
    config: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.method.name}"


@dataclass
class Table:
    path: str
    title: str
    arch: str
    baseline: str
    datasets: list[str]
    methods: dict[str, Method]
    cells: list[Cell]
    packaged_fragments: bool = False

    @property
    def name(self) -> str:
        return os.path.splitext(os.path.basename(self.path))[0]

    @property
    def configs_dir(self) -> str:
        """The ``configs/`` folder this table belongs to (tables live in ``configs/tables/``)."""
        return os.path.dirname(os.path.dirname(os.path.abspath(self.path)))

    def config_path(self, cell: Cell) -> str:
        return os.path.join(self.configs_dir, cell.dataset, f"{self.arch}_{cell.method.name}.yaml")

    def fragment(self, *parts: str) -> str:
        """A fragment of this table's configs folder; with ``packaged_fragments``, the package's of that name when
        the folder lacks it (a table kept outside the package adds its own data sets or methods and reuses the
        packaged ones)."""
        own = os.path.join(self.configs_dir, *parts)
        packaged = os.path.join(CONFIGS_DIR, *parts)
        return packaged if self.packaged_fragments and not os.path.isfile(own) and os.path.isfile(packaged) else own

    def fragment_paths(self, cell: Cell) -> list[str]:
        """The files a cell's config inherits, in merge order (later wins)."""
        return ([self.fragment("base.yaml"), self.fragment("datasets", f"{cell.dataset}.yaml")] +
                [self.fragment("methods", f"{f}.yaml") for f in cell.method.fragments])

    def missing_fragments(self, cell: Cell) -> list[str]:
        return [p for p in self.fragment_paths(cell) if not os.path.isfile(p)]

    def select(self, datasets: list[str] | None = None, methods: list[str] | None = None) -> list[Cell]:
        """Cells restricted to the given data sets / methods (unknown names are an error)."""
        for kind, wanted, known in (("data set", datasets, self.datasets), ("method", methods, self.methods)):
            unknown = sorted(set(wanted or []) - set(known))
            if unknown:
                raise TableError(self.path, [f"unknown {kind} {', '.join(unknown)}; the table has "
                                             f"{', '.join(known)}"])
        return [c for c in self.cells
                if (not datasets or c.dataset in datasets) and (not methods or c.method.name in methods)]


def _check_name(kind: str, name, problems: list[str]) -> bool:
    if isinstance(name, str) and NAME_PATTERN.match(name):
        return True
    problems.append(f"{kind} name {name!r} must be lower-case letters and digits joined by '_'")
    return False


def _check_config_keys(where: str, config, problems: list[str]) -> None:
    if not isinstance(config, dict):
        problems.append(f"{where}: 'config' must be a mapping of config sections")
        return
    for section, values in config.items():
        if section not in SCHEMA or not isinstance(values, dict):
            problems.append(f"{where}: '{section}' is not a config section with keys ({', '.join(SCHEMA)})")
            continue
        problems.extend(f"{where}: unknown config key '{section}.{key}'" for key in values
                        if field_of(f"{section}.{key}") is None)


def load_table(path: str) -> Table:
    """Read and validate a table file, or a table shipped with the package by name (``tables/dtnh_table``, or
    ``configs/tables/dtnh_table.yaml`` from any folder, as ``-c`` takes a config); raises ``TableError`` with every
    problem found."""
    path = resolve_config(path)
    if not os.path.isfile(path):
        raise TableError(path, ["file not found"])
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise TableError(path, [f"not valid YAML: {e}"]) from None
    problems: list[str] = []
    if not isinstance(data, dict):
        raise TableError(path, ["top level must be a mapping"])
    unknown = sorted(set(data) - {"title", "arch", "baseline", "datasets", "methods", "cells", "packaged_fragments"})
    if unknown:
        problems.append(f"unknown top-level keys {', '.join(unknown)}")

    datasets = data.get("datasets") or []
    if not isinstance(datasets, list) or not datasets:
        problems.append("'datasets' must be a non-empty list of data set names")
        datasets = []
    datasets = [d for d in datasets if _check_name("data set", d, problems)]
    if len(set(datasets)) != len(datasets):
        problems.append("'datasets' lists a data set twice")

    methods: dict[str, Method] = {}
    raw_methods = data.get("methods") or {}
    if not isinstance(raw_methods, dict) or not raw_methods:
        problems.append("'methods' must map method names to {title, fragments}")
        raw_methods = {}
    for name, spec in raw_methods.items():
        if not _check_name("method", name, problems):
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("fragments"), list) or not spec["fragments"]:
            problems.append(f"method '{name}': needs 'fragments', a non-empty list of configs/methods/ names")
            continue
        fragments = [f for f in spec["fragments"] if _check_name(f"method '{name}': fragment", f, problems)]
        methods[name] = Method(name, str(spec.get("title") or name), tuple(fragments))

    baseline = data.get("baseline", "finetune")
    if methods and baseline not in methods:
        problems.append(f"baseline '{baseline}' is not one of the methods ({', '.join(methods)})")
    arch = data.get("arch", "resnet50")
    _check_name("arch", arch, problems)

    packaged_fragments = data.get("packaged_fragments", False)
    if not isinstance(packaged_fragments, bool):
        problems.append("'packaged_fragments' must be true or false")

    extras = data.get("cells") or {}
    if not isinstance(extras, dict):
        problems.append("'cells' must map '<dataset>/<method>' to {note, config}")
        extras = {}
    for key, spec in extras.items():
        dataset, _, method = str(key).partition("/")
        if dataset not in datasets or method not in methods:
            problems.append(f"cells: '{key}' is not '<dataset>/<method>' of this table")
        if not isinstance(spec, dict) or set(spec) - {"note", "config"}:
            problems.append(f"cells: '{key}' takes 'note' and 'config' only")
            continue
        _check_config_keys(f"cells: '{key}'", spec.get("config", {}), problems)
    if problems:
        raise TableError(path, problems)

    cells = [Cell(d, m, note=(extras.get(f"{d}/{name}") or {}).get("note"),
                  config=(extras.get(f"{d}/{name}") or {}).get("config") or {})
             for d in datasets for name, m in methods.items()]
    return Table(path=path, title=str(data.get("title") or ""), arch=arch, baseline=baseline,
                 datasets=list(datasets), methods=methods, cells=cells, packaged_fragments=packaged_fragments)
