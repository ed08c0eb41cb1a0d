"""PaddleClas-style list files: one ``relative/path.jpg label`` per line, paths relative to ``data.root``."""
from __future__ import annotations

import os

from ..config.checks import register_check
from .errors import DataError
from .registry import Split, register_reader


def read_list(list_path: str, root: str) -> list[tuple[str, int]]:
    if not os.path.isfile(list_path):
        raise DataError(f"file list not found: {list_path}")
    samples = []
    with open(list_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            path, _, label = line.rpartition(" ")
            try:
                label_int = int(label)
            except ValueError:
                label_int = -1
            if not path or label_int < 0:
                raise DataError(f"{list_path}:{lineno}: expected '<path> <non-negative integer label>', "
                                f"got {line!r}")
            samples.append((os.path.join(root, path.strip()), label_int))
    if not samples:
        raise DataError(f"file list {list_path} has no entries")
    return samples


@register_reader("filelist", needs_root=False)
def read_filelist(cfg: dict, split: str) -> Split:
    root = cfg["root"] or ""
    key = f"{split}_list"
    if cfg.get(key) is None:
        raise DataError(f"data.{key} is not set (the 'filelist' reader needs a list file per split)")
    samples = read_list(os.path.join(root, cfg[key]), root)
    # Class names are the label numbers: a list file carries no names. Both splits must agree on the count,
    # so it is taken from the larger of the two lists when both exist.
    num_classes = 1 + max(y for _, y in samples)
    other = cfg.get("test_list" if split == "train" else "train_list")
    if other is not None and os.path.isfile(os.path.join(root, other)):
        num_classes = max(num_classes, 1 + max(y for _, y in read_list(os.path.join(root, other), root)))
    return Split(samples, [str(i) for i in range(num_classes)])


@register_check
def _list_problems(cfg: dict, purpose: str | None) -> list[str]:
    """``data.name=filelist`` needs both list files: set (any config), and present (a run that reads them)."""
    data = cfg["data"]
    if data.get("name") != "filelist":
        return []
    if purpose is None:
        missing = [k for k in ("train_list", "test_list") if not data[k]]
        if not missing:
            return []
        return [f"data.name=filelist needs data.{' and data.'.join(missing)} (`path label` list files)"]
    problems, root = [], data.get("root")
    for key in ("train_list", "test_list"):
        if isinstance(data.get(key), str) and isinstance(root, (str, type(None))):
            path = os.path.join(root or "", data[key])
            if not os.path.isfile(path):
                problems.append(f"data.{key}: file not found: {path}")
    return problems
