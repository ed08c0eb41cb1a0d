"""CPU kernel threads: one training process with 1 thread, with N threads (``run.cpu_threads``), and N
single-threaded processes side by side (what ``sweep --workers N`` does).

Paddle runs its CPU kernels on one thread unless told (``paddle.base.core.set_num_threads``). This measures the
training throughput (images/s, a bare dygraph step of the same recipe as the engine: ResNet-18, SGD momentum,
cross-entropy) of the three set-ups, alternating them over ``--repeats`` rounds because timings on a shared machine
drift, and prints the medians and their ratios to the single-threaded process.

    python benchmarks/bench_threads.py                     # ResNet-18, 32 px, batch 32, N = all cores
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(threads: int, arch: str, size: int, batch: int, steps: int) -> float:
    """Images/s of ``steps`` training steps after 3 warm-up steps, in this process with ``threads`` threads."""
    sys.path.insert(0, REPO)
    import paddle
    from rifle_paddle.engine.trainer import select_device
    from rifle_paddle.models import create_model
    select_device("cpu", threads)
    paddle.seed(0)
    net = create_model(arch, num_classes=10)
    opt = paddle.optimizer.Momentum(0.01, momentum=0.9, parameters=net.parameters())
    x = paddle.randn([batch, 3, size, size])
    y = paddle.randint(0, 10, [batch])
    for i in range(steps + 3):
        if i == 3:
            start = time.perf_counter()
        paddle.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        opt.clear_grad()
    return steps * batch / (time.perf_counter() - start)


def _spawn(threads: int, args) -> subprocess.Popen:
    code = (f"import sys, json; sys.path.insert(0, {REPO!r}); sys.argv = ['bench']; "
            f"from benchmarks.bench_threads import measure; "
            f"print(json.dumps(measure({threads}, {args.arch!r}, {args.image_size}, {args.batch}, {args.steps})))")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))


def _images_per_s(procs: list[subprocess.Popen]) -> float:
    return sum(json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="N (default: every core)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    n = args.threads
    results = {"1 process x 1 thread": [], f"1 process x {n} threads": [], f"{n} processes x 1 thread": []}
    for _ in range(args.repeats):
        results["1 process x 1 thread"].append(_images_per_s([_spawn(1, args)]))
        results[f"1 process x {n} threads"].append(_images_per_s([_spawn(n, args)]))
        results[f"{n} processes x 1 thread"].append(_images_per_s([_spawn(1, args) for _ in range(n)]))
    base = statistics.median(results["1 process x 1 thread"])
    print(f"{args.arch}, {args.image_size} px, batch {args.batch}, {args.steps} steps, median of {args.repeats} "
          f"alternating rounds, {os.cpu_count()} cores:")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"  {name:<26} {median:7.1f} images/s  ({median / base:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
