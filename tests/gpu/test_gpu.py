"""What only a GPU can show (fp16 kernels, Paddle's loss scaler and casts, NCCL, SyncBatchNorm): run when Paddle has
CUDA and a visible card, skipped otherwise. The checks are ``rifle-selftest``'s, so a user's self-test and this
suite exercise the same code."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from rifle_paddle.config.checks import gpu_available

GPU = gpu_available()
CARDS = paddle.device.cuda.device_count() if GPU else 0
pytestmark = pytest.mark.skipif(not GPU, reason="needs Paddle with CUDA and a visible GPU (CPU stand-ins: "
                                                "tests/test_amp.py, tests/test_multicard.py)")


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    from rifle_paddle.app.selftest import SelfTest
    return SelfTest(str(tmp_path_factory.mktemp("selftest")))


@pytest.mark.parametrize("level", ["O1", "O2"])
def test_an_overflow_skips_the_step_and_halves_the_loss_scale(suite, level):
    assert "2^39" in suite.check_amp_overflow(level)


def test_o2_run_checkpoint_loads_in_eval_py(suite):
    suite.check_eval_round_trip()


def test_o2_run_resumes_to_the_same_weights(suite):
    suite.check_resume()


def test_o2_l2sp_with_dtnh(suite):
    suite.check_dtnh()


def test_o2_evaluation_of_a_half_precision_network():
    """hapi's eval_batch without autocast fed fp32 images to the fp16 network (conv2d raised)."""
    from rifle_paddle.engine.amp import convert_for_o2
    from rifle_paddle.engine.model import TransferModel
    from rifle_paddle.models import create_model
    paddle.set_device("gpu")
    net = create_model("resnet18", num_classes=3)
    optimizer = paddle.optimizer.Momentum(0.1, parameters=net.parameters(), multi_precision=True)
    convert_for_o2(net, optimizer)
    model = TransferModel(net)
    model.prepare(optimizer, paddle.nn.CrossEntropyLoss(), paddle.metric.Accuracy(), amp_configs="O2")
    images, labels = np.random.rand(4, 3, 32, 32).astype("float32"), np.array([0, 1, 2, 0], dtype="int64")
    losses, _ = model.eval_batch([images], [labels])
    assert np.isfinite(losses[0]).all()


def test_o2_l2sp_distance_is_zero_at_the_start():
    """fp16 rounding alone put it at 2e-2 on ResNet-18 when measured from the live weights."""
    from rifle_paddle.engine.amp import convert_for_o2, master_weights
    from rifle_paddle.models import create_model
    from rifle_paddle.regularizers import L2SP
    paddle.set_device("gpu")
    net = create_model("resnet18", num_classes=3)
    l2sp = L2SP(alpha=1.0, beta=0.0).attach(net)
    optimizer = paddle.optimizer.Momentum(0.1, parameters=net.parameters(), multi_precision=True)
    convert_for_o2(net, optimizer)
    l2sp.master_weights = master_weights(optimizer)
    assert float(l2sp.closed_form()[0]) == 0.0


@pytest.mark.skipif(CARDS < 2, reason="needs 2 GPUs")
def test_two_cards_with_o2_rifle_l2sp_and_dtnh(suite):
    suite.check_two_processes()


@pytest.mark.skipif(CARDS < 2, reason="needs 2 GPUs")
def test_two_cards_with_sync_bn(suite):
    """The conversion really happened (every batch norm of the ResNet-18, counted after it; the old check read a
    line logged before any conversion), and both ranks end with the same weights and batch-norm statistics."""
    import re

    from rifle_paddle.app.selftest import ranks_differ
    overrides = suite.overrides("sync_bn", "train.sync_bn=true", "train.amp=true", "train.amp_level=O2", amp=False)
    records, logs = suite.launch_run("sync_bn", overrides, nproc=2)
    assert re.search(r"batch norm: 20 layers converted to SyncBatchNorm, 0 left unsynchronized", logs[0])
    assert not ranks_differ(records)


# every method in every precision, one card and two: the cells of docs/gpu.md's matrix marked "GPU test"
METHODS = {
    "finetune": [],
    "rifle": ["rifle.enabled=true", "rifle.num_reinits=1", "rifle.min_tail_epochs=1"],
    "l2sp": ["regularizer.name=l2sp"],
    "delta": ["regularizer.name=delta", "regularizer.attention_probe=fast", "regularizer.attention_batches=1"],
    "kd": ["regularizer.name=kd"],
    "bss": ["regularizer.name=bss"],
    "l2sp_dtnh": ["regularizer.name=l2sp", "dtnh.enabled=true", "train.weight_decay=0"],
    "delta_dtnh": ["regularizer.name=delta", "regularizer.attention_probe=fast", "regularizer.attention_batches=1",
                   "dtnh.enabled=true", "train.weight_decay=0"],
    "kd_dtnh": ["regularizer.name=kd", "dtnh.enabled=true", "train.weight_decay=0"],
    "tricks": ["tricks.dropout=true", "tricks.dropconnect=true", "tricks.stochastic_depth=true",
               "tricks.disturb_label=true"],
}
PRECISIONS = {"fp32": [], "O1": ["train.amp=true", "train.amp_level=O1"],
              "O2": ["train.amp=true", "train.amp_level=O2"]}


@pytest.mark.parametrize("precision", list(PRECISIONS))
@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_trains_on_one_card(suite, method, precision):
    """Trains (every step finite, the weights moved: a run whose steps were all skipped fails) and eval.py scores
    its best checkpoint as the run did."""
    import math

    from rifle_paddle.app.selftest import weights_moved
    from rifle_paddle.engine import evaluate, train
    name = f"one_{method}_{precision}"
    result = train(suite.config(name, *METHODS[method], *PRECISIONS[precision], amp=False))
    assert all(math.isfinite(e["train_loss"]) for e in result["epochs"]) and result["nonfinite_batches"] == 0
    assert weights_moved(result["run_dir"], suite.pretrained) > 0
    scored = evaluate(suite.config(name, f"model.checkpoint={result['run_dir']}", amp=False))
    assert abs(scored["acc_top1"] - result["best"]["test_acc_top1"]) <= 2 / scored["num_test"] + 1e-6


@pytest.mark.skipif(CARDS < 2, reason="needs 2 GPUs")
@pytest.mark.parametrize("precision", list(PRECISIONS))
@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_trains_on_two_cards(suite, method, precision):
    """Both ranks end with the same weights (fp32 master weights under O2), batch-norm statistics and loss scale,
    and the weights moved."""
    from rifle_paddle.app.selftest import ranks_differ, weights_moved
    name = f"two_{method}_{precision}"
    records, _ = suite.launch_run(name, suite.overrides(name, *METHODS[method], *PRECISIONS[precision], amp=False),
                                  nproc=2)
    assert not ranks_differ(records)
    assert weights_moved(suite.run_dir(name), suite.pretrained) > 0
