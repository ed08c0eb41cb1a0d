"""``root/<split>/<class>/<image>``: the layout of the RIFLE authors' code and of most hand-made data sets."""
from __future__ import annotations

import os

from .errors import DataError
from .registry import Split, register_reader

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def scan_folder(directory: str) -> Split:
    """Classes are the sub-directories in sorted order; images are found recursively below each."""
    if not os.path.isdir(directory):
        raise DataError(f"image folder not found: {directory} (expected <root>/<split>/<class>/<image>)")
    classes = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise DataError(f"{directory} has no class sub-directories (expected {directory}/<class>/<image>)")
    samples = []
    for label, name in enumerate(classes):
        for dirpath, dirnames, filenames in os.walk(os.path.join(directory, name)):
            dirnames.sort()
            samples.extend((os.path.join(dirpath, f), label) for f in sorted(filenames)
                           if f.lower().endswith(IMAGE_EXTENSIONS))
    if not samples:
        raise DataError(f"{directory} has class folders but no images ({', '.join(IMAGE_EXTENSIONS)})")
    empty = [name for label, name in enumerate(classes) if not any(y == label for _, y in samples)]
    if empty:  # it would still be a class: an output the model is asked to predict with nothing to learn it from
        raise DataError(f"{directory}: class folder(s) without any image: {', '.join(empty[:5])}"
                        f"{f' and {len(empty) - 5} more' if len(empty) > 5 else ''}; add images or remove the "
                        f"folder(s)")
    return Split(samples, classes)


@register_reader("folder")
def read_folder(cfg: dict, split: str) -> Split:
    root = cfg["root"]
    if root is None:
        raise DataError("data.root is not set (the folder holding train/ and test/)")
    return scan_folder(os.path.join(root, split))
