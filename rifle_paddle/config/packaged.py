"""The configs shipped with the package, so that a pip install can name them.

They live in the repository's top-level ``configs/``; ``setup.py`` ships that folder inside the wheel as
``rifle_paddle/configs/`` (``package_dir``). ``CONFIGS_DIR`` is therefore the package's ``configs/`` in an installed
wheel and the checkout's ``configs/`` beside the package otherwise (a checkout, an editable install).

``rifle-train -c cub200/resnet50_rifle`` reads ``<CONFIGS_DIR>/cub200/resnet50_rifle.yaml`` from wherever the
command runs. A path to a file that exists always wins, so ``-c my.yaml`` and ``-c run/config.yaml`` keep working,
and so do the checkout-relative spellings in older notes (``configs/...``, ``rifle_paddle/configs/...``).
"""
from __future__ import annotations

import glob
import os

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS_DIR = next((d for d in (os.path.join(_PACKAGE, "configs"), os.path.join(os.path.dirname(_PACKAGE), "configs"))
                    if os.path.isfile(os.path.join(d, "base.yaml"))), os.path.join(_PACKAGE, "configs"))

# Folders of fragments that run configs inherit (data sets, methods) and of the tables configgen reads: not
# configs one trains with on their own, so ``--list-configs`` leaves them out (``-c`` still accepts them), as it
# leaves out ``base.yaml`` (the protocol every run config inherits).
FRAGMENT_FOLDERS = ("datasets", "methods", "tables")
_OLD_PREFIXES = ("rifle_paddle/configs/", "configs/")
#: the folders of the demo's cells (``configs/tables/demo.yaml``): a bare ``rifle-train`` runs them with a source
#: model of its own, so ``--list-configs`` counts them in one line instead of offering them beside the tables'
DEMO_FOLDERS = ("fashion_mnist_192",)


def resolve_config(spec: str) -> str:
    """The file ``-c spec`` means: ``spec`` itself when it is a file, else the packaged config of that name
    (``packaged_config``), else ``spec`` unchanged, so that the loader's "not found" message names what the user
    typed."""
    if os.path.isfile(spec):
        return spec
    return packaged_config(spec) or spec


def packaged_config(name: str) -> str | None:
    """The file of the config shipped with the package as ``name`` (with or without ``.yaml``, with or without a
    ``configs/`` prefix), or None; a name reaching outside that folder (``..``, an absolute path) is none of them."""
    name = name.replace("\\", "/")
    if name.startswith("/") or ".." in name.split("/"):
        return None
    for prefix in _OLD_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    for candidate in (name, f"{name}.yaml"):
        path = os.path.join(CONFIGS_DIR, *candidate.split("/"))
        if os.path.isfile(path):
            return path
    return None


def is_demo(name: str) -> bool:
    """Whether the config ``name`` (``<folder>/<name>``) is one of the demo's cells."""
    return name.split("/")[0] in DEMO_FOLDERS


def config_listing(everything: bool = False) -> str:
    """What ``--list-configs`` prints: the runnable configs, the demo's summed up in a last line unless
    ``everything``."""
    names = list_configs()
    shown = [n for n in names if everything or not is_demo(n)]
    hidden = sorted({n.split("/")[0] + "/" for n in names if n not in shown})
    if hidden:
        shown.append(f"(and {len(names) - len(shown)} configs of the demo, which a bare rifle-train runs, in "
                     f"{', '.join(hidden)}: --list-configs all names them)")
    return "\n".join(shown)


def list_configs() -> list[str]:
    """Names ``-c`` accepts for the packaged run configs (``<folder>/<name>``, no ``.yaml``)."""
    names = []
    for path in glob.glob(os.path.join(CONFIGS_DIR, "*", "*.yaml")):
        rel = os.path.relpath(path, CONFIGS_DIR).replace(os.sep, "/")
        if rel.split("/")[0] not in FRAGMENT_FOLDERS:
            names.append(rel[:-len(".yaml")])
    return sorted(names)
