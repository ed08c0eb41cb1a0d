"""Miniature copies of the native layouts of every supported data set, for the data tests.

Each writer builds the official file formats (text lists, MATLAB .mat files written with scipy.io with the official
variable and field names, pickled CIFAR batches) around a handful of tiny generated JPEGs, and returns the root to
point ``data.root`` at plus the truth: ``{split: [(path relative to root, label), ...]}`` and the class names.
"""
from __future__ import annotations

import gzip
import os
import pickle
from typing import NamedTuple

import cv2
import numpy as np
from scipy.io import savemat

from rifle_paddle.config import load_config
from rifle_paddle.data import read_split


def data_cfg(name: str, root, **options) -> dict:
    """The ``data`` section of a validated config for reader ``name`` at ``root``; options are data.* keys."""
    overrides = [f"data.name={name}", f"data.root={root}"] + [f"data.{k}={v}" for k, v in options.items()]
    return load_config(None, overrides)["data"]


def read(name: str, root, split: str, seed: int = 0, **options):
    return read_split(data_cfg(name, root, **options), split, seed)


def relative(found, root: str) -> list[tuple[str, int]]:
    return [(os.path.relpath(p, root).replace(os.sep, "/"), y) for p, y in found.samples]


class Layout(NamedTuple):
    root: str
    splits: dict[str, list[tuple[str, int]]]
    classes: list[str]


def write_jpeg(path: str, seed: int, size: tuple[int, int] = (24, 32), quality: int = 90) -> str:
    """A small smooth colour image (a blurred random field), so decode-scale comparisons are meaningful."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    img = cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return path


def _cells(values, column: bool = True) -> np.ndarray:
    cells = np.empty((len(values), 1) if column else (1, len(values)), dtype=object)
    for i, v in enumerate(values):
        cells.flat[i] = v
    return cells


def _structs(records: list[dict]) -> np.ndarray:
    """A 1xN MATLAB struct array with the records' fields."""
    fields = list(records[0])
    arr = np.zeros((1, len(records)), dtype=[(f, object) for f in fields])
    for i, record in enumerate(records):
        for f in fields:
            arr[0, i][f] = record[f]
    return arr


def make_cub200(base: str, per_class: tuple[int, int] = (3, 2)) -> Layout:
    """3 species with ``per_class`` = (train, test) images each."""
    root = os.path.join(base, "CUB_200_2011")
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
    splits: dict[str, list] = {"train": [], "test": []}
    lines: dict[str, list[str]] = {"images.txt": [], "image_class_labels.txt": [], "train_test_split.txt": []}
    image_id = 0
    for label, name in enumerate(classes):
        for k in range(sum(per_class)):
            image_id += 1
            rel = f"{name}/{name.split('.')[1]}_{k:04d}_{image_id}.jpg"
            write_jpeg(os.path.join(root, "images", rel), image_id)
            is_train = k < per_class[0]
            lines["images.txt"].append(f"{image_id} {rel}")
            lines["image_class_labels.txt"].append(f"{image_id} {label + 1}")
            lines["train_test_split.txt"].append(f"{image_id} {int(is_train)}")
            splits["train" if is_train else "test"].append((f"images/{rel}", label))
    lines["classes.txt"] = [f"{i + 1} {name}" for i, name in enumerate(classes)]
    for file, content in lines.items():
        with open(os.path.join(root, file), "w") as f:
            f.write("\n".join(content) + "\n")
    return Layout(root, splits, classes)


CAR_CLASSES = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012"]


def make_stanford_cars(base: str, test_labels_in_devkit: bool = False) -> Layout:
    """Devkit layout: 3 models, 2 train and 1 test image each; test labels beside devkit/ (or in it)."""
    root = os.path.join(base, "stanford_cars")
    os.makedirs(os.path.join(root, "devkit"))
    splits: dict[str, list] = {"train": [], "test": []}
    for split, per_class in (("train", 2), ("test", 1)):
        records = []
        for n in range(per_class * len(CAR_CLASSES)):
            label = n % len(CAR_CLASSES)
            fname = f"{n + 1:05d}.jpg"
            write_jpeg(os.path.join(root, f"cars_{split}", fname), 100 + n)
            records.append({"bbox_x1": np.uint8(1), "bbox_y1": np.uint8(1), "bbox_x2": np.uint8(30),
                            "bbox_y2": np.uint8(20), "class": np.uint8(label + 1), "fname": fname})
            splits[split].append((f"cars_{split}/{fname}", label))
        if split == "train":
            savemat(os.path.join(root, "devkit", "cars_train_annos.mat"), {"annotations": _structs(records)})
            unlabelled = [{k: v for k, v in r.items() if k != "class"} for r in records]
            savemat(os.path.join(root, "devkit", "cars_test_annos.mat"), {"annotations": _structs(unlabelled)})
        else:
            where = os.path.join(root, "devkit") if test_labels_in_devkit else root
            savemat(os.path.join(where, "cars_test_annos_withlabels.mat"), {"annotations": _structs(records)})
    savemat(os.path.join(root, "devkit", "cars_meta.mat"), {"class_names": _cells(CAR_CLASSES, column=False)})
    return Layout(root, splits, CAR_CLASSES)


def make_stanford_cars_all_in_one(base: str) -> Layout:
    root = os.path.join(base, "cars_all")
    records, splits = [], {"train": [], "test": []}
    for n in range(9):
        label, test = n % 3, n >= 6
        rel = f"car_ims/{n + 1:06d}.jpg"
        write_jpeg(os.path.join(root, rel), 200 + n)
        records.append({"relative_im_path": rel, "bbox_x1": np.uint8(1), "bbox_y1": np.uint8(1),
                        "bbox_x2": np.uint8(30), "bbox_y2": np.uint8(20), "class": np.uint8(label + 1),
                        "test": np.uint8(test)})
        splits["test" if test else "train"].append((rel, label))
    savemat(os.path.join(root, "cars_annos.mat"), {"annotations": _structs(records),
                                                     "class_names": _cells(CAR_CLASSES, column=False)})
    return Layout(root, splits, CAR_CLASSES)


AIRCRAFT = [("707-320", "Boeing 707", "Boeing"), ("727-200", "Boeing 727", "Boeing"),
            ("A300B4", "A300", "Airbus"), ("DHC-1", "DHC-1", "de Havilland")]


def make_fgvc_aircraft(base: str, image_size: tuple[int, int] = (60, 80)) -> Layout:
    """4 variants, 3 families, 3 manufacturers (names with spaces); one image per variant and split part."""
    root = os.path.join(base, "fgvc-aircraft-2013b")
    data = os.path.join(root, "data")
    os.makedirs(data)
    for file, column in (("variants.txt", 0), ("families.txt", 1), ("manufacturers.txt", 2)):
        names = list(dict.fromkeys(a[column] for a in AIRCRAFT))
        with open(os.path.join(data, file), "w") as f:
            f.write("\n".join(names) + "\n")
    splits: dict[str, list] = {"train": [], "val": [], "test": []}
    n = 0
    for part in ("train", "val", "test"):
        lines: dict[str, list[str]] = {"variant": [], "family": [], "manufacturer": []}
        for label, names in enumerate(AIRCRAFT):
            n += 1
            image_id = f"{1000000 + n:07d}"
            write_jpeg(os.path.join(data, "images", f"{image_id}.jpg"), 300 + n, image_size)
            for level, name in zip(lines, names):
                lines[level].append(f"{image_id} {name}")
            splits[part].append((f"data/images/{image_id}.jpg", label))
        for level, content in lines.items():
            with open(os.path.join(data, f"images_{level}_{part}.txt"), "w") as f:
                f.write("\n".join(content) + "\n")
    return Layout(root, splits, [a[0] for a in AIRCRAFT])


def make_stanford_dogs(base: str) -> Layout:
    """All 120 breed folders (the reader knows the data set has 120), 2 train and 1 test image each."""
    root = os.path.join(base, "dogs")
    folders = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel"] + [f"n9{i:07d}-breed_{i}" for i in range(2, 120)]
    splits: dict[str, list] = {"train": [], "test": []}
    for split, per_class in (("train", 2), ("test", 1)):
        files, labels = [], []
        for label, folder in enumerate(folders):
            for k in range(per_class):
                rel = f"{folder}/{folder.split('-')[0]}_{split}{k}.jpg"
                write_jpeg(os.path.join(root, "Images", rel), 3 * label + k + (2 if split == "test" else 0), (8, 8))
                files.append(rel)
                labels.append(label + 1)
                splits[split].append((f"Images/{rel}", label))
        savemat(os.path.join(root, f"{split}_list.mat"),
                {"file_list": _cells(files), "annotation_list": _cells([f[:-4] for f in files]),
                 "labels": np.asarray(labels, dtype=float).reshape(-1, 1)})
    return Layout(root, splits, folders)


def make_flowers102(base: str) -> Layout:
    """102 classes are expected, so 204 images: image i has class (i - 1) % 102 + 1; train / val / test by thirds
    of the class cycle: images 1..102 train, 103..204 val, every image of class 1 and 2 also in test."""
    root = os.path.join(base, "flowers")
    labels = [(i - 1) % 102 + 1 for i in range(1, 205)]
    for i in range(1, 205):
        write_jpeg(os.path.join(root, "jpg", f"image_{i:05d}.jpg"), 500 + i, (16, 16))
    savemat(os.path.join(root, "imagelabels.mat"), {"labels": np.asarray(labels, dtype=float).reshape(1, -1)})
    trnid, valid, tstid = list(range(1, 103)), list(range(103, 205)), [1, 2, 103, 104]
    savemat(os.path.join(root, "setid.mat"), {k: np.asarray(v, dtype=float).reshape(1, -1) for k, v in
                                              (("trnid", trnid), ("valid", valid), ("tstid", tstid))})
    splits = {name: [(f"jpg/image_{i:05d}.jpg", labels[i - 1] - 1) for i in ids]
              for name, ids in (("train", trnid), ("val", valid), ("test", tstid))}
    return Layout(root, splits, [f"{k:03d}" for k in range(1, 103)])


def make_indoor67(base: str) -> Layout:
    """3 categories, 2 train / 1 test each; the lists use CRLF line ends and a file name with a space."""
    root = os.path.join(base, "indoor")
    classes = ["airport_inside", "artstudio", "kitchen"]
    splits: dict[str, list] = {"train": [], "test": []}
    for split, per_class in (("train", 2), ("test", 1)):
        lines = []
        for label, name in enumerate(classes):
            for k in range(per_class):
                rel = f"{name}/{split} {k}.jpg"
                write_jpeg(os.path.join(root, "Images", rel), 600 + 10 * label + k + (5 if split == "test" else 0))
                lines.append(rel)
                splits[split].append((f"Images/{rel}", label))
        list_file = "TrainImages.txt" if split == "train" else "TestImages.txt"
        with open(os.path.join(root, list_file), "w", newline="") as f:
            f.write("\r\n".join(lines) + "\r\n")
    return Layout(root, splits, classes)


def make_caltech256(base: str, per_class: tuple[int, ...] = (8, 9, 10)) -> Layout:
    """Category folders with ``per_class`` images, plus the real archive's strays: a sub-folder of images inside
    056.dog-like category (056.dog/greg/) and a file without extension (198.spider/RENAME2)."""
    root = os.path.join(base, "256_ObjectCategories")
    classes = [f"{i + 1:03d}.{name}" for i, name in enumerate(["ak47", "dog", "spider"][:len(per_class)])]
    everything: list[tuple[str, int]] = []
    for label, (name, count) in enumerate(zip(classes, per_class)):
        for k in range(count):
            rel = f"{name}/{name[:3]}_{k + 1:04d}.jpg"
            write_jpeg(os.path.join(root, rel), 700 + 20 * label + k)
            everything.append((rel, label))
    write_jpeg(os.path.join(root, classes[1], "greg", "stray.jpg"), 1)
    with open(os.path.join(root, classes[-1], "RENAME2"), "w") as f:
        f.write("stray")
    return Layout(root, {"all": everything}, classes)


def _pickle_batch(path: str, batch: dict) -> None:
    """Like the official files: bytes keys, pickle protocol 2."""
    with open(path, "wb") as f:
        pickle.dump({k.encode(): v for k, v in batch.items()}, f, protocol=2)


def _cifar_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def make_cifar10(base: str, per_batch: int = 4) -> Layout:
    root = os.path.join(base, "cifar-10-batches-py")
    os.makedirs(root)
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    splits: dict[str, list] = {"train": [], "test": []}
    for i, file in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        labels = [(i + k) % 10 for k in range(per_batch)]
        _pickle_batch(os.path.join(root, file), {"batch_label": file.encode(), "labels": labels,
                                                 "data": _cifar_images(per_batch, i),
                                                 "filenames": [f"{file}_{k}.png".encode() for k in range(per_batch)]})
        split = splits["test" if file == "test_batch" else "train"]
        split.extend([(len(split) + k, y) for k, y in enumerate(labels)])
    _pickle_batch(os.path.join(root, "batches.meta"), {"label_names": [c.encode() for c in classes],
                                                       "num_cases_per_batch": per_batch, "num_vis": 3072})
    return Layout(root, splits, classes)


def make_cifar100(base: str, train: int = 6, test: int = 4) -> Layout:
    root = os.path.join(base, "cifar-100-python")
    os.makedirs(root)
    fine = [f"fine_{k}" for k in range(100)]
    coarse = [f"coarse_{k}" for k in range(20)]
    splits = {}
    for seed, (file, n) in enumerate((("train", train), ("test", test))):
        fine_labels = [(7 * k + seed) % 100 for k in range(n)]
        _pickle_batch(os.path.join(root, file), {"batch_label": file.encode(), "fine_labels": fine_labels,
                                                 "coarse_labels": [y // 5 for y in fine_labels],
                                                 "data": _cifar_images(n, 10 + seed),
                                                 "filenames": [f"{k}.png".encode() for k in range(n)]})
        splits[file] = list(enumerate(fine_labels))
    _pickle_batch(os.path.join(root, "meta"), {"fine_label_names": [c.encode() for c in fine],
                                               "coarse_label_names": [c.encode() for c in coarse]})
    return Layout(root, splits, fine)


def write_idx(path: str, array: np.ndarray, compress: bool) -> None:
    """An IDX file as Yann LeCun's format defines it: 0x0000, dtype code 0x08 (uint8), rank, big-endian dims."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if compress else open
    with opener(path + (".gz" if compress else ""), "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def make_fashion_mnist(base: str, train: int = 20, test: int = 10, compress: bool = True) -> Layout:
    """The four IDX files of Fashion-MNIST (gzipped as Debian and the official repository ship them) with
    ``train``/``test`` random 28x28 images; labels cycle through the 10 classes."""
    root = os.path.join(base, "fashion")
    os.makedirs(root)
    rng = np.random.default_rng(0)
    splits = {}
    for split, stem, n in (("train", "train", train), ("test", "t10k", test)):
        labels = np.array([(3 * k + 1) % 10 for k in range(n)], dtype=np.uint8)
        write_idx(os.path.join(root, f"{stem}-images-idx3-ubyte"), rng.integers(0, 256, (n, 28, 28)), compress)
        write_idx(os.path.join(root, f"{stem}-labels-idx1-ubyte"), labels, compress)
        splits[split] = [(k, int(y)) for k, y in enumerate(labels)]
    from rifle_paddle.data.fashion_mnist import CLASSES
    return Layout(root, splits, list(CLASSES))
