"""Fashion-MNIST (Xiao, Rasul, Vollgraf, 2017): 70,000 real product photographs of Zalando articles, 28x28 grey,
10 classes, 6,000 train / 1,000 test per class. MIT licence, Copyright 2017 Zalando SE.

It is the one real photograph data set that installs offline from a package registry (Debian's
``dataset-fashion-mnist``, 30 MB, into ``/usr/share/datasets/fashion-mnist``), which is why the CPU benchmark and
the demo use it: pretrain on some classes, transfer to the others. ``data.root`` may also point at the four files
downloaded from github.com/zalandoresearch/fashion-mnist (``data/fashion``), gzipped or not::

    train-images-idx3-ubyte.gz   train-labels-idx1-ubyte.gz   t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz

IDX format: big-endian magic (0x0803 images / 0x0801 labels), the dimensions, then raw uint8 data. The grey images
are repeated into three channels so ImageNet-style backbones and transforms apply unchanged.
"""
from __future__ import annotations

import gzip
import os

import numpy as np

from .errors import DataError
from .registry import Expected, Split, register_reader

DEBIAN_ROOT = "/usr/share/datasets/fashion-mnist"
CLASSES = ["t-shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot"]
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _open(root: str, stem: str):
    for name, opener in ((stem + ".gz", gzip.open), (stem, open)):
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return path, opener(path, "rb")
    raise DataError(f"fashion_mnist: {os.path.join(root, stem)}[.gz] not found. Install the data with "
                    f"'apt-get install dataset-fashion-mnist' (Debian/Ubuntu; files go to {DEBIAN_ROOT}) or "
                    f"download the four IDX files of github.com/zalandoresearch/fashion-mnist and set data.root")


def read_idx(root: str, stem: str, magic: int) -> np.ndarray:
    """One IDX file as a uint8 array of the shape its header gives."""
    path, f = _open(root, stem)
    with f:
        data = f.read()
    if len(data) < 8 or int.from_bytes(data[:4], "big") != magic:
        raise DataError(f"{path}: not an IDX file with magic 0x{magic:04x}")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims} but holds {len(data) - offset} bytes (truncated download?)")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def _expected(cfg: dict) -> Expected:
    return Expected(60000, 10000, 10, 6000, 1000)


@register_reader("fashion_mnist", expected=_expected, needs_root=False)
def read_fashion_mnist(cfg: dict, split: str) -> Split:
    root = cfg.get("root") or DEBIAN_ROOT
    images_stem, labels_stem = _FILES[split]
    images = read_idx(root, images_stem, 0x0803)
    labels = read_idx(root, labels_stem, 0x0801).astype(np.int64)
    if images.ndim != 3 or len(images) != len(labels):
        raise DataError(f"fashion_mnist: {root}: {images.shape} images do not match {len(labels)} labels")
    rgb = np.repeat(images[..., None], 3, axis=3)
    return Split([(i, int(y)) for i, y in enumerate(labels)], list(CLASSES), images=rgb)
