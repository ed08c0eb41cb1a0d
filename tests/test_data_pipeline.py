"""The input pipeline: decoding at a reduced scale, transforms, batch normalization, arrays (CIFAR) through the same
path, and unreadable images skipped and counted across DataLoader worker processes, or an error in strict mode."""
from __future__ import annotations

import logging
import os

import cv2
import numpy as np
import paddle
import pytest

import data_layouts as layouts
from data_layouts import data_cfg
from rifle_paddle.data import DataError, EncodedImage, ImageClassificationDataset, build_dataset, build_loader
from rifle_paddle.data.image import jpeg_is_truncated, jpeg_size
from rifle_paddle.data.transforms import Normalize, RandomResizedCrop, ResizeShorter, resize


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> str:
    """A smooth 600x800 JPEG: large enough for reduced-scale decoding of a 64-pixel crop."""
    return layouts.write_jpeg(str(tmp_path_factory.mktemp("photo") / "photo.jpg"), 0, size=(600, 800))


def test_header_size_matches_the_pixels_at_every_scale(photo, tmp_path):
    image = EncodedImage.read(photo)
    assert image.size == (600, 800) == jpeg_size(image.data)
    assert [image.decode(r).shape for r in (2, 4, 8)] == [(300, 400, 3), (150, 200, 3), (75, 100, 3)]
    odd = layouts.write_jpeg(str(tmp_path / "odd.jpg"), 1, size=(101, 203))
    assert EncodedImage.read(odd).decode(4).shape == (26, 51, 3)  # ceil, as libjpeg scales
    png = str(tmp_path / "x.png")
    cv2.imwrite(png, np.zeros((30, 40, 3), np.uint8))
    assert jpeg_size(open(png, "rb").read()) is None
    assert EncodedImage.read(png).size == (30, 40) and EncodedImage.read(png).max_reduction(8.0) == 1


def test_decoding_gives_rgb_and_crops_the_banner(tmp_path):
    bgr = np.zeros((40, 48, 3), np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV's BGR order
    bgr[-8:] = 0
    path = str(tmp_path / "blue.png")
    cv2.imwrite(path, bgr)
    rgb = EncodedImage.read(path, crop_bottom=8).decode()
    assert rgb.shape == (32, 48, 3) and rgb[..., 2].min() == 255 and rgb[..., 0].max() == 0


def test_reduced_decode_crops_the_same_content(photo, monkeypatch):
    used = []
    decode = EncodedImage.decode
    monkeypatch.setattr(EncodedImage, "decode", lambda self, r=1: used.append(r) or decode(self, r))
    crops = {}
    for seed, max_reduction in ((3, 8), (3, 1), (4, 1)):
        np.random.seed(seed)
        crop = RandomResizedCrop(64, scale=(0.5, 1.0), max_reduction=max_reduction)
        crops[seed, max_reduction] = crop(EncodedImage.read(photo)).astype(np.float32)
    assert used[0] >= 4 and used[1] == 1  # a >=300-pixel crop shrunk to 64: decoded at 1/4 or 1/8
    assert crops[3, 8].shape == (64, 64, 3)
    same_box = np.abs(crops[3, 8] - crops[3, 1]).mean()
    other_box = np.abs(crops[4, 1] - crops[3, 1]).mean()
    assert same_box < 5 and other_box > 4 * same_box  # same content, up to filtering and a sub-pixel shift


def test_eval_resize_decodes_at_the_largest_scale_that_keeps_the_size(photo):
    assert ResizeShorter(256)(EncodedImage.read(photo)).shape == (256, 341, 3)
    assert EncodedImage.read(photo).max_reduction(600 / 256) == 2


def test_resize_antialiases_large_shrinks_like_area_averaging(photo):
    pixels = EncodedImage.read(photo).decode()
    fast = resize(pixels, 100, 75).astype(np.float32)
    area = cv2.resize(pixels, (100, 75), interpolation=cv2.INTER_AREA).astype(np.float32)
    assert fast.shape == (75, 100, 3) and np.abs(fast - area).mean() < 2.0
    assert resize(pixels[:10, :10], 20, 30).shape == (30, 20, 3)


def test_normalize_numpy_and_tensor_agree():
    batch = np.random.default_rng(0).integers(0, 256, size=(2, 3, 4, 5), dtype=np.uint8)
    norm = Normalize([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])
    expected = (batch / 255.0 - np.array([0.5, 0.4, 0.3]).reshape(3, 1, 1)) / np.array([0.2, 0.25, 0.3]).reshape(
        3, 1, 1)
    out = norm(batch)
    assert out.dtype == np.float32 and np.allclose(out, expected, atol=1e-5)
    tensor = norm(paddle.to_tensor(batch))
    assert tensor.dtype == paddle.float32 and np.allclose(tensor.numpy(), expected, atol=1e-5)


def test_arrays_go_through_the_same_dataset_and_loader(tmp_path):
    layout = layouts.make_cifar10(str(tmp_path))
    cfg = data_cfg("cifar10", layout.root, image_size=32, resize_size=36)
    test = build_dataset(cfg, "test")
    image, label = test[1]
    assert image.shape == (3, 32, 32) and image.dtype == np.uint8 and label == layout.splits["test"][1][1]
    images, labels = next(iter(build_loader(test, 4, False, 0)))
    assert images.dtype == paddle.float32 and list(images.shape) == [4, 3, 32, 32]
    assert labels.numpy().tolist() == [y for _, y in layout.splits["test"]]
    assert -3 < float(images.min()) and float(images.max()) < 3


# --- unreadable images -----------------------------------------------------------------------------------------

@pytest.fixture
def broken_folder(tmp_path) -> tuple[str, list[str]]:
    """2 classes x 6 images at 16 px; two files of class 0 are broken: garbage bytes and an empty file."""
    for label in range(2):
        for i in range(6):
            layouts.write_jpeg(str(tmp_path / "train" / f"c{label}" / f"{i}.jpg"), 10 * label + i, size=(16, 16))
    bad = [str(tmp_path / "train" / "c0" / "1.jpg"), str(tmp_path / "train" / "c0" / "4.jpg")]
    open(bad[0], "wb").write(b"not a jpeg")
    open(bad[1], "wb").close()
    return str(tmp_path), bad


def folder_dataset(root: str, strict: bool = False) -> ImageClassificationDataset:
    cfg = data_cfg("folder", root, image_size=16, resize_size=16, strict=str(strict).lower())
    return build_dataset(cfg, "train", seed=0)


def test_unreadable_image_is_replaced_by_its_class_and_counted(broken_folder, caplog):
    root, bad = broken_folder
    dataset = folder_dataset(root)
    index = [p for p, _ in dataset.samples].index(bad[0])
    with caplog.at_level(logging.WARNING):
        image, label = dataset[index]
    assert image.shape == (3, 16, 16) and label == 0
    assert f"cannot decode image: {bad[0]}" in caplog.text and "replaced by another image of its class" in caplog.text
    dataset[index]
    assert dataset.unreadable.replaced == 2 and bad[0] in dataset.unreadable_files()


@pytest.mark.parametrize("workers", [0, 2])
def test_unreadable_images_are_counted_across_worker_processes(broken_folder, caplog, workers):
    root, bad = broken_folder
    dataset = folder_dataset(root)
    loader = build_loader(dataset, 4, True, workers)
    with caplog.at_level(logging.WARNING, logger="rifle_paddle"):
        for epoch in range(2):
            seen = sum(int(images.shape[0]) for images, _ in loader)
            assert seen == 12  # no sample lost
            assert dataset.unreadable.replaced == 2 * (epoch + 1)  # each bad file drawn once per pass
    assert sorted(dataset.unreadable_files()) == sorted(bad)
    summaries = [r.getMessage() for r in caplog.records if "replaced this pass" in r.getMessage()]
    assert len(summaries) == 2 and "2 image(s) replaced this pass; 2 unreadable file(s)" in summaries[-1]


def test_strict_mode_stops_at_the_first_unreadable_image(broken_folder):
    root, bad = broken_folder
    dataset = folder_dataset(root, strict=True)
    with pytest.raises(DataError, match=f"cannot decode image: {bad[0]}.*data.strict is true"):
        dataset[[p for p, _ in dataset.samples].index(bad[0])]
    with pytest.raises(DataError, match="data.strict is true"):  # raised in a worker, re-raised here
        for _ in build_loader(dataset, 12, False, 2):
            pass


def test_no_readable_image_left(tmp_path):
    for i in range(2):
        os.makedirs(tmp_path / "train" / "c0", exist_ok=True)
        open(tmp_path / "train" / "c0" / f"{i}.jpg", "wb").write(b"x")
    with pytest.raises(DataError, match="no readable image left"):
        folder_dataset(str(tmp_path))[0]


def test_truncated_jpeg_is_detected(photo):
    data = open(photo, "rb").read()
    assert not jpeg_is_truncated(data) and not jpeg_is_truncated(data + b"\x00\x00")
    assert jpeg_is_truncated(data[: len(data) // 2]) and jpeg_is_truncated(data[:-2])


def test_a_training_run_survives_a_corrupt_image_and_reports_it(tmp_path, tiny_config):
    from rifle_paddle.data.synthetic import make_image_folder
    from rifle_paddle.engine import train
    root = make_image_folder(str(tmp_path / "data"), num_classes=3, train_per_class=6, test_per_class=2, size=32)
    bad = os.path.join(root, "train", "class_001", "0002.jpg")
    open(bad, "wb").write(b"\xff\xd8 cut off")
    result = train(tiny_config(f"data.root={root}", "train.epochs=1", "data.num_workers=2", "log.visualdl=false"))
    assert result["unreadable_images"] == {"train": [bad], "test": []}
    assert result["num_train"] == 18 and "acc_top1" in result["final"]
