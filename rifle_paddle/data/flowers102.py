"""Oxford Flowers-102: 8,189 photographs of 102 flower species; official split train / val / test of 1,020 / 1,020
/ 6,149 (10 images per class in train and in val).

Layout of ``102flowers.tgz``, ``imagelabels.mat`` and ``setid.mat`` in ``data.root``::

    jpg/image_00001.jpg ... jpg/image_08189.jpg
    imagelabels.mat        labels: 1x8189 class numbers 1..102, image i at position i
    setid.mat              trnid, valid, tstid: 1-based image numbers of each split

``data.trainval`` (default true) trains on train + val, the usual fine-tuning protocol. The download names no
classes, so they are the class numbers "001" ... "102".
"""
from __future__ import annotations

import os

from .errors import DataError
from .layout import check_files_exist, dataset_root, load_mat, mat_column, parse_label, require_dir, require_file
from .registry import Expected, Split, register_reader

NAME = "flowers102"
NUM_CLASSES = 102


def _expected(cfg: dict) -> Expected:
    per_class = 20 if cfg["trainval"] else 10
    return Expected(train=NUM_CLASSES * per_class, test=6149, classes=NUM_CLASSES, train_per_class=per_class)


@register_reader(NAME, expected=_expected)
def read_flowers102(cfg: dict, split: str) -> Split:
    root = dataset_root(cfg, NAME, "the folder holding jpg/ (102flowers.tgz), imagelabels.mat and setid.mat")
    image_dir = require_dir(root, "jpg", NAME, "the jpg/ folder of 102flowers.tgz")
    labels_path = require_file(root, "imagelabels.mat", NAME, "the image labels, imagelabels.mat")
    setid_path = require_file(root, "setid.mat", NAME, "the official split, setid.mat")
    labels = mat_column(load_mat(labels_path, ["labels"]), "labels", None, labels_path)
    setid = load_mat(setid_path, ["trnid", "valid", "tstid"])
    parts = (["trnid", "valid"] if cfg["trainval"] else ["trnid"]) if split == "train" else ["tstid"]
    samples = []
    for part in parts:
        for number in mat_column(setid, part, None, setid_path):
            i = int(number)
            if not 1 <= i <= len(labels):
                raise DataError(f"{setid_path}: {part} lists image {i}, but imagelabels.mat labels images "
                                f"1..{len(labels)}")
            samples.append((os.path.join(image_dir, f"image_{i:05d}.jpg"),
                            parse_label(labels[i - 1], NUM_CLASSES, f"{labels_path} (image {i})")))
    check_files_exist((p for p, _ in samples), setid_path)
    return Split(samples, [f"{k:03d}" for k in range(1, NUM_CLASSES + 1)])
