"""The public API (docs/api.md): the names it promises are what ``import rifle_paddle`` exports, and a training
loop of one's own builds a data set, a network, tricks, a regularizer and a RIFLE run from keyword arguments,
without a config file or a config dict (the doc's own example, run as it stands)."""
from __future__ import annotations

import math
import os
import re

import numpy as np
import paddle
import pytest

import rifle_paddle

API_DOC = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "api.md")
#: what the issue (#28, item 3) says docs/api.md promises a user's own loop, besides the methods themselves
PROMISED = {"TransferModel", "train", "load_config", "build_dataset", "build_network", "install_tricks",
            "build_regularizer", "RIFLE", "list_models", "register_model", "list_readers", "register_reader",
            "REGULARIZERS"}
SETTINGS = 'ROOT, ARCH, WEIGHTS, SIZE, EPOCHS, WORKERS = "data/my_images", "resnet50", "imagenet", 224, 40, 4'


def _doc() -> str:
    with open(API_DOC, encoding="utf-8") as f:
        return f.read()


def _documented_names() -> set[str]:
    """The backticked names in the first column of docs/api.md's table."""
    rows = [line.split("|")[1] for line in _doc().splitlines() if line.startswith("| `")]
    return {name for cell in rows for name in re.findall(r"`([^`]+)`", cell)}


def test_the_documented_names_are_what_the_package_exports():
    documented = _documented_names()
    exported = set(rifle_paddle.__all__) - {"__version__"}
    assert documented == exported, (f"only in docs/api.md: {sorted(documented - exported)}; "
                                    f"only in __all__: {sorted(exported - documented)}")
    assert all(hasattr(rifle_paddle, name) for name in rifle_paddle.__all__)
    assert PROMISED <= documented, f"docs/api.md does not offer {sorted(PROMISED - documented)}"


def test_bad_keywords_are_refused_in_one_line_naming_the_allowed_ones(tiny_folder):
    with pytest.raises(TypeError) as e:
        rifle_paddle.build_dataset("folder", "train", root=tiny_folder, imagesize=32)
    assert "\n" not in str(e.value) and "did you mean image_size?" in str(e.value) and "resize_size" in str(e.value)
    with pytest.raises(TypeError, match=r"^build_dataset\(\) does not take batch_size: a loader setting, for build_lo"):
        rifle_paddle.build_dataset("folder", "train", root=tiny_folder, batch_size=8)  # would do nothing here
    with pytest.raises(TypeError, match=r"'dropout_prob'.*allowed: dropout, dropout_rate"):
        rifle_paddle.install_tricks(rifle_paddle.create_model("resnet18", num_classes=3), dropout_prob=0.5)
    with pytest.raises(TypeError, match=r"wrap_train_step\(train_step, num_classes=..., disturb_label=True\)$"):
        rifle_paddle.install_tricks(rifle_paddle.create_model("resnet18", num_classes=3), disturb_label=True)
    with pytest.raises(ValueError, match=r"^build_dataset\(\): data.image_size: must be > 0, got 0$"):
        rifle_paddle.build_dataset("folder", "train", root=tiny_folder, image_size=0)
    with pytest.raises(ValueError, match="regularizer.name: must be one of none, l2sp, delta, kd, bss, got 'l2-sp'"):
        rifle_paddle.build_regularizer("l2-sp")
    with pytest.raises(ValueError, match=r"regularizer.layers applies to delta and kd only.*\(no effect\)$"):
        rifle_paddle.build_regularizer("l2sp", layers=["layer4"])  # a keyword that would be silently ignored


def test_rifle_refuses_values_a_config_file_would_refuse():
    """RIFLE built by hand gets the rifle section's checks (docs/config.md: num_reinits >= 0, epochs a list of
    non-negative integers, the initializers): a negative count or a string of epochs used to be taken silently."""
    from rifle_paddle.callbacks import RifleController
    for bad, match in [({"num_reinits": -1}, r"^RIFLE\(\): rifle.num_reinits: must be >= 0, got -1$"),
                       ({"epochs": "abc"}, r"^RIFLE\(\): rifle.epochs: "),
                       ({"epochs": [3, -2]}, r"^RIFLE\(\): rifle.epochs: "),
                       ({"min_tail_steps": -5}, r"^RIFLE\(\): rifle.min_tail_steps: must be >= 0"),
                       ({"init": "xavier"}, r"^RIFLE\(\): rifle.init: must be one of authors, ")]:
        with pytest.raises(ValueError, match=match):
            rifle_paddle.RIFLE(**bad)
    with pytest.raises(ValueError, match=r"^RifleController\(\): rifle.num_reinits: must be >= 0, got -2$"):
        RifleController(paddle.nn.Linear(4, 2), None, epochs=10, num_reinits=-2)
    assert rifle_paddle.RIFLE(num_reinits=2, epochs=[3, 6]).explicit_epochs == [3, 6]  # good values pass as given


def test_keywords_left_out_take_the_defaults_a_config_file_gets(tiny_folder):
    """Against docs/config.md's defaults: ImageNet mean/std, resize 256 before the center crop, no tricks."""
    test_set = rifle_paddle.build_dataset("folder", "test", root=tiny_folder, image_size=32)
    image, _ = test_set[0]
    assert image.shape[-2:] == (32, 32)
    net = rifle_paddle.create_model("resnet18", num_classes=3)
    assert rifle_paddle.install_tricks(net) == []  # every trick off unless named
    assert [line.split(" on ")[0] for line in rifle_paddle.install_tricks(net, dropout=True)] == ["dropout p=0.5"]
    assert rifle_paddle.wrap_train_step(None, num_classes=3) is None
    disturbed = rifle_paddle.wrap_train_step(None, num_classes=3, disturb_label=True)
    assert (disturbed.alpha, disturbed.num_classes) == (0.1, 3)
    assert rifle_paddle.build_regularizer("none") is None
    assert (rifle_paddle.build_regularizer("bss").alpha, rifle_paddle.build_regularizer("bss").k) == (0.001, 1)


def test_the_own_loop_example_of_the_docs_trains_a_rifle_run(tiny_folder, tiny_pretrained, capsys):
    """docs/api.md's block, settings pointed at 3 classes x 12 generated 32 px images and a ResNet-18 checkpoint, 8
    epochs. The authors' rule (fine_tuning/run.py: after 0-based epoch e re-draw when (e + 1) % (E // 4) == 0 unless
    e > E - 5) gives, for E = 8, re-initializations before epochs 2 and 4; each re-drawn weight is
    N(0, sqrt(2 / 512)), so its norm over 512 x 3 entries is close to sqrt(2 * 3)."""
    block = re.search(r"## From your own loop.*?```python\n(.*?)```", _doc(), re.S).group(1)
    assert block.count(SETTINGS) == 1, "the settings line of docs/api.md's example changed: update SETTINGS"
    code = block.replace(SETTINGS, f"ROOT, ARCH, WEIGHTS, SIZE, EPOCHS, WORKERS = {tiny_folder!r}, 'resnet18', "
                                   f"{tiny_pretrained!r}, 32, 8, 0")
    scope: dict = {}
    exec(compile(code, "docs/api.md", "exec"), scope)

    assert len(scope["train_set"]) == 36 and len(scope["test_set"]) == 12 and scope["head_name"] == "fc"
    events = scope["rifle"].history
    assert [event["epoch"] for event in events] == [2, 4]
    for event in events:
        assert event["fc.weight"]["norm_after"] == pytest.approx(math.sqrt(2 * 3), rel=0.1)
        assert event["fc.weight"]["norm_after"] != pytest.approx(event["fc.weight"]["norm_before"], rel=1e-3)
    assert str(events) in capsys.readouterr().out
    head = scope["network"].fc.weight.numpy()
    assert np.isfinite(head).all() and head.shape == (512, 3)


def test_numpy_integers_and_path_objects_are_taken_for_what_they_are(tiny_folder, tmp_path):
    """An ``np.int64`` is an integer and a ``pathlib.Path`` a path (Python's numbers.Integral and os.PathLike): a
    size computed with numpy or a root built with pathlib used to be refused ('expected an integer, got int64')."""
    import pathlib
    test_set = rifle_paddle.build_dataset("folder", "test", root=pathlib.Path(tiny_folder), image_size=np.int64(32))
    assert test_set[0][0].shape[-2:] == (32, 32)
    half = rifle_paddle.build_dataset("folder", "train", root=tiny_folder, image_size=32, sample_rate=np.float32(0.5))
    assert len(half) == 18  # half of each class's 12 (numpy's float32 is a number too)
    assert rifle_paddle.RIFLE(num_reinits=np.int64(2), epochs=[np.int64(3)]).explicit_epochs == [3]
    assert rifle_paddle.RIFLE(epochs=(10, 20)).explicit_epochs == [10, 20]  # a tuple is a list of Python's
    net = rifle_paddle.create_model("resnet18", num_classes=3)
    assert len(rifle_paddle.install_tricks(net, dropout=np.bool_(True))) == 1  # numpy's boolean is true/false
    weights = str(tmp_path / "w.pdparams")
    paddle.save(rifle_paddle.create_model("resnet18", num_classes=3).state_dict(), weights)
    _, head = rifle_paddle.build_network("resnet18", np.int64(3), pretrained=pathlib.Path(weights))
    assert head == "fc"


def test_a_tilde_in_a_path_key_is_the_home_folder(tiny_folder, monkeypatch):
    """``data.root: ~/data/CUB_200_2011`` (YAML) or ``-o data.root=~/...`` (the shell does not expand ``~`` after
    ``data.root=``) names the home folder, as everywhere in a shell; it used to become ``<cwd>/~/...``."""
    from rifle_paddle.config.loader import absolute_paths
    home, name = os.path.split(tiny_folder)
    monkeypatch.setenv("HOME", home)
    assert len(rifle_paddle.build_dataset("folder", "test", root=f"~/{name}", image_size=32)) == 12
    cfg = rifle_paddle.load_config(None, ["data.name=folder", f"data.root=~/{name}"], paths_for="train")
    assert absolute_paths(cfg)["data"]["root"] == tiny_folder


def test_one_override_may_be_given_as_a_string():
    """``load_config(name, "data.root=/x")``: a lone string is one override, not twelve one-letter ones."""
    assert rifle_paddle.load_config("cub200/resnet50_rifle", "data.root=/x")["data"]["root"] == "/x"


def test_a_bad_class_count_or_regularizer_name_is_refused_in_one_line():
    """num_classes gets model.num_classes' check (a positive integer); a name of None the section's (required):
    a boolean, a string or a float class count reached Paddle's layer constructor, and None raised 'NoneType
    object is not iterable'."""
    for bad, match in [(True, "model.num_classes: expected an integer, got a boolean"),
                       ("3", "model.num_classes: expected an integer, got str"),
                       (2.0, "model.num_classes: expected an integer, got float")]:
        with pytest.raises(ValueError, match=rf"^build_network\(\): {match}"):
            rifle_paddle.build_network("resnet18", bad, pretrained=None)
    with pytest.raises(ValueError, match=r"^build_regularizer\(\): regularizer.name: required, got null$"):
        rifle_paddle.build_regularizer(None)


def test_train_refuses_what_is_not_a_valid_config_before_it_creates_anything(tiny_folder, tmp_path):
    """train() takes load_config's dict: a config name raised "string indices must be integers", and a value
    edited after load_config (train.epochs="2") reached the learning-rate schedule ("unsupported operand type(s)
    for -: 'str' and 'int'") instead of the one-line check a config file gets."""
    with pytest.raises(TypeError, match=r"load_config"):
        rifle_paddle.train("datasets/folder")
    cfg = rifle_paddle.load_config(None, ["data.name=folder", f"data.root={tiny_folder}", "model.pretrained=none",
                                          "model.arch=resnet18", f"run.output_dir={tmp_path}", "run.name=edited"])
    cfg["train"]["epochs"] = "2"
    with pytest.raises(rifle_paddle.ConfigError, match=r"train.epochs: expected an integer, got str"):
        rifle_paddle.train(cfg)
    assert not os.path.exists(tmp_path / "edited")


def test_the_loader_checks_its_arguments_as_the_data_keys_are_checked(tiny_folder):
    """build_loader's batch_size, num_workers and drop_last are data.* keys: a numpy batch size (len(x) // 4 on
    an array) or a batch of 0 met Paddle's bare 'AssertionError: batch_size should be a positive integer'."""
    test_set = rifle_paddle.build_dataset("folder", "test", root=tiny_folder, image_size=32)
    assert len(rifle_paddle.build_loader(test_set, batch_size=np.int64(4), train=False, num_workers=0)) == 3
    with pytest.raises(ValueError, match=r"^build_loader\(\): data.batch_size: must be > 0, got 0$"):
        rifle_paddle.build_loader(test_set, batch_size=0, train=False, num_workers=0)
    with pytest.raises(ValueError, match=r"^build_loader\(\): data.num_workers: "):
        rifle_paddle.build_loader(test_set, batch_size=4, train=False, num_workers=-1)


def test_build_network_refuses_the_evaluation_checkpoint_it_would_ignore():
    """model.checkpoint is what rifle-eval scores (docs/config.md); build_network(checkpoint=...) took it and
    returned a network without those weights, silently (the other constructors refuse a keyword without effect)."""
    with pytest.raises(TypeError, match=r"^build_network\(\) does not load checkpoint"):
        rifle_paddle.build_network("resnet18", 3, pretrained=None, checkpoint="output/run/best.pdparams")
