"""FGVC-Aircraft 2013b: 10,000 photographs of aircraft, official train / val / test of 3,334 / 3,333 / 3,333,
labelled at three levels: 100 variants (e.g. Boeing 737-700), 70 families (Boeing 737), 30 manufacturers (Boeing).

Layout of ``fgvc-aircraft-2013b.tar.gz`` unpacked; ``data.root`` is the ``fgvc-aircraft-2013b/`` folder::

    data/images/<7-digit id>.jpg
    data/variants.txt  data/families.txt  data/manufacturers.txt        one class name per line
    data/images_<level>_<train|val|test>.txt                             <id> <class name, may hold spaces>

``data.label_level`` picks the level (default variant). ``data.trainval`` (default true) trains on train + val, the
usual fine-tuning protocol. Every image carries a 20-pixel copyright banner at the bottom, which the data set's
README asks users to remove: ``data.remove_banner`` (default true) does so at decode time.
"""
from __future__ import annotations

import os

from .layout import check_files_exist, class_index, dataset_root, read_lines, require_dir, require_file
from .registry import Expected, Split, register_reader

NAME = "fgvc_aircraft"
LEVELS = {"variant": ("variants.txt", 100), "family": ("families.txt", 70), "manufacturer": ("manufacturers.txt", 30)}
BANNER_ROWS = 20


def _expected(cfg: dict) -> Expected:
    level = cfg.get("label_level") or "variant"
    return Expected(train=6667 if cfg["trainval"] else 3334, test=3333, classes=LEVELS[level][1])


@register_reader(NAME, expected=_expected, label_levels=tuple(LEVELS))
def read_fgvc_aircraft(cfg: dict, split: str) -> Split:
    root = dataset_root(cfg, NAME, "the unpacked fgvc-aircraft-2013b/ folder (holding data/)")
    level = cfg.get("label_level") or "variant"
    class_file = require_file(root, os.path.join("data", LEVELS[level][0]), NAME,
                              f"the list of {level} names of fgvc-aircraft-2013b.tar.gz")
    classes = [name for _, name in read_lines(class_file)]
    label_of = class_index(classes, class_file)
    image_dir = require_dir(root, os.path.join("data", "images"), NAME, "the images of fgvc-aircraft-2013b.tar.gz")
    parts = (["train", "val"] if cfg["trainval"] else ["train"]) if split == "train" else ["test"]
    samples = []
    for part in parts:
        listing = require_file(root, os.path.join("data", f"images_{level}_{part}.txt"), NAME,
                               f"the {part} list of fgvc-aircraft-2013b.tar.gz")
        listed = []
        for n, line in read_lines(listing):
            image_id, _, name = line.partition(" ")
            listed.append((os.path.join(image_dir, f"{image_id}.jpg"), label_of(name.strip(), f"{listing}:{n}")))
        check_files_exist((p for p, _ in listed), listing)
        samples.extend(listed)
    return Split(samples, classes, crop_bottom=BANNER_ROWS if cfg["remove_banner"] else 0)
