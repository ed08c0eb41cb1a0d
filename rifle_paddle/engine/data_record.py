"""What a run trains and tests on, recorded in every checkpoint so that a resume on other data is caught.

A resumed run "ends as if it had never stopped" only on the same data: images added or removed between the stop
and the resume change the epochs still to run (their batches, the schedule's steps per epoch), and a class added
or removed changes what the network's outputs mean. The record keeps, per split, the number of images, the count
per class and a SHA-256 of the sorted ``(file, label)`` list (file paths relative to ``data.root``, which a resume
may move); and the class names in label order.

A changed class list is always refused (the saved network's outputs would name other classes); other changes are
refused unless ``train.resume_data_changed: allow``, which continues with a warning naming them.
"""
from __future__ import annotations

import hashlib
import os


def _split_record(dataset, root: str | None) -> dict:
    """``root`` as the readers were given it: their file keys join it, so a relative ``data.root`` (a run started
    with ``data.root=data``) gives relative keys, which are taken relative to it as given, and absolute keys (the
    resume reads the saved config's absolute root) relative to its absolute form; both give ``<class>/<file>``."""
    digest = hashlib.sha256()
    entries = []
    for key, label in dataset.samples:
        if isinstance(key, str) and root:
            key = os.path.relpath(key, os.path.abspath(root) if os.path.isabs(key) else root)
        entries.append(f"{key}\t{int(label)}")
    for entry in sorted(entries):
        digest.update(entry.encode("utf-8", "surrogateescape") + b"\n")
    return {"images": len(dataset), "per_class": [int(c) for c in dataset.class_counts()],
            "sha256": digest.hexdigest()}


def data_record(train_set, test_set, root: str | None) -> dict:
    """The record of the run's data (see the module docstring)."""
    return {"classes": [str(c) for c in train_set.classes], "train": _split_record(train_set, root),
            "test": _split_record(test_set, root)}


def _counts_change(split: str, before: dict, now: dict, classes: list[str]) -> str | None:
    if before == now:
        return None
    line = f"{split} images: {before['images']} in the run, {now['images']} now"
    if before["per_class"] != now["per_class"] and len(before["per_class"]) == len(now["per_class"]):
        changed = [f"{classes[i]} {a} -> {b}" for i, (a, b) in enumerate(zip(before["per_class"], now["per_class"]))
                   if a != b]
        line += f" ({', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''})"
    elif before["images"] == now["images"]:
        line += " (same counts, other files)"
    return line


def class_change(saved_classes: list[str] | None, classes: list[str]) -> str | None:
    """The class list's change as one line, None when it is the same (or unknown)."""
    if saved_classes is None or list(saved_classes) == list(classes):
        return None
    added = [c for c in classes if c not in saved_classes]
    removed = [c for c in saved_classes if c not in classes]
    detail = "; ".join(filter(None, [added and f"added {', '.join(added[:5])}",
                                     removed and f"removed {', '.join(removed[:5])}"])) or "in another order"
    return f"classes: {len(saved_classes)} in the run, {len(classes)} now ({detail})"


def data_changes(saved: dict, now: dict) -> list[str]:
    """The differences between two records, one line each (classes first)."""
    lines = [class_change(saved.get("classes"), now["classes"])]
    for split in ("train", "test"):
        if split in saved:
            lines.append(_counts_change(split, saved[split], now[split], now["classes"]))
    return [line for line in lines if line]
