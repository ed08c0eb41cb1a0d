"""The weight-change analysis on tiny saved state dicts with known answers."""
import os

import numpy as np
import paddle
import pytest
import yaml

from rifle_paddle.experiments import analyze


def _tensor(array):
    return paddle.to_tensor(np.asarray(array, dtype="float32"))


def _pretrained():
    return {
        "conv1.weight": np.ones([4, 3, 3, 3]),
        "bn1.weight": np.ones([4]),
        "bn1._mean": np.zeros([4]),
        "layer1.0.conv1.weight": np.full([4, 4, 3, 3], 2.0),
        "layer2.0.conv1.weight": np.full([4, 4, 1, 1], -1.0),
        "fc.weight": np.ones([8, 10]),  # the source task's head (10 classes)
        "fc.bias": np.zeros([10]),
    }


def _finetuned(scale_conv1: float, shift_layer1: float, layer2_factor: float):
    """conv1 scaled (relative change |scale - 1|), layer1 shifted by a constant (relative change |shift| / 2),
    layer2 scaled; the head and batch norm change wildly but must not count."""
    state = _pretrained()
    state["conv1.weight"] = state["conv1.weight"] * scale_conv1
    state["layer1.0.conv1.weight"] = state["layer1.0.conv1.weight"] + shift_layer1
    state["layer2.0.conv1.weight"] = state["layer2.0.conv1.weight"] * layer2_factor
    state["bn1.weight"] = state["bn1.weight"] * 100
    state["bn1._mean"] = state["bn1._mean"] + 5
    state["fc.weight"] = np.full([8, 3], 9.0)  # the target task's head (3 classes)
    state["fc.bias"] = np.ones([3])
    return state


@pytest.fixture
def runs(tmp_path):
    pretrained = str(tmp_path / "source.pdparams")
    paddle.save({k: _tensor(v) for k, v in _pretrained().items()}, pretrained)
    dirs = []
    for name, args in (("cub200-finetune-s0", (1.1, 0.2, 1.0)), ("cub200-rifle-s0", (1.3, 1.0, 1.5))):
        run_dir = tmp_path / "output" / name
        run_dir.mkdir(parents=True)
        paddle.save({k: _tensor(v) for k, v in _finetuned(*args).items()}, str(run_dir / "last.pdparams"))
        with open(run_dir / "config.yaml", "w") as f:
            yaml.safe_dump({"model": {"arch": "resnet18", "pretrained": pretrained, "head": None}}, f)
        dirs.append(str(run_dir))
    return pretrained, dirs


def test_relative_change_per_layer_in_depth_order_without_head_and_batch_norm(runs):
    pretrained, (plain, rifle) = runs
    changes, used = analyze.weight_change([plain, rifle])  # pretrained weights found from the runs' config
    assert used == pretrained
    assert list(changes) == ["cub200-finetune-s0", "cub200-rifle-s0"]
    assert list(changes["cub200-finetune-s0"]) == ["conv1.weight", "layer1.0.conv1.weight", "layer2.0.conv1.weight"]
    assert list(changes["cub200-finetune-s0"].values()) == pytest.approx([0.1, 0.1, 0.0], abs=1e-6)
    assert list(changes["cub200-rifle-s0"].values()) == pytest.approx([0.3, 0.5, 0.5], abs=1e-6)


def test_stage_means_and_files(runs, tmp_path):
    pretrained, dirs = runs
    out = str(tmp_path / "analysis")
    assert analyze.main(["weight-change", *dirs, "--pretrained", pretrained, "--out", out]) == 0
    changes, _ = analyze.weight_change(dirs, pretrained)
    headers, rows = analyze.stage_means(changes)
    assert headers == ["stage", "cub200-finetune-s0", "cub200-rifle-s0"]
    assert [r[0] for r in rows] == ["conv1", "layer1", "layer2"]
    assert rows[1][1:] == pytest.approx([0.1, 0.5], abs=1e-6)
    csv_lines = open(os.path.join(out, "weight_change.csv")).read().splitlines()
    assert csv_lines[0] == "#,layer,cub200-finetune-s0,cub200-rifle-s0"
    assert csv_lines[2].startswith("1,layer1.0.conv1,0.1") and len(csv_lines) == 4
    md = open(os.path.join(out, "weight_change.md")).read()
    assert "| layer1 | 0.1000 | 0.5000 |" in md and "fc" not in md.split("## Per layer")[1]
    with open(os.path.join(out, "weight_change.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_clear_errors(runs, tmp_path, capsys):
    pretrained, (plain, _) = runs
    assert analyze.main(["weight-change", plain, "--weights", "best"]) == 2
    assert "weights not found" in capsys.readouterr().err
    scratch = tmp_path / "output" / "scratch"
    scratch.mkdir()
    with open(scratch / "config.yaml", "w") as f:
        yaml.safe_dump({"model": {"arch": "resnet18", "pretrained": "none"}}, f)
    with pytest.raises(analyze.AnalysisError, match="from scratch"):
        analyze.weight_change([str(scratch)])
    with pytest.raises(analyze.AnalysisError, match="one common pretrained model"):
        analyze.weight_change([plain, str(scratch)])
    other = tmp_path / "other.pdparams"
    paddle.save({"something.weight": _tensor(np.ones([2, 2]))}, str(other))
    with pytest.raises(analyze.AnalysisError, match="no layer"):
        analyze.weight_change([plain], str(other))


def test_weight_change_plot_keeps_rifle_visible_and_shows_the_ratio_to_the_baseline():
    from collections import OrderedDict
    layers = ["conv1.weight", "layer1.0.conv1.weight", "layer4.1.conv2.weight"]
    changes = OrderedDict((label, OrderedDict(zip(layers, values))) for label, values in [
        ("finetune", [0.001, 0.01, 0.1]), ("rifle", [0.002, 0.01, 0.3]), ("l2sp", [0.0005, 0.005, 0.05]),
        ("dropout", [0.001, 0.011, 0.09])])
    fig = analyze.plot_weight_change_figure(changes)
    ax, ratio_ax = fig.axes
    lines = ax.get_lines()
    assert [line.get_label() for line in lines][-1] == "rifle"  # drawn last: on top of the others
    rifle = lines[-1]
    assert rifle.get_zorder() > max(line.get_zorder() for line in lines[:-1])
    assert rifle.get_linewidth() > max(line.get_linewidth() for line in lines[:-1])
    assert ax.get_yscale() == "log" and ratio_ax.get_yscale() == "log"
    ratios = {tuple(np.round(line.get_ydata(), 6)) for line in ratio_ax.get_lines() if len(line.get_ydata()) == 3}
    assert (2.0, 1.0, 3.0) in ratios and (0.5, 0.5, 0.5) in ratios  # rifle / finetune and l2sp / finetune
    import matplotlib.pyplot as plt
    plt.close(fig)
