"""Backbones, classifier lookup and pretrained loading (all but the head, strictly, with clear offline errors)."""
import numpy as np
import paddle
import pytest
from paddle import nn

from rifle_paddle.models import (PretrainedWeightsError, create_model, find_classifier, list_models,
                                 load_pretrained, resolve_pretrained)
from rifle_paddle.models import pretrained as pretrained_module


def test_registry_has_the_papers_backbones_with_the_requested_head():
    assert {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"} <= set(list_models())
    model = create_model("resnet18", num_classes=7)
    assert list(model.fc.weight.shape) == [512, 7]
    out = model(paddle.randn([2, 3, 32, 32]))
    assert list(out.shape) == [2, 7]
    np.testing.assert_allclose(model.forward_head(model.forward_features(paddle.ones([1, 3, 32, 32]))).numpy(),
                               model(paddle.ones([1, 3, 32, 32])).numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="resnet50"):
        create_model("resnet05", num_classes=2)


def test_find_classifier_prefers_explicit_then_get_classifier_then_last_linear():
    model = create_model("resnet18", num_classes=3)
    assert find_classifier(model) == ("fc", model.fc)
    plain = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    assert find_classifier(plain)[1] is plain[2]
    assert find_classifier(plain, "0")[1] is plain[0]
    with pytest.raises(ValueError, match="no sub-layer named 'head'"):
        find_classifier(plain, "head")


def test_pretrained_loads_everything_but_the_head(tiny_pretrained):
    source = paddle.load(tiny_pretrained)
    paddle.seed(999)
    model = create_model("resnet18", num_classes=4)
    head_before = model.fc.weight.numpy().copy()
    loaded = load_pretrained(model, tiny_pretrained, "fc")
    state = model.state_dict()
    assert "fc.weight" not in loaded and len(loaded) == len(state) - 2
    for key in loaded:
        np.testing.assert_array_equal(state[key].numpy(), source[key].numpy())
    np.testing.assert_array_equal(model.fc.weight.numpy(), head_before)  # 10-way source head never loaded


def test_a_mismatch_outside_the_head_names_the_parameter(tmp_path, tiny_pretrained):
    state = paddle.load(tiny_pretrained)
    state["layer1.0.conv1.weight"] = paddle.zeros([3, 3, 3, 3])
    del state["layer4.1.bn2.weight"]
    path = str(tmp_path / "broken.pdparams")
    paddle.save(state, path)
    with pytest.raises(PretrainedWeightsError) as err:
        load_pretrained(create_model("resnet18", num_classes=4), path, "fc")
    assert "layer1.0.conv1.weight" in str(err.value) and "layer4.1.bn2.weight" in str(err.value)
    with pytest.raises(PretrainedWeightsError, match="does not fit"):  # resnet34 weights into resnet18
        bigger = str(tmp_path / "r34.pdparams")
        paddle.save(create_model("resnet34", num_classes=2).state_dict(), bigger)
        load_pretrained(create_model("resnet18", num_classes=2), bigger, "fc")


def test_offline_without_cache_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("RIFLE_PADDLE_WEIGHTS_DIR", str(tmp_path))

    def no_network(url, directory, md5):
        raise ConnectionError("Name or service not known")
    monkeypatch.setattr(pretrained_module, "_download", no_network)
    with pytest.raises(PretrainedWeightsError) as err:
        resolve_pretrained("resnet50", "imagenet")
    text = str(err.value)
    assert "resnet50.pdparams" in text and str(tmp_path) in text           # where to put it
    assert "https://paddle-hapi.bj.bcebos.com/models/resnet50.pdparams" in text  # what to fetch
    assert "model.pretrained=" in text                                       # or how to point at it


def test_a_cached_file_with_the_right_md5_is_used_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("RIFLE_PADDLE_WEIGHTS_DIR", str(tmp_path))
    payload = tmp_path / "resnet18.pdparams"
    payload.write_bytes(b"weights")
    import hashlib
    url, _ = pretrained_module.pretrained_source("resnet18", "imagenet")
    monkeypatch.setattr(pretrained_module, "pretrained_source",
                        lambda arch, tag: (url, hashlib.md5(b"weights").hexdigest()))
    monkeypatch.setattr(pretrained_module, "_download", lambda *a: pytest.fail("must not download"))
    assert resolve_pretrained("resnet18", "imagenet") == str(payload)


# Every way a config may say "no pretrained weights", as written in YAML or with -o: null, the word none in two
# cases, false as YAML's boolean and as a quoted word, an empty string.
NO_WEIGHTS_SPELLINGS = ["null", "none", "None", "false", "'false'", "''"]


@pytest.mark.parametrize("spelling", NO_WEIGHTS_SPELLINGS)
def test_pretraining_accepts_every_no_weights_spelling_training_accepts(spelling, tiny_folder, tmp_path, monkeypatch):
    from rifle_paddle import engine
    from rifle_paddle.config import absolute_paths, load_config
    from rifle_paddle.experiments.pretrain import pretrain
    overrides = ["data.name=folder", f"data.root={tiny_folder}", "model.arch=resnet18", f"model.pretrained={spelling}",
                 f"run.output_dir={tmp_path}"]
    cfg = load_config(None, overrides, paths_for="train")  # training accepts it ...
    assert resolve_pretrained("resnet18", cfg["model"]["pretrained"]) is None  # ... as no weights
    assert absolute_paths(cfg)["model"]["pretrained"] is None  # a run records null, never a path like ./None
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "last.pdparams").write_bytes(b"weights")
    monkeypatch.setattr(engine, "train", lambda c: {"run_dir": str(run_dir)})  # the training itself is not the point
    assert pretrain(cfg, str(tmp_path / "source.pdparams")) == str(tmp_path / "source.pdparams")  # and so does this


def test_a_run_saved_with_another_no_weights_spelling_resumes_as_the_same_config():
    """A run's config.yaml from before the loader stored "no weights" as null holds 'none': resuming it with the
    config loaded now (null) is the same run, not a changed key."""
    from rifle_paddle.config import load_config
    from rifle_paddle.engine.resume import config_differences
    current = load_config(None, ["model.pretrained=none"])
    assert current["model"]["pretrained"] is None
    for older in ("none", "None", "false", ""):
        assert config_differences({"model": {"pretrained": older}}, current) == []
    assert config_differences({"model": {"pretrained": "imagenet"}}, current)  # a real difference still is one
    assert config_differences({"model": {}}, current)  # an absent key had its default, imagenet


def test_pretrained_spec_forms(tiny_pretrained):
    assert resolve_pretrained("resnet18", None) is None
    assert resolve_pretrained("resnet18", "none") is None
    assert resolve_pretrained("resnet18", tiny_pretrained) == tiny_pretrained
    with pytest.raises(PretrainedWeightsError, match="neither a known weight tag"):
        resolve_pretrained("resnet18", "/no/such/file.pdparams")
