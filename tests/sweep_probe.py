"""Sweep runners for tests, run in the sweep's worker processes: they report what the process was given."""
import json
import os
import time


def report_threads(job) -> None:
    """Fails with the thread share its worker process was given (so the parent sees it)."""
    raise RuntimeError(f"threads={os.environ.get('RIFLE_PADDLE_CPU_THREADS')}")


def record_environment(job) -> None:
    """Writes ``probe.json`` in the run directory: the card and thread variables this process was started with,
    the run's overrides, its process id, and when it ran (it stays 0.3 s, so that runs overlap)."""
    start = time.time()
    time.sleep(0.3)
    names = ("CUDA_VISIBLE_DEVICES", "RIFLE_PADDLE_CPU_THREADS", "OMP_NUM_THREADS")
    record = {"name": job.name, "pid": os.getpid(), "env": {n: os.environ.get(n) for n in names},
              "overrides": job.run_overrides, "start": start, "end": time.time()}
    os.makedirs(job.run_dir, exist_ok=True)
    with open(os.path.join(job.run_dir, "probe.json"), "w", encoding="utf-8") as f:
        json.dump(record, f)
