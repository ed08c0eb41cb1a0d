"""rifle-export and rifle-predict: the exported model computes what the trained network computes, on inputs
prepared exactly as the run's test split was, and predictions carry the data set's class names."""
import csv
import glob
import io
import json
import os

import numpy as np
import paddle
import pytest

from rifle_paddle.data import build_dataset
from rifle_paddle.deploy import export, predict
from rifle_paddle.deploy.preprocess import Preprocessing
from rifle_paddle.engine import train
from rifle_paddle.models import create_model


@pytest.fixture(scope="module")
def exported(module_tmp_path, tiny_folder, tiny_pretrained):
    """A 1-epoch run on the tiny folder, exported: (run metrics, config, export folder)."""
    from rifle_paddle.config import load_config
    out = module_tmp_path
    cfg = load_config(None, [
        "model.arch=resnet18", f"model.pretrained={tiny_pretrained}", "data.name=folder", f"data.root={tiny_folder}",
        "data.image_size=32", "data.resize_size=36", "data.batch_size=12", "data.num_workers=0", "train.epochs=1",
        "run.device=cpu", f"run.output_dir={out}", "run.name=run", "log.visualdl=false"])
    result = train(cfg)
    return result, cfg, export.export_run(result["run_dir"])


def _dygraph(run_dir: str) -> paddle.nn.Layer:
    network = create_model("resnet18", num_classes=3)
    network.set_state_dict(paddle.load(os.path.join(run_dir, "best.pdparams")))
    network.eval()
    return network


def _test_images(tiny_folder: str) -> list[str]:
    return sorted(glob.glob(os.path.join(tiny_folder, "test", "*", "*.jpg")))


def test_the_run_keeps_its_class_names_and_the_export_carries_them(exported, tiny_folder):
    result, _, folder = exported
    names = sorted(os.listdir(os.path.join(tiny_folder, "train")))  # the folder reader's classes, in order
    for where in (result["run_dir"], folder):
        with open(os.path.join(where, "classes.json")) as f:
            assert json.load(f)["classes"] == names
    assert sorted(os.listdir(folder)) == ["classes.json", "export.json", "inference.json", "inference.pdiparams",
                                          "preprocess.json"]


def test_preprocess_json_rebuilds_the_runs_test_pipeline(exported, tiny_folder):
    _, cfg, folder = exported
    with open(os.path.join(folder, "preprocess.json")) as f:
        pre = Preprocessing.from_json(f.read())
    assert (pre.crop, pre.resize_short, pre.resampling) == (32, 36, cfg["data"]["resampling"])
    test_set = build_dataset(cfg["data"], "test")
    batch, loaded, errors = pre.load([str(path) for path, _ in test_set.samples])
    assert not errors and len(loaded) == len(test_set) == 12
    reference = test_set.batch_transform(np.stack([test_set[i][0] for i in range(len(test_set))]))
    np.testing.assert_array_equal(batch, reference)  # the same images, bit for bit, as evaluation saw them


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_the_exported_model_gives_the_dygraph_logits(exported, tiny_folder):
    result, _, folder = exported
    with open(os.path.join(folder, "preprocess.json")) as f:
        batch, _, _ = Preprocessing.from_json(f.read()).load(_test_images(tiny_folder))
    want = _dygraph(result["run_dir"])(paddle.to_tensor(batch)).numpy()
    loaded = paddle.jit.load(os.path.join(folder, "inference"))
    loaded.eval()
    np.testing.assert_allclose(loaded(paddle.to_tensor(batch)).numpy(), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(predict.Predictor(folder).logits(batch), want, rtol=1e-4, atol=1e-4)  # Paddle Inference


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_predict_writes_top_k_with_names_in_csv_and_json(exported, tiny_folder, tmp_path, capsys):
    result, _, folder = exported
    images = _test_images(tiny_folder)[:4]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(os.path.relpath(p, tmp_path) for p in images[2:]) + "\n")
    # 1: broken.jpg was skipped (the rest is still written)
    assert predict.main([result["run_dir"], images[0], images[1], str(broken), str(listing), "--top-k", "2"]) == 1
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert "broken.jpg" in captured.err and len(rows) == 4 * 2  # 4 readable images x top-2
    with open(os.path.join(folder, "classes.json")) as f:
        names = json.load(f)["classes"]
    with open(os.path.join(folder, "preprocess.json")) as f:
        batch, _, _ = Preprocessing.from_json(f.read()).load(images)
    logits = _dygraph(result["run_dir"])(paddle.to_tensor(batch)).numpy()
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    for i, path in enumerate(images):
        mine = [r for r in rows if os.path.samefile(r["path"], path)]
        assert [int(r["rank"]) for r in mine] == [1, 2]
        order = np.argsort(-probabilities[i])[:2]
        assert [int(r["index"]) for r in mine] == list(order)
        assert [r["class"] for r in mine] == [names[j] for j in order]
        assert [float(r["probability"]) for r in mine] == pytest.approx(probabilities[i][order], abs=1e-5)
    out = tmp_path / "predictions.json"
    assert predict.main([folder, images[0], "--out", str(out), "--top-k", "9"]) == 0
    (entry,) = json.loads(out.read_text())["results"]
    assert len(entry["top_k"]) == 3  # capped at the number of classes
    assert sum(e["probability"] for e in entry["top_k"]) == pytest.approx(1.0)


def test_clear_errors(exported, tmp_path, capsys):
    result, _, _ = exported
    assert export.main([str(tmp_path / "nowhere")]) == 1
    assert "run directory not found" in capsys.readouterr().err
    assert export.main([result["run_dir"], "--weights", "nothing.pdparams"]) == 1
    assert "weights not found: nothing.pdparams" in capsys.readouterr().err
    os.makedirs(tmp_path / "run")
    (tmp_path / "run" / "config.yaml").write_text("run: {}\n")
    assert predict.main([str(tmp_path / "run"), "x.jpg"]) == 1
    assert "run `rifle-export" in capsys.readouterr().err
    assert predict.main([result["run_dir"], str(tmp_path / "missing.jpg")]) == 1  # nothing readable: status 1
    assert "missing.jpg" in capsys.readouterr().err


def test_export_refuses_weights_of_another_class_count_or_architecture(exported, tmp_path, capsys):
    """Paddle's ``set_state_dict`` only warns: such weights used to export a partly random network, exit 0."""
    result, _, _ = exported
    five_classes, resnet34 = str(tmp_path / "five.pdparams"), str(tmp_path / "r34.pdparams")
    paddle.save(create_model("resnet18", num_classes=5).state_dict(), five_classes)
    paddle.save(create_model("resnet34", num_classes=3).state_dict(), resnet34)
    out = str(tmp_path / "model")
    assert export.main([result["run_dir"], "--weights", five_classes, "--out", out]) == 1
    err = capsys.readouterr().err
    # refused before loading: the weights' 5 outputs against classes.json's 3 names (the strict loader would
    # refuse them next: fc.weight [512, 5] does not fit resnet18 with 3 classes)
    assert "five.pdparams has 5 outputs but classes.json names 3 classes" in err
    assert export.main([result["run_dir"], "--weights", resnet34, "--out", out]) == 1
    err = capsys.readouterr().err
    assert "unexpected" in err and "layer1.2." in err  # ResNet-34's third block of layer1: ResNet-18 has two
    assert not os.path.exists(os.path.join(out, "inference.pdiparams"))


def test_predict_exits_non_zero_when_an_input_is_missing_or_unreadable(exported, tiny_folder, tmp_path, capsys):
    """The readable images are still predicted and written; a script must still see that some were not."""
    _, _, folder = exported
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    out = tmp_path / "predictions.csv"
    good = _test_images(tiny_folder)[0]
    assert predict.main([folder, good, str(tmp_path / "missing.jpg"), str(broken), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "missing.jpg" in err and "broken.jpg" in err and "2 skipped" in err
    assert [r["path"] for r in csv.DictReader(io.StringIO(out.read_text()))] == [good] * 3
    assert predict.main([folder, good, "--out", str(out)]) == 0
