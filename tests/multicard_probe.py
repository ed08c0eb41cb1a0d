"""Scenarios run as two ranks by ``tests/test_multicard.py`` (``multicard.launch``): each rank writes what it saw to
``<out>/<scenario>.<rank>.json`` for the test to compare across ranks.

Usage: ``python -m paddle.distributed.launch --nproc_per_node 2 multicard_probe.py <out dir> <scenario>...``
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import paddle

from tiny_net import linear_model

from rifle_paddle.engine.model import TransferModel

SCENARIOS = {}


def scenario(fn):
    SCENARIOS[fn.__name__] = fn
    return fn


@scenario
def nan_skip(rank: int) -> dict:
    """nan_policy=skip with a NaN loss on rank 0 only: every rank must skip the step."""
    model = linear_model(nan_policy="skip")
    x = np.full([1, 2], np.nan if rank == 0 else 1.0, dtype="float32")
    model.train_batch([x], [np.zeros([1], dtype="int64")])
    return {"weight": model.network.weight.numpy().tolist(), "skipped": model.nonfinite.skipped}


@scenario
def scaler_overflow(rank: int) -> dict:
    """AMP's loss scaler switched on (Paddle disables it off the GPU: its place check is answered as a GPU's), a
    batch whose scaled gradient overflows on rank 0 only, then a clean one: both ranks must skip the first step,
    halve the scale and apply the second alike."""
    from gpu_stand_in import enable_loss_scaler_on_cpu

    enable_loss_scaler_on_cpu()
    model = linear_model({"level": "O1", "init_loss_scaling": 2.0 ** 15})
    label = [np.zeros([1], dtype="int64")]
    model.train_batch([np.full([1, 2], 1e35 if rank == 0 else 1.0, dtype="float32")], label)
    first = {"scale": model._scaler.loss_scale, "weight": model.network.weight.numpy().tolist()}
    model.train_batch([np.full([1, 2], 1.0 + rank, dtype="float32")], label)
    return {"first": first, "scale": model._scaler.loss_scale, "weight": model.network.weight.numpy().tolist()}


@scenario
def dtnh_reduce(rank: int) -> dict:
    """DTNH's g_R mean over ranks of values near the top of the dtype's range (fp32 here, fp16 on a GPU)."""
    from rifle_paddle.regularizers.step import _average_over_ranks
    g = paddle.full([3], 3.0e38 if rank == 0 else 2.0e38, dtype="float32")
    return {"mean": _average_over_ranks([g])[0].numpy().tolist()}


def _weights(network) -> dict:
    return {k: v.astype("float64").numpy().tolist() for k, v in network.state_dict().items()}


@scenario
def o2_ddp(rank: int) -> dict:
    """AMP O2 on two ranks through the engine's ``build_model``, float64 standing in for float16 (Paddle's casts
    and loss scaler are off on the CPU): each rank trains on its own batch, the ranks must end equal."""
    from tiny_net import Tiny

    import rifle_paddle.engine.amp as amp
    import rifle_paddle.engine.trainer as trainer
    from rifle_paddle.config import load_config
    amp.HALF_DTYPE = "float64"
    trainer.amp_configs = lambda train_cfg, device: {"level": "O2", "init_loss_scaling": 2.0 ** 15}
    cfg = load_config(None, ["train.amp=true", "train.amp_level=O2", "train.lr=0.5"])
    paddle.seed(0)
    network = Tiny()
    before = _weights(network)
    model = trainer.build_model(cfg, network, 1, "cpu")
    # the optimizer, built before the cast, holds its learning rate in float32: Momentum's fp16 kernel reads it so,
    # its fp64 kernel (the stand-in's) needs it in float64
    model._optimizer._dtype = paddle.float64
    x = paddle.to_tensor(np.random.default_rng(rank).normal(size=(4, 4)), dtype="float64")
    model.train_batch([x], [np.array([0, 1, 0, 1], dtype="int64")])
    return {"before": before, "after": _weights(network), "dtype": str(network.body.weight.dtype)}


@scenario
def o2_unconverted(rank: int) -> dict:
    """hapi's own O2 order on several cards (DataParallel first, the cast in prepare) is refused clearly."""
    from tiny_net import Tiny
    network = Tiny()
    model = TransferModel(network)
    try:
        model.prepare(paddle.optimizer.SGD(0.1, parameters=network.parameters()), paddle.nn.CrossEntropyLoss(),
                      amp_configs="O2")
    except RuntimeError as e:
        return {"refused": str(e)}
    return {"refused": None}


@scenario
def bn_average(rank: int) -> dict:
    """Plain batch norm on two ranks, one training batch each (different data): the running statistics differ;
    before an evaluation they become the same on both."""
    from rifle_paddle.engine.multicard import SameStatisticsOnEveryRank
    paddle.seed(0)
    network = paddle.nn.Sequential(paddle.nn.Linear(2, 3), paddle.nn.BatchNorm1D(3), paddle.nn.Linear(3, 2))
    model = TransferModel(network)
    model.prepare(paddle.optimizer.SGD(0.1, parameters=network.parameters()), paddle.nn.CrossEntropyLoss())
    x = np.random.default_rng(rank).normal(loc=3.0 * rank, size=(8, 2)).astype("float32")
    model.train_batch([x], [np.zeros([8], dtype="int64")])
    bn = network[1]
    before = {"mean": bn._mean.numpy().tolist(), "variance": bn._variance.numpy().tolist()}
    callback = SameStatisticsOnEveryRank()
    callback.set_model(model)
    callback.on_eval_begin()
    return {"before": before, "after": {"mean": bn._mean.numpy().tolist(), "variance": bn._variance.numpy().tolist()}}


@scenario
def sync_bn_on_cpu(rank: int) -> dict:
    """train.sync_bn on CPU ranks: refused clearly (Paddle's SyncBatchNorm has no CPU kernel)."""
    from rifle_paddle.engine.errors import RunError
    from rifle_paddle.engine.multicard import configure_batch_norm
    try:
        configure_batch_norm(paddle.nn.BatchNorm1D(3), True, "cpu", 16, 0.01)
    except RunError as e:
        return {"refused": str(e)}
    return {"refused": None}


# ------------------------------------------------------------------------------ regularizers on the global batch
#: what a two-rank run is compared with: one process on the same 8 images, which rank r splits as rows 4r..4r+3
REGULARIZED = {"kd_sum": ("kd", "sum", False), "kd_mean": ("kd", "mean", False), "kd_sum_dtnh": ("kd", "sum", True),
               "delta_fast": ("delta", "fast", False), "delta_authors": ("delta", "authors", False),
               "bss": ("bss", None, False), "bss_dtnh": ("bss", None, True), "l2sp": ("l2sp", None, False),
               "l2sp_dtnh": ("l2sp", None, True)}


def regularized_step(kind: str, rank: int | None, world: int = 2) -> dict:
    """One SGD step (lr 1) of the Tiny network with regularizer ``kind`` at alpha 1 on the 8-image batch
    (``rank`` None) or on rank ``rank``'s share of it; the weights after it (and DELTA's channel attention).
    The student starts 0.3 away from the teacher (as after some training), else the feature terms are 0."""
    from tiny_net import Tiny

    from rifle_paddle.regularizers import (DELTA, DTNH, L2SP, BatchSpectralShrinkage, FeatureDistillation,
                                           RegularizedStep)
    name, option, dtnh = REGULARIZED[kind]
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(8, 4)).astype("float32"), np.array([0, 1, 1, 0, 1, 0, 0, 1], dtype="int64")
    rows = slice(None) if rank is None else slice(rank * 8 // world, (rank + 1) * 8 // world)
    paddle.seed(0)
    net = Tiny()
    if name == "kd":
        reg = FeatureDistillation(alpha=1.0, layers=["body"], reduction=option)
    elif name == "delta":
        reg = DELTA(alpha=1.0, beta=0.0, layers=["body"], probe=option, attention_batches=1)
    elif name == "l2sp":
        reg = L2SP(alpha=1.0, beta=1.0)
    else:
        reg = BatchSpectralShrinkage(alpha=1.0)
    reg.attach(net, "fc")
    with paddle.no_grad():
        net.body.weight.set_value(net.body.weight + 0.3 * paddle.to_tensor(rng.normal(size=(4, 3)), "float32"))
    reg.prepare([(paddle.to_tensor(x[rows]), paddle.to_tensor(y[rows]))])
    step = RegularizedStep(reg, DTNH(net.named_parameters()) if dtnh else None)
    model = TransferModel(net, train_step=step)
    model.prepare(paddle.optimizer.SGD(1.0, parameters=net.parameters()), paddle.nn.CrossEntropyLoss())
    model.train_batch([x[rows]], [y[rows]])
    return {"weights": _weights(net),
            "attention": {k: v.numpy().tolist() for k, v in getattr(reg, "attention", {}).items()}}


def per_image_draws(rank: int | None, world: int = 2) -> dict:
    """DisturbLabel's labels (alpha 0.5) and the classifier-input dropout mask (rate 0.5) of the 8-image batch
    (``rank`` None) or of rank ``rank``'s 4 images, from the same seed."""
    from rifle_paddle.tricks.disturb_label import disturb_labels
    from rifle_paddle.tricks.dropout import ClassifierInputDropout
    rows = slice(None) if rank is None else slice(rank * 8 // world, (rank + 1) * 8 // world)
    paddle.seed(5)
    labels = disturb_labels(paddle.to_tensor(np.arange(8) % 3)[rows], 0.5, 3)
    head = paddle.nn.Linear(6, 2)
    head.train()
    dropped = ClassifierInputDropout(0.5)(head, (paddle.ones([8, 6])[rows],))[0]
    return {"labels": labels.numpy().tolist(), "dropout": dropped.numpy().tolist()}


SCENARIOS["global_draws"] = per_image_draws

for _kind in REGULARIZED:
    SCENARIOS[f"global_{_kind}"] = (lambda kind: lambda rank: regularized_step(kind, rank))(_kind)


# ------------------------------------------------------------------------------ evaluation with unreadable images
class _LabelledPoints(paddle.io.Dataset):
    """9 points of 3 classes; point 1's image is unreadable (labelled ``EXCLUDED``, as the readers serve it)."""

    def __init__(self):
        from rifle_paddle.data.base import EXCLUDED
        rng = np.random.default_rng(3)
        self.x = rng.normal(size=(9, 4)).astype("float32")
        self.y = np.array([0, EXCLUDED, 2, 1, 0, 2, 1, 1, 0], dtype="int64")

    def __len__(self):
        return 9

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def evaluate_with_an_unreadable_image(rank: int | None) -> dict:
    """``TransferModel.evaluate`` of the Tiny network (3 outputs) over ``_LabelledPoints`` at batch 2 (one process:
    all of them; two ranks: each its share, the second padded): the accuracy over the 8 readable points."""
    from tiny_net import Tiny

    from rifle_paddle.data import build_loader
    paddle.seed(0)
    network = Tiny()
    network.fc = paddle.nn.Linear(3, 3)
    model = TransferModel(network)
    model.prepare(paddle.optimizer.SGD(0.1, parameters=network.parameters()), paddle.nn.CrossEntropyLoss(),
                  paddle.metric.Accuracy(topk=(1,), name="acc_top1"))
    logs = model.evaluate(build_loader(_LabelledPoints(), 2, False, 0), verbose=0)
    with paddle.no_grad():
        data = _LabelledPoints()
        keep = data.y >= 0
        predicted = network(paddle.to_tensor(data.x[keep])).numpy().argmax(axis=1)
    return {"acc_top1": float(np.ravel(logs["acc_top1"])[0]), "expected": float((predicted == data.y[keep]).mean())}


SCENARIOS["eval_unreadable"] = evaluate_with_an_unreadable_image


def main() -> None:
    out, names = sys.argv[1], sys.argv[2:]
    paddle.set_device("cpu")
    paddle.distributed.init_parallel_env()
    rank = paddle.distributed.get_rank()
    for name in names:
        try:
            result = SCENARIOS[name](rank)
        except Exception as e:  # reported to the test, which shows it
            result = {"error": f"{type(e).__name__}: {e}"}
        with open(os.path.join(out, f"{name}.{rank}.json"), "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
