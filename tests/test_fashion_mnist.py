"""The Fashion-MNIST reader (IDX files), class selection for source/target tasks, and the crop-scale key."""
from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

import data_layouts as layouts
from rifle_paddle.config import ConfigError, load_config
from rifle_paddle.data import DataError, build_datasets
from rifle_paddle.data.transforms import RandomResizedCrop


@pytest.mark.parametrize("compress", [True, False])
def test_idx_files_become_grey_images_repeated_into_rgb(tmp_path, compress):
    layout = layouts.make_fashion_mnist(str(tmp_path), compress=compress)
    for split in ("train", "test"):
        found = layouts.read("fashion_mnist", layout.root, split)
        assert found.samples == layout.splits[split] and found.classes == layout.classes
        assert found.images.shape == (len(found.samples), 28, 28, 3) and found.images.dtype == np.uint8
    opener, suffix = (gzip.open, ".gz") if compress else (open, "")
    with opener(os.path.join(layout.root, "t10k-images-idx3-ubyte" + suffix), "rb") as f:
        first = np.frombuffer(f.read()[16:16 + 784], np.uint8).reshape(28, 28)
    images = layouts.read("fashion_mnist", layout.root, "test").images
    assert all(np.array_equal(images[0, :, :, c], first) for c in range(3))


def test_truncated_idx_file_is_named(tmp_path):
    layout = layouts.make_fashion_mnist(str(tmp_path), compress=False)
    path = os.path.join(layout.root, "train-images-idx3-ubyte")
    with open(path, "rb+") as f:
        f.truncate(16 + 784 * 3)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*truncated"):
        layouts.read("fashion_mnist", layout.root, "train")


def test_missing_files_say_how_to_install_them(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        layouts.read("fashion_mnist", str(tmp_path), "train")


def test_class_selection_keeps_and_relabels_in_the_given_order(tmp_path):
    layout = layouts.make_fashion_mnist(str(tmp_path))
    found = layouts.read("fashion_mnist", layout.root, "train", classes="[7, bag, 1]")
    assert found.classes == ["sneaker", "bag", "trouser"]
    new_label = {7: 0, 8: 1, 1: 2}
    assert found.samples == [(k, new_label[y]) for k, y in layout.splits["train"] if y in new_label]
    assert {y for _, y in found.samples} == {0, 1, 2}


def test_source_and_target_tasks_from_one_data_set_are_disjoint(tmp_path):
    layout = layouts.make_fashion_mnist(str(tmp_path), train=40, test=20)
    source = layouts.read("fashion_mnist", layout.root, "test", classes="[0, 1, 2, 3, 4]")
    target = layouts.read("fashion_mnist", layout.root, "test", classes="[5, 6, 7, 8, 9]")
    assert not {k for k, _ in source.samples} & {k for k, _ in target.samples}
    assert len(source.samples) + len(target.samples) == 20


def test_class_selection_errors(tmp_path):
    layout = layouts.make_fashion_mnist(str(tmp_path))
    with pytest.raises(DataError, match="'jacket'.*not a class"):
        layouts.read("fashion_mnist", layout.root, "train", classes="[0, jacket]")
    with pytest.raises(DataError, match="12.*not a class"):
        layouts.read("fashion_mnist", layout.root, "train", classes="[12]")
    with pytest.raises(DataError, match="twice"):
        layouts.read("fashion_mnist", layout.root, "train", classes="[8, bag]")
    with pytest.raises(ConfigError, match="data.classes"):
        load_config(None, ["data.classes=[1, 1]"])
    with pytest.raises(ConfigError, match="data.classes"):
        load_config(None, ["data.classes=[]"])


def test_per_class_sampling_applies_after_selection(tmp_path):
    layout = layouts.make_fashion_mnist(str(tmp_path), train=60, test=10)
    cfg = layouts.data_cfg("fashion_mnist", layout.root, classes="[5, 6]", train_per_class=2, image_size=32,
                           resize_size=32, crop_scale="[0.5, 1.0]")
    train, test = build_datasets(cfg, seed=3)
    assert train.num_classes == 2 and train.class_counts().tolist() == [2, 2]
    image, label = train[0]
    assert image.shape == (3, 32, 32) and label in (0, 1)


def test_crop_scale_reaches_the_training_crop_and_is_validated(tmp_path):
    layout = layouts.make_fashion_mnist(str(tmp_path))
    cfg = layouts.data_cfg("fashion_mnist", layout.root, crop_scale="[0.5, 0.9]", image_size=32, resize_size=32)
    train, _ = build_datasets(cfg)
    crops = [t for t in train.transform.transforms if isinstance(t, RandomResizedCrop)]
    assert len(crops) == 1 and crops[0].scale == (0.5, 0.9)
    for bad in ("[0.0, 1.0]", "[0.9, 0.5]", "[0.5]", "[0.5, 1.5]"):
        with pytest.raises(ConfigError, match="data.crop_scale"):
            load_config(None, [f"data.crop_scale={bad}"])


def test_test_per_class_subsamples_any_test_split_per_seed(tmp_path):
    layout = layouts.make_fashion_mnist(str(tmp_path), train=20, test=60)
    cfg = layouts.data_cfg("fashion_mnist", layout.root, test_per_class=2, image_size=32, resize_size=32)
    _, test = build_datasets(cfg, seed=0)
    assert test.class_counts().tolist() == [2] * 10
    _, again = build_datasets(cfg, seed=0)
    _, other = build_datasets(cfg, seed=1)
    assert test.samples == again.samples and test.samples != other.samples
