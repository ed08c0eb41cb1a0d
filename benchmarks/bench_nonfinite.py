"""The cost of checking the whole network state for NaN/Inf after every step (``engine.nonfinite``), against the
step it guards, measured side by side in one process (medians of ``--repeats`` rounds; CPU unless ``--device gpu``).

    python benchmarks/bench_nonfinite.py                       # ResNet-18 at 32 px and ResNet-50 at 224 px, batch 32
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def measure(arch: str, size: int, batch: int, repeats: int) -> tuple[float, float]:
    """(median seconds of one SGD step, median seconds of one ``weights_are_finite``)."""
    import paddle

    from rifle_paddle.engine.nonfinite import weights_are_finite
    from rifle_paddle.models import create_model
    paddle.seed(0)
    net = create_model(arch, num_classes=10)
    opt = paddle.optimizer.Momentum(0.01, parameters=net.parameters())
    x = paddle.randn([batch, 3, size, size])
    y = paddle.randint(0, 10, [batch])
    steps, checks = [], []
    for i in range(repeats + 1):
        start = time.perf_counter()
        loss = paddle.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        opt.clear_grad()
        float(loss)  # the engine copies the loss to the host after each step
        middle = time.perf_counter()
        assert weights_are_finite(net)
        end = time.perf_counter()
        if i:  # the first round warms up
            steps.append(middle - start)
            checks.append(end - middle)
    return statistics.median(steps), statistics.median(checks)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    import paddle
    paddle.set_device(args.device)
    for arch, size in (("resnet18", 32), ("resnet50", 224)):
        step, check = measure(arch, size, 32, args.repeats)
        print(f"{arch} {size} px batch 32: step {1000 * step:.1f} ms, state check {1000 * check:.2f} ms "
              f"= {100 * check / step:.2f} % of a step (medians of {args.repeats})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
