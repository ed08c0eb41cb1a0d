"""Training-step time of regularized fine-tuning with and without DTNH, against plain fine-tuning.

One process, one network per architecture, the same batch for every variant; the variants run in interleaved
rounds (so drift of a shared machine hits them alike) and each reports the median of its step times. A step is the
engine's whole ``TransferModel.train_batch``: forward, the regularizer, backward(s), DTNH, SGD-momentum with weight
decay. Targets (issue 4): L2-SP+DTNH <= 1.15 x L2-SP, DELTA+DTNH <= 1.6 x DELTA.

    python benchmarks/bench_step.py                                   # CPU defaults: 96 px, batch 16 (about 3 min)
    python benchmarks/bench_step.py --device gpu --image-size 224 --batch 32 --rounds 20

DELTA runs with uniform channel attention: the supervised attention is computed once before training and only
changes the values of the per-channel weights, not the cost of a step.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VARIANTS = ("plain", "l2sp", "l2sp+dtnh", "delta", "delta+dtnh")


def build(arch: str, num_classes: int):
    """A network, its engine model, and the training step of every variant (all sharing the network)."""
    import paddle
    from rifle_paddle.engine.model import TransferModel
    from rifle_paddle.models import create_model
    from rifle_paddle.regularizers import DELTA, DTNH, L2SP, RegularizedStep

    network = create_model(arch, num_classes=num_classes)
    steps = {"plain": None}
    l2sp = L2SP().attach(network)
    steps["l2sp"] = RegularizedStep(l2sp)
    steps["l2sp+dtnh"] = RegularizedStep(l2sp, DTNH(network.named_parameters()))
    delta = DELTA(attention="uniform").attach(network)
    steps["delta"] = RegularizedStep(delta)
    steps["delta+dtnh"] = RegularizedStep(delta, DTNH(network.named_parameters()))
    model = TransferModel(network)
    optimizer = paddle.optimizer.Momentum(0.01, momentum=0.9, parameters=network.parameters(),
                                          weight_decay=paddle.regularizer.L2Decay(1e-4))
    model.prepare(optimizer, paddle.nn.CrossEntropyLoss())
    return model, steps


def bench_arch(args, arch: str) -> dict[str, float]:
    import numpy as np
    import paddle
    from rifle_paddle.core.step import TrainStep

    paddle.seed(0)
    model, steps = build(arch, args.classes)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(args.batch, 3, args.image_size, args.image_size)).astype("float32")
    labels = rng.integers(0, args.classes, size=args.batch).astype("int64")
    batch = ([paddle.to_tensor(images)], [paddle.to_tensor(labels)])

    def run(variant: str) -> float:
        model.train_step = steps[variant] or TrainStep()
        start = time.perf_counter()
        model.train_batch(*batch)  # returns numpy losses: the step has finished when it returns
        if args.device == "gpu":
            paddle.device.cuda.synchronize()
        return time.perf_counter() - start

    for variant in VARIANTS:  # warm-up: kernel selection, allocator, lazily created optimizer state
        for _ in range(args.warmup):
            run(variant)
    times = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            times[variant].append(run(variant))
    return {v: statistics.median(t) for v, t in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", nargs="+", default=["resnet18", "resnet50"])
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5, help="timed steps per variant (interleaved)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    args = parser.parse_args(argv)

    import paddle
    paddle.set_device(args.device)
    print(f"device {args.device}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, batch "
          f"{args.batch}, {args.image_size} px, {args.rounds} timed steps per variant (median), {args.warmup} "
          f"warm-up", flush=True)
    ok = True
    for arch in args.archs:
        start = time.perf_counter()
        med = bench_arch(args, arch)
        print(f"\n{arch}  ({time.perf_counter() - start:.0f} s)")
        print(f"  {'variant':<12}{'median step':>13}{'vs plain':>10}")
        for v in VARIANTS:
            print(f"  {v:<12}{med[v] * 1000:>10.0f} ms{med[v] / med['plain']:>9.2f}x")
        for name, ratio, target in (("L2-SP+DTNH / L2-SP", med["l2sp+dtnh"] / med["l2sp"], 1.15),
                                    ("DELTA+DTNH / DELTA", med["delta+dtnh"] / med["delta"], 1.6)):
            met = ratio <= target
            ok &= met
            print(f"  {name}: {ratio:.3f}  (target <= {target}: {'met' if met else 'MISSED'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
