"""Every native-layout reader on a miniature copy of its layout: counts, labels, splits, class names, and the errors
a broken download gets (missing root, list file or image, label out of range, train/test class mismatch)."""
from __future__ import annotations

import os
import pickle
import shutil

import numpy as np
import pytest
from scipy.io import savemat

import data_layouts as layouts
from data_layouts import data_cfg, read, relative
from rifle_paddle.config import load_config
from rifle_paddle.data import DataError, build_dataset, build_datasets, read_split


def assert_matches(layout: layouts.Layout, name: str, split: str, **options):
    found = read(name, layout.root, split, **options)
    assert sorted(relative(found, layout.root)) == sorted(layout.splits[split])
    assert found.classes == layout.classes
    return found


@pytest.mark.parametrize("make, name", [(layouts.make_cub200, "cub200"), (layouts.make_stanford_cars, "stanford_cars"),
                                        (layouts.make_stanford_cars_all_in_one, "stanford_cars"),
                                        (layouts.make_stanford_dogs, "stanford_dogs"),
                                        (layouts.make_indoor67, "indoor67")])
def test_reader_finds_the_official_split(tmp_path, make, name):
    layout = make(str(tmp_path))
    for split in ("train", "test"):
        assert_matches(layout, name, split)
    train, test = build_datasets(data_cfg(name, layout.root))
    assert len(train) == len(layout.splits["train"]) and len(test) == len(layout.splits["test"])
    image, label = train[0]
    assert image.dtype == np.uint8 and image.shape == (3, 224, 224) and 0 <= label < len(layout.classes)


def test_stanford_cars_test_labels_may_sit_in_devkit(tmp_path):
    layout = layouts.make_stanford_cars(str(tmp_path), test_labels_in_devkit=True)
    assert_matches(layout, "stanford_cars", "test")


def test_stanford_cars_without_test_labels_says_which_file_to_get(tmp_path):
    layout = layouts.make_stanford_cars(str(tmp_path))
    os.remove(os.path.join(layout.root, "cars_test_annos_withlabels.mat"))
    with pytest.raises(DataError, match="cars_test_annos_withlabels.mat not found.*has no labels"):
        read("stanford_cars", layout.root, "test")
    assert len(read("stanford_cars", layout.root, "train").samples) == 6


def test_fgvc_aircraft_levels_trainval_and_banner(tmp_path):
    layout = layouts.make_fgvc_aircraft(str(tmp_path))
    train = read("fgvc_aircraft", layout.root, "train")
    assert sorted(relative(train, layout.root)) == sorted(layout.splits["train"] + layout.splits["val"])
    assert train.classes == layout.classes and train.crop_bottom == 20
    only_train = read("fgvc_aircraft", layout.root, "train", trainval="false", remove_banner="false")
    assert sorted(relative(only_train, layout.root)) == sorted(layout.splits["train"])
    assert only_train.crop_bottom == 0
    family = read("fgvc_aircraft", layout.root, "test", label_level="family")
    assert family.classes == ["Boeing 707", "Boeing 727", "A300", "DHC-1"]
    manufacturer = read("fgvc_aircraft", layout.root, "test", label_level="manufacturer")
    assert manufacturer.classes == ["Boeing", "Airbus", "de Havilland"]
    assert [y for _, y in manufacturer.samples] == [0, 0, 1, 2]  # "de Havilland" holds a space


def test_fgvc_aircraft_banner_is_cut_at_every_decode_scale(tmp_path):
    layout = layouts.make_fgvc_aircraft(str(tmp_path), image_size=(120, 160))
    test = build_dataset(data_cfg("fgvc_aircraft", layout.root, image_size=32, resize_size=32), "test")
    test.transform = None
    image, _ = test[0]
    assert image.shape == (100, 160, 3)


def test_flowers102_official_split(tmp_path):
    layout = layouts.make_flowers102(str(tmp_path))
    train = read("flowers102", layout.root, "train")
    assert sorted(relative(train, layout.root)) == sorted(layout.splits["train"] + layout.splits["val"])
    assert len(read("flowers102", layout.root, "train", trainval="false").samples) == 102
    assert_matches(layout, "flowers102", "test")


@pytest.mark.parametrize("name, make", [("cifar10", layouts.make_cifar10), ("cifar100", layouts.make_cifar100)])
def test_cifar_batches_become_arrays(tmp_path, name, make):
    layout = make(str(tmp_path))
    for split in ("train", "test"):
        found = read(name, layout.root, split)
        assert found.samples == layout.splits[split] and found.classes == layout.classes
        assert found.images.shape == (len(found.samples), 32, 32, 3) and found.images.dtype == np.uint8
    with open(os.path.join(layout.root, "test_batch" if name == "cifar10" else "test"), "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    first = raw[b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0)  # R, G, B planes -> HWC
    assert np.array_equal(read(name, layout.root, "test").images[0], first)


def test_cifar100_coarse_labels(tmp_path):
    layout = layouts.make_cifar100(str(tmp_path))
    coarse = read("cifar100", layout.root, "train", label_level="coarse")
    assert len(coarse.classes) == 20
    assert [y for _, y in coarse.samples] == [y // 5 for _, y in layout.splits["train"]]


def test_cifar_refuses_pickles_that_run_code(tmp_path):
    layout = layouts.make_cifar10(str(tmp_path))

    class Exploit:
        def __reduce__(self):
            return os.system, ("echo owned",)
    with open(os.path.join(layout.root, "test_batch"), "wb") as f:
        pickle.dump({b"data": Exploit()}, f, protocol=2)
    with pytest.raises(DataError, match="refusing to load posix.system|refusing to load nt.system"):
        read("cifar10", layout.root, "test")


def test_label_level_must_apply_to_the_data_set(tmp_path):
    layout = layouts.make_cub200(str(tmp_path))
    with pytest.raises(DataError, match="label_level=family does not apply to cub200"):
        read("cub200", layout.root, "train", label_level="family")
    with pytest.raises(DataError, match="does not apply to cifar100; use one of fine, coarse"):
        read("cifar100", layout.root, "train", label_level="variant")


# --- errors a broken download gets ---------------------------------------------------------------------------------

def test_missing_root(tmp_path):
    with pytest.raises(DataError, match="cub200: data.root is not set; point it at the unpacked CUB_200_2011/"):
        read_split(load_config(None, ["data.name=cub200"])["data"], "train")
    with pytest.raises(DataError, match="is not a directory"):
        read("stanford_dogs", tmp_path / "nowhere", "train")


def test_root_one_level_too_high_names_the_right_one(tmp_path):
    layout = layouts.make_cub200(str(tmp_path))
    with pytest.raises(DataError, match=f"images.txt not found.*found it in {layout.root}: set data.root="):
        read("cub200", tmp_path, "train")


@pytest.mark.parametrize("name, make, remove", [
    ("cub200", layouts.make_cub200, "train_test_split.txt"),
    ("stanford_cars", layouts.make_stanford_cars, "devkit/cars_meta.mat"),
    ("fgvc_aircraft", layouts.make_fgvc_aircraft, "data/images_variant_test.txt"),
    ("stanford_dogs", layouts.make_stanford_dogs, "test_list.mat"),
    ("flowers102", layouts.make_flowers102, "setid.mat"),
    ("indoor67", layouts.make_indoor67, "TestImages.txt"),
    ("cifar10", layouts.make_cifar10, "batches.meta"),
])
def test_missing_official_file_is_named(tmp_path, name, make, remove):
    layout = make(str(tmp_path))
    os.remove(os.path.join(layout.root, remove))
    with pytest.raises(DataError, match=f"{name}: .*{os.path.basename(remove)} not found"):
        read(name, layout.root, "test")


def test_missing_image_is_named_at_start_up(tmp_path):
    layout = layouts.make_indoor67(str(tmp_path))
    missing = os.path.join(layout.root, layout.splits["train"][1][0])
    os.remove(missing)
    with pytest.raises(DataError, match=f"1 of 6 images listed in .*TrainImages.txt are missing: {missing}"):
        read("indoor67", layout.root, "train")


def test_label_out_of_range_names_file_and_value(tmp_path):
    layout = layouts.make_cub200(str(tmp_path))
    path = os.path.join(layout.root, "image_class_labels.txt")
    lines = open(path).read().splitlines()
    lines[2] = "3 7"
    open(path, "w").write("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"image_class_labels.txt \(image id 3\): class number '7' is out of range "
                                        r"1..3"):
        read("cub200", layout.root, "train")


def test_label_out_of_range_in_a_mat_file(tmp_path):
    layout = layouts.make_stanford_dogs(str(tmp_path))
    savemat(os.path.join(layout.root, "test_list.mat"),
            {"file_list": np.array([["n02085620-Chihuahua/n02085620_test0.jpg"]], dtype=object),
             "labels": np.array([[121.0]])})
    with pytest.raises(DataError, match=r"test_list.mat .*class number 121.0 is out of range 1..120"):
        read("stanford_dogs", layout.root, "test")


def test_unknown_class_name_in_a_list(tmp_path):
    layout = layouts.make_fgvc_aircraft(str(tmp_path))
    path = os.path.join(layout.root, "data", "images_variant_test.txt")
    with open(path, "a") as f:
        f.write("1000001 Concorde\n")
    with pytest.raises(DataError, match=r"images_variant_test.txt:5: class 'Concorde' is not in .*variants.txt"):
        read("fgvc_aircraft", layout.root, "test")


def test_train_test_class_mismatch(tmp_path):
    layouts.write_jpeg(str(tmp_path / "train" / "cat" / "1.jpg"), 1)
    layouts.write_jpeg(str(tmp_path / "train" / "dog" / "1.jpg"), 2)
    layouts.write_jpeg(str(tmp_path / "test" / "cat" / "1.jpg"), 3)
    layouts.write_jpeg(str(tmp_path / "test" / "cow" / "1.jpg"), 4)
    with pytest.raises(DataError, match=r"disagree on the classes .*only in train: \['dog'\], only in test: "
                                        r"\['cow'\]"):
        build_datasets(data_cfg("folder", tmp_path))


def test_caltech256_without_train_per_class_explains_the_protocol(tmp_path):
    layout = layouts.make_caltech256(str(tmp_path))
    with pytest.raises(DataError, match="caltech256 has no official split: set data.train_per_class"):
        read("caltech256", layout.root, "train")
    above = os.path.dirname(layout.root)  # data.root one level up: it said its one "category" had 0 images
    with pytest.raises(DataError, match=f"found it in {layout.root}: set data.root={layout.root}"):
        read("caltech256", above, "train", train_per_class=2)
    shutil.rmtree(layout.root)
    os.makedirs(layout.root)
    with pytest.raises(DataError, match="has no category folders"):
        read("caltech256", layout.root, "train", train_per_class=2)
