"""Run a whole table of a paper, every cell x seed, resumable: on one card, one run per card, or on SLURM.

    python -m rifle_paddle.experiments.sweep configs/tables/rifle_table_tricks.yaml --seeds 3 \\
        --data-root cub200=/data/CUB_200_2011 --data-root stanford_cars=/data/stanford_cars
    ... --dry-run     # the plan: every run with its state (done / incomplete / to run), its steps and time
    ... --gpus 0,1,2,3          # one run per card at once (default: every card Paddle sees)
    ... --scheduler slurm --partition gpu --account lab   # one SLURM job with one GPU per run still to do
    ... --print       # one `rifle-train ...` line per run still to do, for anything else

Each run is ``<run.output_dir>/<dataset>-<method>-s<seed>`` (``runs.run_name``), from the cell's generated config
(``configs/<dataset>/<arch>_<method>.yaml``) with ``run.seed`` and ``run.name`` set. A run whose ``metrics.json``
holds its final result is done and skipped, so starting an interrupted sweep again continues where it stopped; a
run that was cut short continues from its newest checkpoint (``train.resume=auto``, exact: same steps, same
weights), or starts again over its directory if it was stopped before writing one.

Order is seed-major (every cell with seed 0, then every cell with seed 1, ...): an interrupted sweep leaves a
complete table with fewer seeds rather than a few cells with all of them. Every config is loaded and validated
before the first run starts, so a typo fails in a second, not after hours. Several cards: ``cards`` (what each
worker process is given); a cluster: ``scheduler``; the cost of the plan: ``cost``; docs/tables.md.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
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
from .cards import CardError, Slot, cuda_card_count, loader_overrides, make_slots, parse_cards, visible_cards
from .cost import RateError, parse_rate, plan_cost
from .cost import summary as cost_summary
from .configgen import render
from .matrix import Cell, Table, TableError, load_table
from .runs import is_complete, run_name
from .scheduler import SCHEDULERS

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
    config: dict | None = None  # the cell's config as the plan loaded it (before seed and name): epochs, batch, ...

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
        per_cell.append((cell, path, cell_overrides, cfg))
    if problems:
        raise SweepError(problems)
    jobs = []
    for seed in seeds:
        for cell, path, cell_overrides, cfg in per_cell:
            run_dir = os.path.join(cfg["run"]["output_dir"], run_name(cell.dataset, cell.method.name, seed))
            jobs.append(Job(cell, seed, path, cell_overrides, run_dir, _state(run_dir), cfg))
    return jobs


def train_in_process(job: Job) -> None:
    """Run ``job`` through the engine in this process (what ``train.py`` does for one config)."""
    from ..engine import train
    try:
        train(load_config(job.config_path, job.run_overrides))
    finally:
        gc.collect()  # the previous run's network and loaders go before the next one is built


def run_jobs(jobs: list[Job], keep_going: bool = False, runner=train_in_process, workers: int = 1,
             slots: list[Slot] | None = None) -> list[tuple[Job, str]]:
    """Run every job that is not done, in order; returns ``(job, error)`` for each failed run.

    A failure stops the sweep unless ``keep_going`` (a broken data root would otherwise fail every cell in turn).
    Ctrl-C stops it too; the interrupted run is incomplete and is started again by the next sweep.

    ``slots`` (``cards.make_slots``: one per card, or ``workers`` on the CPU) run that many jobs at once, each in a
    fresh process with its slot's card and share of the cores (``runner`` must then be picklable). Without slots,
    ``workers == 1`` runs the jobs in this process. On a CPU several workers are the faster way to use several
    cores: Paddle's CPU kernels run single-threaded by default and small models scale poorly with threads
    (measured on 2 cores, ResNet-18 at 32 px: two single-threaded runs side by side trained 1.42x the images/s of
    one run with two threads, benchmarks/bench_threads.py).
    """
    pending = [j for j in jobs if j.state != DONE]
    if slots is None and workers > 1:
        slots = make_slots(workers, [], os.cpu_count() or 1)
    eta = Eta(len(pending), parallel=len(slots) if slots else 1)
    if slots:
        return _run_in_pool(pending, keep_going, runner, len(slots), eta, slots)
    failures = []
    for i, job in enumerate(pending, 1):
        _log_start(job, i, len(pending))
        started = eta.clock()
        try:
            runner(job)
        except Exception as e:  # noqa: BLE001 - reported per run; the traceback goes to the log
            failures.append(_failure(job, type(e).__name__, str(e), "".join(traceback.format_exception(e))))
            if not keep_going:
                break
        else:
            _log_finished(eta, job, eta.clock() - started)
    return failures


def _log_start(job: Job, i: int, n: int, slot: Slot | None = None) -> None:
    log.info("sweep [%d/%d] %s (%s)%s%s", i, n, job.name, os.path.relpath(job.config_path),
             f" on {slot.describe()}" if slot is not None else "",
             ", continuing an incomplete run" if job.state == INCOMPLETE else "")


def _log_finished(eta: Eta, job: Job, seconds: float) -> None:
    """One line per finished run: its time, and the sweep's time left from the mean run so far."""
    eta.add(seconds)
    log.info("sweep: %s took %s; %s", job.name, format_duration(seconds),
             eta.summary(f"{eta.done}/{eta.total} runs"))


def _failure(job: Job, kind: str, message: str, details: str) -> tuple[Job, str]:
    log.error("sweep: %s failed: %s: %s\n%s", job.name, kind, message, details)
    return job, f"{kind}: {message}"


def for_slot(job: Job, slot: Slot) -> Job:
    """``job`` as a worker in ``slot`` runs it: with the loader's workers lowered to the slot's share of cores."""
    config = getattr(job, "config", None)
    if config is None:
        return job
    extra = loader_overrides(config["data"]["num_workers"], job.overrides, slot.threads)
    return dataclasses.replace(job, overrides=[*job.overrides, *extra]) if extra else job


def _run_in_child(runner, job: Job, results) -> None:
    """A worker process: run ``job``, send None or the failure (kind, message, traceback) to the sweep."""
    try:
        runner(job)
    except BaseException as e:  # noqa: BLE001 - everything goes back to the sweep, which reports it
        results.send((type(e).__name__, str(e), "".join(traceback.format_exception(e))))
    else:
        results.send(None)


def _run_in_pool(pending: list[Job], keep_going: bool, runner, workers: int, eta: Eta | None = None,
                 slots: list[Slot] | None = None) -> list[tuple[Job, str]]:
    """``run_jobs`` with one fresh process per job, ``len(slots)`` at a time, started in order; after a failure
    (without ``keep_going``) no new job starts, the running ones finish.

    Each process is started with its slot's environment (``Slot.environment``: its card, its share of the cores),
    which must be there before Paddle is imported; the sweep's own environment is restored right after.
    """
    import multiprocessing
    from multiprocessing.connection import wait
    slots = list(slots or make_slots(workers, [], os.cpu_count() or 1))
    eta = eta or Eta(len(pending), parallel=len(slots))
    context = multiprocessing.get_context("spawn")  # a fork of a process that has run Paddle is not safe
    failures, queue, running = [], list(enumerate(pending, 1)), {}
    try:
        while queue or running:
            while queue and slots and (keep_going or not failures):
                i, job = queue.pop(0)
                slot = slots.pop(0)
                _log_start(job, i, len(pending), slot if slot.card is not None else None)
                results, sender = context.Pipe(duplex=False)
                with _environment(slot.environment()):
                    process = context.Process(target=_run_in_child, args=(runner, for_slot(job, slot), sender),
                                              name=f"sweep-{job.name}")  # not daemonic: loaders start processes
                    process.start()
                sender.close()
                running[results] = (process, job, slot, eta.clock())
            if not running:
                break
            for results in wait(list(running)):
                process, job, slot, started = running.pop(results)
                try:
                    outcome = results.recv()
                except EOFError:  # the process died without a word: killed, out of memory, a crash in C++
                    process.join()
                    outcome = ("WorkerDied", f"its process ended with exit code {process.exitcode}", "")
                results.close()
                process.join()
                slots.append(slot)
                if outcome is None:
                    _log_finished(eta, job, eta.clock() - started)
                else:
                    failures.append(_failure(job, *outcome))
    except KeyboardInterrupt:  # the workers got the Ctrl-C too: each saves its checkpoint; wait for them
        for process, *_ in running.values():
            process.join()
        raise
    return failures


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """``os.environ.update(values)`` for the block (a process started in it inherits them), then as it was."""
    old = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


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
    p.add_argument("table", help="a table file, or a table shipped with the package by name (e.g. "
                                  "tables/rifle_table_tricks, or configs/tables/rifle_table_tricks.yaml from any "
                                  "folder)")
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
    p.add_argument("--workers", type=positive_int, default=None,
                   help="runs at once, each in its own process (CPU: up to the number of cores, default 1; "
                        "GPU: at most one per card of --gpus, default one per card)")
    p.add_argument("--gpus", metavar="CARDS",
                   help="cards to run on, one run per card at once, e.g. 0,1,2,3 (default: every visible card when "
                        "Paddle has CUDA); a card listed twice runs two runs at once")
    p.add_argument("--rate", help="a training speed for --dry-run's time estimate, e.g. 250img/s or 4steps/s "
                                  "(default: measured by a run of the sweep that has finished an epoch)")
    cluster = p.add_argument_group("on a cluster (pip install \"rifle-paddle[slurm]\")")
    cluster.add_argument("--scheduler", choices=SCHEDULERS,
                         help="submit every run still to do as one job with one GPU: slurm, or local (the same "
                              "jobs as processes of this machine, on the CPU: to try the path)")
    cluster.add_argument("--partition", help="SLURM partition of the jobs (default: the cluster's)")
    cluster.add_argument("--account", help="SLURM account of the jobs (default: yours)")
    cluster.add_argument("--time", type=positive_int, default=24 * 60, metavar="MINUTES",
                         help="time limit per job; a job that reaches it requeues itself and continues from its "
                              "checkpoint (default 1440)")
    cluster.add_argument("--cpus-per-job", type=positive_int, default=8, help="CPU cores per job (default 8)")
    cluster.add_argument("--mem", help="memory per job, e.g. 32G (default: the cluster's)")
    cluster.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                         help="another sbatch option for every job, e.g. --slurm qos=high (repeatable)")
    cluster.add_argument("--jobs-dir", help="where the jobs' logs go (default: <output dir>/sweep_jobs)")
    cluster.add_argument("--wait", action="store_true", help="wait for the jobs to end and list the failed ones")
    return p


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def resolve_slots(gpus: str | None, workers: int | None, card_count=None, cores: int | None = None) -> list[Slot]:
    """The sweep's slots from ``--gpus``/``--workers``: the given cards, else every visible card when Paddle has
    CUDA, else ``workers`` on the CPU (raises ``CardError`` for a card that does not exist, more workers than
    cards)."""
    count = cuda_card_count() if card_count is None else card_count
    cards = parse_cards(gpus, visible_cards(count), count > 0) if gpus is not None else visible_cards(count)
    return make_slots(workers, cards, cores or os.cpu_count() or 1)


def _print_plan(jobs: list[Job], summary: str, rate, parallel: int) -> None:
    width = max(len(j.name) for j in jobs)
    for job in jobs:
        print(f"{job.name:<{width}}  {job.state:<10}  {os.path.relpath(job.config_path)}  -> {job.run_dir}")
    print(summary)
    for line in cost_summary(plan_cost(jobs, rate), parallel):
        print(line)


def _submit(args, table: Table, jobs: list[Job], summary: str) -> int:
    from . import scheduler
    pending = [j for j in jobs if j.state != DONE]
    folder = args.jobs_dir or os.path.join(os.path.dirname(jobs[0].run_dir), "sweep_jobs")
    queued = scheduler.still_queued(folder)
    if queued & {j.name for j in pending}:
        names = sorted(queued & {j.name for j in pending})
        print(f"{len(names)} run(s) still have a job queued or running from the last submission, not submitted "
              f"again: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}")
        pending = [j for j in pending if j.name not in queued]
    if not pending:
        print(f"{summary}: nothing to submit")
        return 0
    resources = scheduler.Resources(args.partition, args.account, args.time, args.cpus_per_job, args.mem,
                                    scheduler.parse_slurm_options(args.slurm))
    executor = scheduler.make_executor(args.scheduler, folder, resources,
                                       job_name=f"rifle-{os.path.splitext(os.path.basename(table.path))[0]}")
    submitted = scheduler.submit(executor, pending, resources)
    scheduler.record_submitted(folder, args.scheduler, pending, submitted)
    print(f"{summary}; submitted {len(submitted)} job(s) to {args.scheduler} "
          f"({submitted[0].job_id} ...; logs in {folder}). Submit the same sweep again after any stop: complete "
          f"runs are skipped, cut-short ones continue from their checkpoint.")
    if not args.wait:
        return 0
    failures = scheduler.wait(submitted, pending)
    for job, error in failures:
        print(f"failed: {job.name}: {error}", file=sys.stderr)
    done = sum(1 for j in jobs if is_complete(j.run_dir))
    print(f"{done}/{len(jobs)} runs complete" + (f", {len(failures)} failed" if failures else ""))
    return 1 if failures else 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from ..console import setup_logging
    setup_logging()
    try:
        rate = parse_rate(args.rate) if args.rate else None
        table = load_table(args.table)
        overrides = list(args.override) + ([f"run.output_dir={args.output_dir}"] if args.output_dir else [])
        jobs = plan(table, list(range(args.first_seed, args.first_seed + args.seeds)), overrides,
                    parse_data_roots(args.data_root, table), _split(args.datasets), _split(args.methods))
        if args.scheduler and (args.gpus or args.workers):
            raise CardError("--gpus and --workers are for one machine; with --scheduler every run is a job of "
                            "its own, with one GPU")
        slots = None if args.scheduler or args.print else resolve_slots(args.gpus, args.workers)
    except (TableError, SweepError, CardError, RateError) as e:
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
        _print_plan(jobs, summary, rate, 0 if args.scheduler else len(slots))
        return 0
    if args.scheduler:
        from .scheduler import SchedulerError
        try:
            return _submit(args, table, jobs, summary)
        except SchedulerError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    log.info("sweep of %s: %s", table.path, summary)
    in_process = len(slots) == 1 and slots[0].card is None
    failures = run_jobs(jobs, keep_going=args.keep_going, slots=None if in_process else slots)
    for job, error in failures:
        print(f"failed: {job.name}: {error}", file=sys.stderr)
    done = sum(1 for j in jobs if is_complete(j.run_dir))
    print(f"{done}/{len(jobs)} runs complete" + (f", {len(failures)} failed" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
