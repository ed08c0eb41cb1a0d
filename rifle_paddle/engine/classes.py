"""``classes.json``: a run's class names in label order, so they travel with its weights.

Written when training starts, from the data set's own class list (the reader's folder names, the official class
files, or the indices when a data set has no names), after ``data.classes`` has selected and re-labelled them.
``eval.py`` labels its per-class results and confusion matrix with them, and ``rifle-export`` copies them into
the exported model's folder, where ``rifle-predict`` reads them.
"""
from __future__ import annotations

import json
import os

from ..core.files import atomic_write_text

CLASSES_FILE = "classes.json"


def write_classes(run_dir: str, classes: list[str], data_name: str) -> str:
    path = os.path.join(run_dir, CLASSES_FILE)
    atomic_write_text(json.dumps({"data": data_name, "classes": [str(c) for c in classes]}, indent=2), path)
    return path


def read_classes(folder: str) -> list[str] | None:
    """The class names saved in ``folder`` (a run or an exported model), or None when it has none."""
    try:
        with open(os.path.join(folder, CLASSES_FILE), encoding="utf-8") as f:
            return [str(c) for c in json.load(f)["classes"]]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{os.path.join(folder, CLASSES_FILE)} is not a class list: {e}") from None


def holds_classes(folder: str, classes: list) -> bool:
    """Whether ``folder``'s ``classes.json`` is readable and names exactly ``classes`` (a resumed run rewrites it
    only when it is not: missing, or damaged)."""
    try:
        return read_classes(folder) == [str(c) for c in classes]
    except ValueError:
        return False
