"""A pip install is a whole product: configs by name from any folder, ``--version``, ``--list-configs``, and run
directories whose recorded paths resolve from anywhere (issue 16, points 1 and 2)."""
import glob
import os
import re
import shutil

import paddle
import pytest
import yaml

import rifle_paddle
from rifle_paddle.app.cli import eval_main, train_main
from rifle_paddle.config import CONFIGS_DIR, ConfigError, list_configs, load_config
from rifle_paddle.engine import train
from rifle_paddle.engine.resume import config_differences


def test_a_packaged_config_is_named_without_a_path_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the checkout: only the package's own copy can be found
    expected = os.path.join(CONFIGS_DIR, "cub200", "resnet50_rifle.yaml")
    for spec in ("cub200/resnet50_rifle", "cub200/resnet50_rifle.yaml", "configs/cub200/resnet50_rifle.yaml",
                 "rifle_paddle/configs/cub200/resnet50_rifle"):
        assert load_config(spec)["_source"] == expected, spec


def test_a_file_that_exists_wins_over_the_packaged_config_of_the_same_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.makedirs("cub200")
    with open(os.path.join("cub200", "resnet50_rifle.yaml"), "w") as f:
        f.write("train:\n  epochs: 3\n")
    cfg = load_config("cub200/resnet50_rifle.yaml")
    assert cfg["_source"] == str(tmp_path / "cub200" / "resnet50_rifle.yaml") and cfg["train"]["epochs"] == 3


def test_a_misspelled_name_is_refused_with_the_close_packaged_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        load_config("cub200/resnet50_rifel")
    assert "--list-configs" in str(e.value) and "cub200/resnet50_rifle" in str(e.value)


def test_list_configs_names_every_runnable_config_and_no_fragment():
    names = list_configs()
    on_disk = {os.path.relpath(p, CONFIGS_DIR).replace(os.sep, "/")[:-5]
               for p in glob.glob(os.path.join(CONFIGS_DIR, "*", "*.yaml"))}
    fragments = {n for n in on_disk if n.split("/")[0] in ("datasets", "methods", "tables")}
    assert fragments and "datasets/cub200" in fragments  # the fixture is what we think it is
    assert set(names) == on_disk - fragments and "base" not in names
    for name in names:  # each listed name is a complete config: it loads and names a data set and a model
        cfg = load_config(name)
        assert cfg["data"]["name"] and cfg["model"]["arch"], name


def test_cli_version_and_list_configs(capsys):
    with pytest.raises(SystemExit) as e:
        train_main(["--version"])
    assert e.value.code == 0
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(rf"rifle-paddle {re.escape(rifle_paddle.__version__)} \(PaddlePaddle "
                        rf"{re.escape(paddle.__version__)}, (CPU|CUDA) build\)", line), line
    assert eval_main(["--list-configs", "all"]) == 0
    assert capsys.readouterr().out.split() == list_configs()
    assert eval_main(["--list-configs"]) == 0  # the demo's cells are summed up in one line
    *names, summary = capsys.readouterr().out.strip().splitlines()
    assert "cub200/resnet50_rifle" in names and not any(n.startswith("fashion_mnist_192/") for n in names)
    demo = [n for n in list_configs() if n.startswith("fashion_mnist_192/")]
    assert len(names) + len(demo) == len(list_configs()) and f"and {len(demo)} configs" in summary


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_a_run_records_absolute_paths_and_resumes_from_another_folder(tmp_path, tiny_config, tiny_folder,
                                                                      tiny_pretrained, monkeypatch):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    monkeypatch.chdir(work)
    shutil.copy(tiny_pretrained, "source.pdparams")
    os.symlink(tiny_folder, "data")
    cfg = tiny_config("model.pretrained=source.pdparams", "data.root=data", "run.output_dir=out",
                      "train.epochs=1", "log.visualdl=false")
    result = train(cfg)
    monkeypatch.chdir(elsewhere)
    run_dir = str(work / "out" / "test")
    assert result["run_dir"] == run_dir  # metrics.json and the log name the run absolutely too
    with open(os.path.join(run_dir, "config.yaml")) as f:
        saved = yaml.safe_load(f)
    assert saved["model"]["pretrained"] == str(work / "source.pdparams")
    assert saved["data"]["root"] == str(work / "data") and saved["run"]["output_dir"] == str(work / "out")
    assert train_main(["--resume", run_dir]) == 0  # finished: evaluates, with the recorded paths, from elsewhere


def test_keywords_stay_and_relative_paths_from_older_runs_compare_equal(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    current = load_config(None, ["model.pretrained=w/source.pdparams", "train.resume=auto", "run.name=r"])
    older_run = {"model": {**current["model"], "pretrained": "w/source.pdparams"}}
    assert config_differences(older_run, current) == []
    moved = {"model": {**current["model"], "pretrained": "v/source.pdparams"}}
    assert config_differences(moved, current) == [
        f"model.pretrained: {str(tmp_path / 'v' / 'source.pdparams')!r} in the run, "
        f"{str(tmp_path / 'w' / 'source.pdparams')!r} now"]
    from rifle_paddle.config import absolute_paths
    kept = absolute_paths(load_config(None, ["model.pretrained=imagenet", "train.resume=auto", "run.name=r"]))
    assert kept["model"]["pretrained"] == "imagenet" and kept["train"]["resume"] == "auto"
