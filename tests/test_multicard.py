"""Multi-card behaviour on two CPU ranks (gloo): what every rank must decide together or hold identically.

One launch runs every scenario of ``multicard_probe.py`` (a launch costs seconds); each test reads its scenario's
per-rank results. ``tests/test_distributed.py`` runs whole training runs the same way.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from multicard import failure, launch

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multicard_probe.py")
SCENARIOS = ["nan_skip", "scaler_overflow", "dtnh_reduce", "o2_ddp", "o2_unconverted", "bn_average", "sync_bn_on_cpu"]


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """``{scenario: [rank 0's result, rank 1's]}``."""
    tmp = tmp_path_factory.mktemp("multicard")
    out = tmp / "out"
    out.mkdir()
    code, logs, stdout = launch(tmp, PROBE, str(out), *SCENARIOS)
    assert code == 0, failure(code, logs, stdout)
    results = {name: [json.loads((out / f"{name}.{rank}.json").read_text()) for rank in (0, 1)]
               for name in SCENARIOS}
    for name, ranks in results.items():
        for rank, result in enumerate(ranks):
            assert "error" not in result, f"{name} on rank {rank}: {result['error']}"
    return results


@pytest.mark.slow  # a second process (docs/development.md: Tests)
def test_a_nan_on_one_rank_makes_every_rank_skip(probe):
    """Rank 1's loss is finite but its all-reduced gradient holds rank 0's NaN: stepping would put NaN in its
    weights while rank 0 keeps its own. Decided together, both skip and stay identical."""
    rank0, rank1 = probe["nan_skip"]
    assert rank0["skipped"] == rank1["skipped"] == 1
    assert rank0["weight"] == rank1["weight"] and all(math.isfinite(w) for row in rank1["weight"] for w in row)


@pytest.mark.slow  # a second process (docs/development.md: Tests)
def test_an_overflow_on_one_rank_skips_the_step_and_halves_the_loss_scale_on_every_rank(probe):
    """Loss scales and weights compared rank against rank, by value: the overflow of rank 0's scaled gradient
    reaches rank 1 through the gradient average, both skip and halve; the clean step after it moves both alike
    (by lr 0.1 times the ranks' mean input, (1 + 2) / 2)."""
    rank0, rank1 = probe["scaler_overflow"]
    assert rank0["first"]["scale"] == rank1["first"]["scale"] == 2.0 ** 14
    assert rank0["first"]["weight"] == rank1["first"]["weight"]
    assert rank0["scale"] == rank1["scale"] == 2.0 ** 14 and rank0["weight"] == rank1["weight"]
    np.testing.assert_allclose(np.array(rank0["weight"]), np.array(rank0["first"]["weight"]) - 0.1 * 1.5, rtol=1e-6)


@pytest.mark.slow  # a second process (docs/development.md: Tests)
def test_dtnh_regularizer_gradient_is_averaged_without_overflow(probe):
    """(3e38 + 2e38) / 2 = 2.5e38 is a float32; summing first overflows to inf (fp16 on a GPU: at 65504)."""
    for result in probe["dtnh_reduce"]:
        assert result["mean"] == pytest.approx([2.5e38] * 3, rel=1e-6)


@pytest.mark.slow  # a second process (docs/development.md: Tests)
def test_o2_on_two_cards_converts_before_data_parallel(probe):
    """The engine casts the network before DataParallel wraps it: both ranks train and stay identical (cast after,
    as hapi does, the reducer's fp32 buckets met float64 gradients and backward failed)."""
    rank0, rank1 = probe["o2_ddp"]
    assert rank0["dtype"] == "paddle.float64"
    assert rank0["after"] == rank1["after"] and rank0["after"] != rank0["before"]
    assert all(math.isfinite(v) for v in np.ravel(rank0["after"]["body.weight"]))


@pytest.mark.slow  # a second process (docs/development.md: Tests)
def test_o2_on_two_cards_without_conversion_is_refused_with_a_clear_message(probe):
    for result in probe["o2_unconverted"]:
        assert result["refused"] and "convert_for_o2" in result["refused"]


@pytest.mark.slow  # a second process (docs/development.md: Tests)
def test_every_rank_evaluates_with_the_mean_of_the_ranks_batch_norm_statistics(probe):
    """Each rank's running statistics came from its own card's batches: the ranks evaluated different networks,
    none of them the one rank 0 saves. Before an evaluation each becomes the mean over the ranks."""
    rank0, rank1 = probe["bn_average"]
    assert rank0["before"]["mean"] != rank1["before"]["mean"]
    for key in ("mean", "variance"):
        expected = (np.array(rank0["before"][key]) + np.array(rank1["before"][key])) / 2
        np.testing.assert_allclose(rank0["after"][key], expected, rtol=1e-6)
        assert rank0["after"][key] == rank1["after"][key]


@pytest.mark.slow  # a second process (docs/development.md: Tests)
def test_sync_bn_is_refused_on_cpu_ranks(probe):
    for result in probe["sync_bn_on_cpu"]:
        assert result["refused"] and "train.sync_bn" in result["refused"]


def _first_crop(cfg, monkeypatch, rank: int):
    import paddle

    from rifle_paddle.data.builder import build_dataset
    from rifle_paddle.engine.trainer import seed_everything
    monkeypatch.setattr(paddle.distributed, "get_rank", lambda *a: rank)
    seed_everything(cfg["run"]["seed"])
    image, _ = build_dataset(cfg["data"], "train", seed=cfg["run"]["seed"])[0]
    return np.asarray(image), paddle.rand([3]).numpy()


def test_each_rank_draws_its_own_crops_from_the_same_run_seed(tiny_config, monkeypatch):
    """The random-resized crop and flip of one image: identical for one rank seeded twice (reproducible), different
    on rank 1 (with the run's seed on every rank, the cards' augmentations were drawn in lockstep). Paddle's own
    generator keeps the run's seed on every rank."""
    cfg = tiny_config("data.crop_scale=[0.08, 1.0]")
    rank0, paddle0 = _first_crop(cfg, monkeypatch, 0)
    again, _ = _first_crop(cfg, monkeypatch, 0)
    rank1, paddle1 = _first_crop(cfg, monkeypatch, 1)
    np.testing.assert_array_equal(rank0, again)
    assert not np.array_equal(rank0, rank1)
    np.testing.assert_array_equal(paddle0, paddle1)


# ------------------------------------------------------------------------------ regularizers on the global batch
GLOBAL = [f"global_{kind}" for kind in ("kd_sum", "kd_mean", "kd_sum_dtnh", "delta_fast", "delta_authors", "bss",
                                        "bss_dtnh", "l2sp", "l2sp_dtnh")]
DRAWS = "global_draws"


@pytest.fixture(scope="module")
def global_batch(tmp_path_factory):
    """``{scenario: [rank 0's result, rank 1's]}`` of the global-batch scenarios (one launch)."""
    tmp = tmp_path_factory.mktemp("global_batch")
    out = tmp / "out"
    out.mkdir()
    code, logs, stdout = launch(tmp, PROBE, str(out), *GLOBAL, DRAWS)
    assert code == 0, failure(code, logs, stdout)
    return {name: [json.loads((out / f"{name}.{rank}.json").read_text()) for rank in (0, 1)]
            for name in GLOBAL + [DRAWS]}


@pytest.mark.slow  # a second process (docs/development.md: Tests)
@pytest.mark.parametrize("scenario", GLOBAL)
def test_two_ranks_of_four_images_step_as_one_card_of_eight(global_batch, scenario):
    """Each regularizer at the same alpha means on 2 ranks x 4 images what it means on one process with the 8:
    after one SGD step both ranks hold the one-process weights. Summed over the images (KD, DELTA), each rank summed
    its 4 and DataParallel averaged: alpha acted half as strong; BSS penalized each rank's own 4-image spectrum;
    DELTA scored its channels on rank 0's 4 images only (and the authors' discriminator trained on them)."""
    from multicard_probe import regularized_step
    expected = regularized_step(scenario[len("global_"):], None)
    for rank, result in enumerate(global_batch[scenario]):
        assert "error" not in result, f"rank {rank}: {result['error']}"
        for key, value in expected["weights"].items():
            np.testing.assert_allclose(result["weights"][key], value, rtol=1e-5, atol=1e-6,
                                       err_msg=f"rank {rank}: {key}")
        for layer, weights in expected["attention"].items():
            np.testing.assert_allclose(result["attention"][layer], weights, rtol=1e-5, err_msg=f"rank {rank}")


def test_sync_bn_converts_every_batch_norm_and_says_how_many(monkeypatch, caplog):
    """What the GPU test reads in the log is counted after the conversion (the line it read before was logged
    before any conversion). Converting needs no kernel, so it runs on the CPU with two ranks pretended."""
    import logging

    import paddle

    import rifle_paddle.engine.multicard as multicard
    from rifle_paddle.models import create_model
    monkeypatch.setattr(multicard, "world_size", lambda: 2)
    # caplog listens on the root logger; a module fixture's train() (test_deploy's) may have stopped propagation
    monkeypatch.setattr(logging.getLogger("rifle_paddle"), "propagate", True)
    with caplog.at_level(logging.INFO, logger="rifle_paddle"):
        network = multicard.configure_batch_norm(create_model("resnet18", num_classes=3), True, "gpu", 16, 0.01)
    norms = [layer for layer in network.sublayers() if isinstance(layer, paddle.nn.layer.norm._BatchNormBase)]
    assert len(norms) == 20 and all(isinstance(layer, paddle.nn.SyncBatchNorm) for layer in norms)
    assert "batch norm: 20 layers converted to SyncBatchNorm, 0 left unsynchronized" in caplog.text


@pytest.mark.slow  # a second process (docs/development.md: Tests)
def test_an_unreadable_test_image_on_one_rank_is_left_out_as_on_one_card(tmp_path):
    """Rank 0's shard holds the unreadable image: its batch lost that row before hapi gathered the ranks' outputs,
    the gather of unequal shapes failed (gloo: "Connection reset by peer"; NCCL would hang). Left out after the
    gather, the accuracy is the one of the 8 readable images, as on one card."""
    out = tmp_path / "out"
    out.mkdir()
    code, logs, stdout = launch(tmp_path, PROBE, str(out), "eval_unreadable", timeout=120)
    assert code == 0, failure(code, logs, stdout)
    for rank in (0, 1):
        result = json.loads((out / f"eval_unreadable.{rank}.json").read_text())
        assert "error" not in result, f"rank {rank}: {result['error']}"
        assert result["acc_top1"] == pytest.approx(result["expected"]) and 0 < result["expected"] < 1


@pytest.mark.slow  # a second process (docs/development.md: Tests)
def test_two_ranks_draw_per_image_noise_as_one_card_for_the_global_batch(global_batch):
    """DisturbLabel and the classifier-input dropout drew from Paddle's generator, seeded alike on every rank: the
    i-th image of each card got the same decision, label and mask. Each rank now holds its rows of one draw for
    the 8 images: together exactly what one process draws for them."""
    from multicard_probe import per_image_draws
    expected = per_image_draws(None)
    ranks = global_batch[DRAWS]
    for rank, result in enumerate(ranks):
        assert "error" not in result, f"rank {rank}: {result['error']}"
    for key in ("labels", "dropout"):
        assert ranks[0][key] + ranks[1][key] == expected[key], key
    assert ranks[0]["dropout"] != ranks[1]["dropout"]
