"""Run a whole table of a paper: every cell x seed through the engine, one run after another, resumable.

    python -m rifle_paddle.experiments.sweep configs/tables/rifle_table_tricks.yaml --seeds 3 \\
        --data-root cub200=/data/CUB_200_2011 --data-root stanford_cars=/data/stanford_cars
    ... --dry-run     # the plan: every run with its state (done / incomplete / to run), nothing is started
    ... --print       # one `rifle-train ...` line per run still to do, to hand to a cluster scheduler

Each run is ``<run.output_dir>/<dataset>-<method>-s<seed>`` (``runs.run_name``), from the cell's generated config
(``configs/<dataset>/<arch>_<method>.yaml``) with ``run.seed`` and ``run.name`` set. A run whose ``metrics.json``
holds its final result is done and skipped, so starting an interrupted sweep again continues where it stopped; a
run that was cut short continues from its newest checkpoint (``train.resume=auto``, exact: same steps, same
weights), or starts again over its directory if it was stopped before writing one.

Order is seed-major (every cell with seed 0, then every cell with seed 1, ...): an interrupted sweep leaves a
complete table with fewer seeds rather than a few cells with all of them. Every config is loaded and validated
before the first run starts, so a typo fails in a second, not after hours.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import shlex
import sys
import traceback
from dataclasses import dataclass

from ..console import module_parser
from ..core.eta import Eta, format_duration
from ..config import ConfigError, load_config
from .configgen import render
from .matrix import Cell, Table, TableError, load_table
from .runs import is_complete, run_name

log = logging.getLogger("rifle_paddle")

DONE, INCOMPLETE, TODO = "done", "incomplete", "to run"


class SweepError(ValueError):
    """The plan cannot be made (every problem listed)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("cannot plan the sweep:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass
class Job:
    """One run of the sweep: a table cell with one seed."""

    cell: Cell
    seed: int
    config_path: str
    overrides: list[str]  # everything but the seed and the name
    run_dir: str
    state: str

    @property
    def name(self) -> str:
        return run_name(self.cell.dataset, self.cell.method.name, self.seed)

    @property
    def run_overrides(self) -> list[str]:
        """The ``-o`` overrides of this run (the last ones win)."""
        # a cut-short run continues from its newest checkpoint; 'auto' starts it over when it has none yet
        resume = ["train.resume=auto"] if self.state == INCOMPLETE else []
        return [*self.overrides, f"run.seed={self.seed}", f"run.name={self.name}", *resume]

    def command(self) -> str:
        args = ["rifle-train", "-c", os.path.relpath(self.config_path)]
        for override in self.run_overrides:
            args += ["-o", override]
        return shlex.join(args)


def parse_data_roots(pairs: list[str], table: Table) -> dict[str, str]:
    """``['cub200=/data/CUB']`` -> ``{'cub200': '/data/CUB'}``; names must be data sets of the table."""
    roots, problems = {}, []
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            problems.append(f"--data-root '{pair}' is not of the form DATASET=PATH")
        elif name not in table.datasets:
            problems.append(f"--data-root '{pair}': '{name}' is not a data set of {table.path} "
                            f"({', '.join(table.datasets)})")
        else:
            roots[name] = path
    if problems:
        raise SweepError(problems)
    return roots


def _state(run_dir: str) -> str:
    if is_complete(run_dir):
        return DONE
    return INCOMPLETE if os.path.isdir(run_dir) and os.listdir(run_dir) else TODO


def plan(table: Table, seeds: list[int], overrides: list[str] = (), data_roots: dict[str, str] | None = None,
         datasets: list[str] | None = None, methods: list[str] | None = None) -> list[Job]:
    """Every run of the (selected) table cells, seed-major, with its current state.

    Raises ``SweepError`` if a cell's generated config is missing or out of date, or does not load with the
    overrides.
    """
    if not seeds:
        raise SweepError(["no seeds: pass --seeds N with N >= 1"])
    cells = table.select(datasets, methods)
    problems, per_cell = [], []
    for cell in cells:
        path = table.config_path(cell)
        if not os.path.isfile(path):
            missing = ", ".join(os.path.relpath(p) for p in table.missing_fragments(cell)) or "none"
            problems.append(f"{cell.key}: {os.path.relpath(path)} does not exist (missing fragments: {missing}); "
                            f"run `python -m rifle_paddle.experiments.configgen`, or leave the cell out with "
                            f"--datasets/--methods")
            continue
        with open(path, encoding="utf-8") as f:
            if f.read() != render(table, cell):
                problems.append(f"{cell.key}: {os.path.relpath(path)} is not what the table says now; "
                                f"run `python -m rifle_paddle.experiments.configgen`")
                continue
        cell_overrides = list(overrides)
        if data_roots and cell.dataset in data_roots:
            cell_overrides.append(f"data.root={data_roots[cell.dataset]}")
        try:
            cfg = load_config(path, cell_overrides)
        except ConfigError as e:
            problems.append(f"{cell.key}: {e}")
            continue
        per_cell.append((cell, path, cell_overrides, cfg["run"]["output_dir"]))
    if problems:
        raise SweepError(problems)
    jobs = []
    for seed in seeds:
        for cell, path, cell_overrides, output_dir in per_cell:
            run_dir = os.path.join(output_dir, run_name(cell.dataset, cell.method.name, seed))
            jobs.append(Job(cell, seed, path, cell_overrides, run_dir, _state(run_dir)))
    return jobs


def train_in_process(job: Job) -> None:
    """Run ``job`` through the engine in this process (what ``train.py`` does for one config)."""
    from ..engine import train
    try:
        train(load_config(job.config_path, job.run_overrides))
    finally:
        gc.collect()  # the previous run's network and loaders go before the next one is built


def run_jobs(jobs: list[Job], keep_going: bool = False, runner=train_in_process,
             workers: int = 1) -> list[tuple[Job, str]]:
    """Run every job that is not done, in order; returns ``(job, error)`` for each failed run.

    A failure stops the sweep unless ``keep_going`` (a broken data root would otherwise fail every cell in turn).
    Ctrl-C stops it too; the interrupted run is incomplete and is started again by the next sweep.

    ``workers > 1`` runs that many jobs at once, each in a fresh process (``runner`` must then be picklable). On a
    CPU this is the faster way to use several cores: Paddle's CPU kernels run single-threaded by default and small
    models scale poorly with threads (measured on 2 cores, ResNet-18 at 32 px: two single-threaded runs side by side
    trained 1.42x the images/s of one run with two threads, benchmarks/bench_threads.py). On a GPU keep one worker per card.
    """
    pending = [j for j in jobs if j.state != DONE]
    eta = Eta(len(pending), parallel=workers)
    if workers > 1:
        return _run_in_pool(pending, keep_going, runner, workers, eta)
    failures = []
    for i, job in enumerate(pending, 1):
        _log_start(job, i, len(pending))
        started = eta.clock()
        try:
            runner(job)
        except Exception as e:  # noqa: BLE001 - reported per run; the traceback goes to the log
            failures.append(_failure(job, e))
            if not keep_going:
                break
        else:
            _log_finished(eta, job, eta.clock() - started)
    return failures


def _log_start(job: Job, i: int, n: int) -> None:
    log.info("sweep [%d/%d] %s (%s)%s", i, n, job.name, os.path.relpath(job.config_path),
             ", continuing an incomplete run" if job.state == INCOMPLETE else "")


def _log_finished(eta: Eta, job: Job, seconds: float) -> None:
    """One line per finished run: its time, and the sweep's time left from the mean run so far."""
    eta.add(seconds)
    log.info("sweep: %s took %s; %s", job.name, format_duration(seconds),
             eta.summary(f"{eta.done}/{eta.total} runs"))


def _failure(job: Job, e: BaseException) -> tuple[Job, str]:
    log.error("sweep: %s failed: %s: %s\n%s", job.name, type(e).__name__, e,
              "".join(traceback.format_exception(e)))
    return job, f"{type(e).__name__}: {e}"


def _run_in_pool(pending: list[Job], keep_going: bool, runner, workers: int,
                 eta: Eta | None = None) -> list[tuple[Job, str]]:
    """``run_jobs`` with ``workers`` processes, started in order; after a failure (without ``keep_going``) no new
    job starts, the running ones finish."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    failures, queue, running, started = [], list(enumerate(pending, 1)), {}, {}
    eta = eta or Eta(len(pending), parallel=workers)
    from ..engine.trainer import CPU_THREADS_ENV
    context = multiprocessing.get_context("spawn")  # a fork of a process that has run Paddle is not safe
    # each process gets its share of the cores (run.cpu_threads, when a config sets it, still wins)
    threads = os.environ.get(CPU_THREADS_ENV) or str(max(1, (os.cpu_count() or 1) // workers))
    with _environment(CPU_THREADS_ENV, threads), \
            ProcessPoolExecutor(max_workers=workers, mp_context=context, max_tasks_per_child=1) as pool:
        while queue or running:
            while queue and len(running) < workers and (keep_going or not failures):
                i, job = queue.pop(0)
                _log_start(job, i, len(pending))
                running[pool.submit(runner, job)] = job
                started[job.name] = eta.clock()
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                if future.exception() is not None:
                    failures.append(_failure(job, future.exception()))
                else:
                    _log_finished(eta, job, eta.clock() - started[job.name])
    return failures


@contextlib.contextmanager
def _environment(name: str, value: str):
    """``os.environ[name] = value`` for the block (spawned processes inherit it), then as it was."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a worker count, a number of seeds)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = module_parser("python -m rifle_paddle.experiments.sweep", __doc__)
    p.add_argument("table", help="a table file, e.g. configs/tables/rifle_table_tricks.yaml")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds per cell, 0..N-1 (default 3)")
    p.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--datasets", help="comma-separated data sets of the table to run (default: all)")
    p.add_argument("--methods", help="comma-separated methods of the table to run (default: all)")
    p.add_argument("--data-root", action="append", default=[], metavar="DATASET=PATH",
                   help="data.root of one data set (repeatable)")
    p.add_argument("--output-dir", help="run.output_dir of every run (default: the configs', 'output')")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for every run, e.g. -o train.epochs=20 (repeatable)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="list the plan and the state of every run; run nothing")
    mode.add_argument("--print", action="store_true", help="print one rifle-train command per run still to do")
    p.add_argument("--keep-going", action="store_true", help="continue with the next run after a failed one")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="runs at once, each in its own process (CPU: up to the number of cores; GPU: 1)")
    return p


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from ..console import setup_logging
    setup_logging()
    try:
        table = load_table(args.table)
        overrides = list(args.override) + ([f"run.output_dir={args.output_dir}"] if args.output_dir else [])
        jobs = plan(table, list(range(args.first_seed, args.first_seed + args.seeds)), overrides,
                    parse_data_roots(args.data_root, table), _split(args.datasets), _split(args.methods))
    except (TableError, SweepError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    counts = {state: sum(j.state == state for j in jobs) for state in (DONE, INCOMPLETE, TODO)}
    summary = f"{len(jobs)} runs: {counts[DONE]} done, {counts[INCOMPLETE]} incomplete, {counts[TODO]} to run"
    if args.print:
        for job in jobs:
            if job.state != DONE:
                print(job.command())
        print(f"# {summary}", file=sys.stderr)
        return 0
    if args.dry_run:
        width = max(len(j.name) for j in jobs)
        for job in jobs:
            print(f"{job.name:<{width}}  {job.state:<10}  {os.path.relpath(job.config_path)}  -> {job.run_dir}")
        print(summary)
        return 0
    log.info("sweep of %s: %s", table.path, summary)
    failures = run_jobs(jobs, keep_going=args.keep_going, workers=args.workers)
    for job, error in failures:
        print(f"failed: {job.name}: {error}", file=sys.stderr)
    done = sum(1 for j in jobs if is_complete(j.run_dir))
    print(f"{done}/{len(jobs)} runs complete" + (f", {len(failures)} failed" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
