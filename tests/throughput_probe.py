"""Two ranks summarize different throughput windows (``tests/test_throughput.py`` launches it with
``multicard.launch``); each writes the figures it would log to ``<out>/throughput.<rank>.json``.

Rank r trains 8 steps of 4 images in ``2 + r`` seconds of which ``0.5 + r`` waiting: rank 1 is the slowest (3 s,
half of it waiting)."""
from __future__ import annotations

import json
import os
import sys

import paddle

from rifle_paddle.records.throughput import summarize
from rifle_paddle.core.throughput import Window


def main() -> None:
    paddle.set_device("cpu")
    paddle.distributed.init_parallel_env()
    rank = paddle.distributed.get_rank()
    window = Window()
    for _ in range(8):
        window.add(4, wait_s=(0.5 + rank) / 8, compute_s=1.5 / 8)
    with open(os.path.join(sys.argv[1], f"throughput.{rank}.json"), "w") as f:
        json.dump(summarize(window), f)


if __name__ == "__main__":
    main()
