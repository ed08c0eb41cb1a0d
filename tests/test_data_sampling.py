"""Few-label sampling and drawn splits: stratified per class, seeded, identical across calls (so methods compare on
the same images), nested across rates, and Caltech-256's N-per-class protocol."""
from __future__ import annotations

import collections
import os

import pytest

import data_layouts as layouts
from data_layouts import data_cfg, read, relative
from rifle_paddle.data import DataError, build_dataset, stratified_subsample


def per_class(samples) -> dict[int, int]:
    return dict(sorted(collections.Counter(y for _, y in samples).items()))


SAMPLES = [(f"c{y}/{i}.jpg", y) for y in range(4) for i in range(10 + 5 * y)]  # 10, 15, 20, 25 per class


def test_rate_is_per_class_rounded_half_up_and_at_least_one():
    assert per_class(stratified_subsample(SAMPLES, 0.15, seed=0)) == {0: 2, 1: 2, 2: 3, 3: 4}  # 1.5, 2.25, 3, 3.75
    assert per_class(stratified_subsample(SAMPLES, 0.01, seed=0)) == {0: 1, 1: 1, 2: 1, 3: 1}
    assert stratified_subsample(SAMPLES, 1.0, seed=0) == SAMPLES


def test_same_seed_same_images_and_other_seed_other_images():
    first = stratified_subsample(SAMPLES, 0.3, seed=7)
    assert first == stratified_subsample(list(SAMPLES), 0.3, seed=7)
    assert first != stratified_subsample(SAMPLES, 0.3, seed=8)
    assert first == sorted(first, key=SAMPLES.index)  # original order kept


def test_rates_are_nested():
    kept = [set(stratified_subsample(SAMPLES, rate, seed=3)) for rate in (0.15, 0.3, 0.5, 1.0)]
    assert kept[0] <= kept[1] <= kept[2] <= kept[3]


def test_a_class_draw_does_not_depend_on_the_other_classes():
    without_class_0 = [s for s in SAMPLES if s[1] != 0]
    assert [s for s in stratified_subsample(SAMPLES, 0.5, seed=1) if s[1] != 0] == \
        stratified_subsample(without_class_0, 0.5, seed=1)


def test_per_class_cap():
    assert per_class(stratified_subsample(SAMPLES, 1.0, seed=0, per_class=12)) == {0: 10, 1: 12, 2: 12, 3: 12}
    assert per_class(stratified_subsample(SAMPLES, 0.5, seed=0, per_class=6)) == {0: 5, 1: 6, 2: 6, 3: 6}
    with pytest.raises(ValueError):
        stratified_subsample(SAMPLES, 0.0, seed=0)


def test_build_dataset_samples_the_training_split_only(tmp_path):
    layout = layouts.make_cub200(str(tmp_path), per_class=(10, 4))
    cfg = data_cfg("cub200", layout.root, sample_rate=0.3)
    train = build_dataset(cfg, "train", seed=5)
    assert train.class_counts().tolist() == [3, 3, 3]
    assert train.samples == build_dataset(cfg, "train", seed=5).samples  # paired across methods
    assert train.samples != build_dataset(cfg, "train", seed=6).samples
    assert len(build_dataset(cfg, "test", seed=5)) == 12
    pinned = data_cfg("cub200", layout.root, sample_rate=0.3, sample_seed=5)
    assert build_dataset(pinned, "train", seed=99).samples == train.samples  # sample_seed wins over run.seed
    capped = build_dataset(data_cfg("cub200", layout.root, train_per_class=2), "train", seed=0)
    assert capped.class_counts().tolist() == [2, 2, 2]


def test_caltech256_draws_n_per_class_and_the_rest_for_test(tmp_path):
    layout = layouts.make_caltech256(str(tmp_path), per_class=(8, 9, 10))
    train = read("caltech256", layout.root, "train", seed=1, train_per_class=3)
    test = read("caltech256", layout.root, "test", seed=1, train_per_class=3)
    assert per_class(train.samples) == {0: 3, 1: 3, 2: 3} and per_class(test.samples) == {0: 5, 1: 6, 2: 7}
    train_files, test_files = set(relative(train, layout.root)), set(relative(test, layout.root))
    assert not train_files & test_files
    assert train_files | test_files == set(layout.splits["all"])  # the stray greg/ and RENAME2 are not images
    assert train.classes == layout.classes == ["001.ak47", "002.dog", "003.spider"]
    assert read("caltech256", layout.root, "train", seed=1, train_per_class=3).samples == train.samples
    assert read("caltech256", layout.root, "train", seed=2, train_per_class=3).samples != train.samples
    larger = read("caltech256", layout.root, "train", seed=1, train_per_class=5)
    assert set(train.samples) <= set(larger.samples)  # Caltech-256-30 inside Caltech-256-60
    fixed = read("caltech256", layout.root, "test", seed=1, train_per_class=3, test_per_class=2)
    assert per_class(fixed.samples) == {0: 2, 1: 2, 2: 2} and set(fixed.samples) <= set(test.samples)


def test_caltech256_class_too_small_for_the_protocol(tmp_path):
    layout = layouts.make_caltech256(str(tmp_path), per_class=(8, 3))
    with pytest.raises(DataError) as info:
        read("caltech256", layout.root, "train", train_per_class=3)
    assert f"{os.path.join(layout.root, '002.dog')} has 3 images, fewer than the 4 that" in str(info.value)
