"""The offline demo's time from an empty ``output/``: the figure the README quotes ("3.5 to 4.5 minutes").

Runs ``python train.py`` (no config: the demo of ``rifle_paddle/app/demo.py``) ``--repeats`` times, each in a fresh
temporary working directory so its ``output/`` starts empty, exactly as a new user's first run does, and prints per
run the wall time, the CPU time the demo and its two training processes used (user + sys, from ``getrusage`` of
the children) and the two accuracies it printed; then the medians. A wall time well above half the CPU time means
the machine's cores were not the demo's alone: time it on an idle machine. The accuracies must be the same in every
run on one machine (the CPU run is deterministic).

    python benchmarks/bench_demo.py               # two runs, about 8 minutes on 2 idle cores
    python benchmarks/bench_demo.py --repeats 3
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The demo's table: "finetune       0.9458   -" and "rifle          0.9440   [3, 5]".
_ACCURACY = re.compile(r"^(finetune|rifle)\s+([0-9.]+)\s", re.MULTILINE)


def run_once() -> dict:
    """One ``python train.py`` from an empty ``output/``: wall and CPU seconds, the printed accuracies."""
    with tempfile.TemporaryDirectory(prefix="rifle-demo-") as cwd:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, os.path.join(REPO, "train.py")], cwd=cwd,
                              capture_output=True, text=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"error: the demo failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    accuracies = {name: float(value) for name, value in _ACCURACY.findall(proc.stdout)}
    if set(accuracies) != {"finetune", "rifle"}:
        raise SystemExit("error: could not read the two accuracies from the demo's output:\n" + proc.stdout[-2000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, **accuracies}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=2, help="demo runs (default 2)")
    args = p.parse_args()
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    print(f"python train.py from an empty output/, {args.repeats} run(s), {os.cpu_count()} cores")
    runs = []
    for i in range(args.repeats):
        r = run_once()
        runs.append(r)
        print(f"run {i + 1}: {r['wall_s']:.0f} s wall, {r['cpu_s']:.0f} s CPU (user + sys); "
              f"plain {100 * r['finetune']:.2f} %, RIFLE {100 * r['rifle']:.2f} %", flush=True)
    print(f"median: {statistics.median(r['wall_s'] for r in runs):.0f} s wall, "
          f"{statistics.median(r['cpu_s'] for r in runs):.0f} s CPU")
    if len({(r["finetune"], r["rifle"]) for r in runs}) > 1:
        print("warning: the runs printed different accuracies; the demo should be deterministic on one machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
