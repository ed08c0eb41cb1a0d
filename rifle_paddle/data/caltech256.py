"""Caltech-256: 30,607 images in 256 object categories plus a clutter category (257 folders, 80 to 827 images each).

There is no official split: the papers draw N training images per category (Caltech-256-30 and -60) and test on
the rest or on a fixed number per category (L2-SP and DELTA use 20). ``data.train_per_class`` (required) and
``data.test_per_class`` (null: all the rest) set the protocol; the draw is seeded by ``data.sample_seed`` (or
``run.seed``), one generator per category, so a seed gives the same split for every method and Caltech-256-30's
training images are part of Caltech-256-60's.

Layout of ``256_ObjectCategories.tar`` unpacked; ``data.root`` is the ``256_ObjectCategories/`` folder::

    001.ak47/001_0001.jpg ...   ...   257.clutter/257_0001.jpg ...

Only the images directly in each category folder count: the archive's stray ``056.dog/greg/`` folder and
``198.spider/RENAME2`` file are not part of the data set. The clutter category is kept, as in L2-SP (257 classes).
"""
from __future__ import annotations

import os

from .base import class_permutation
from .errors import DataError
from .folder import IMAGE_EXTENSIONS
from .layout import dataset_root, misplaced_root_hint
from .registry import Expected, Split, register_reader

NAME = "caltech256"
TOTAL_IMAGES, NUM_CLASSES = 30607, 257


def _expected(cfg: dict) -> Expected | None:
    n_train, n_test = cfg.get("train_per_class"), cfg.get("test_per_class")
    if n_train is None:
        return None
    test = NUM_CLASSES * n_test if n_test else TOTAL_IMAGES - NUM_CLASSES * n_train
    return Expected(train=NUM_CLASSES * n_train, test=test, classes=NUM_CLASSES, train_per_class=n_train,
                    test_per_class=n_test)


@register_reader(NAME, expected=_expected)
def read_caltech256(cfg: dict, split: str) -> Split:
    root = dataset_root(cfg, NAME, "the unpacked 256_ObjectCategories/ folder (holding 001.ak47/ ... 257.clutter/)")
    n_train, n_test = cfg.get("train_per_class"), cfg.get("test_per_class")
    if n_train is None:
        raise DataError(f"{NAME} has no official split: set data.train_per_class (30 or 60 in the papers) and "
                        f"optionally data.test_per_class (20 in L2-SP/DELTA; null: all the rest), e.g. "
                        f"-o data.train_per_class=30 -o data.test_per_class=20")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    # data.root one level up (the folder holding 256_ObjectCategories/): its one "category" had 0 images
    one_level_down = "" if os.path.isdir(os.path.join(root, "001.ak47")) else misplaced_root_hint(root, "001.ak47")
    if not classes or one_level_down:
        raise DataError(f"{NAME}: {root} has no category folders (expected 001.ak47/ ... 257.clutter/)"
                        f"{one_level_down}")
    seed = cfg.get("sample_seed") or 0
    needed = n_train + (n_test or 1)
    samples = []
    for label, name in enumerate(classes):
        directory = os.path.join(root, name)
        files = sorted(e.name for e in os.scandir(directory)
                       if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))
        if len(files) < needed:
            raise DataError(f"{NAME}: {directory} has {len(files)} images, fewer than the {needed} that "
                            f"data.train_per_class={n_train} and data.test_per_class={n_test} need")
        order = class_permutation(len(files), seed, label)
        chosen = order[:n_train] if split == "train" else order[n_train:n_train + n_test if n_test else None]
        samples.extend((os.path.join(directory, files[i]), label) for i in sorted(chosen))
    return Split(samples, classes)
