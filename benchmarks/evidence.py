"""CPU evidence (docs/evidence.md): RIFLE's gain by data regime, and the method table; resumable across sessions.

    python benchmarks/evidence.py run                 # source model, then every run not summarized yet
    python benchmarks/evidence.py run --max-runs 4    # stop after 4 runs (a session's budget)
    python benchmarks/evidence.py status              # what is done, what is left
    python benchmarks/evidence.py report              # benchmarks/RESULTS.md and its figures, from the summaries

The protocol is fixed in docs/evidence.md and in the two tables (benchmarks/configs/tables/evidence_*.yaml). Each
finished run leaves a summary of a few KB in benchmarks/results/evidence/runs/<run>.json (its config, final
accuracy, per-epoch loss and learning rate, re-initialization events, per-layer weight change from the source, wall
time, and since 2026-12-04 the time before training), which is committed; a run with a summary is never run again,
so a later session continues from the repository even on a machine without the run directories. The report is
computed from the summaries alone.

Order: seed 0 of every cell first, then seed 1, ..., the expensive 640-label regime after the cheaper ones, DELTA
last; two single-threaded processes at a time (``--workers``). Data: ``apt-get install dataset-fashion-mnist``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# The evidence's own configs folder, outside the package (its base, data sets and methods default to the package's):
#   python -m rifle_paddle.experiments.configgen --configs benchmarks/configs [--check]
CONFIGS = os.path.join("benchmarks", "configs")
TABLES = {"regimes": os.path.join(CONFIGS, "tables", "evidence_regimes.yaml"),
          "methods": os.path.join(CONFIGS, "tables", "evidence_methods.yaml")}
SOURCE_CONFIG = os.path.join(CONFIGS, "evidence", "source_resnet18.yaml")
SUMMARIES = os.path.join("benchmarks", "results", "evidence")
# The source's weights are committed beside the summaries (45 MB, about 80 minutes of CPU to retrain), so a later
# session on a fresh machine continues with the very source the committed runs used instead of a retrained one.
SOURCE_COPY = os.path.join(SUMMARIES, "source_resnet18.pdparams")
OUTPUT_DIR = os.path.join("output", "evidence")
RESULTS = os.path.join("benchmarks", "RESULTS.md")
LAST_FIRST = ("fashion_mnist_640", "delta")  # run after everything else, in this order of lateness


# ------------------------------------------------------------------------------------------------ the source
def source_path() -> str:
    from rifle_paddle.config import load_config
    table = _tables()["regimes"]
    return load_config(table.config_path(table.cells[0]))["model"]["pretrained"]


def source_run_dirs() -> list[str]:
    """Where the source's run directory may be: this benchmark's output folder, or the config's own (the source
    may also have been trained with ``python -m rifle_paddle.experiments.pretrain -c
    benchmarks/configs/evidence/source_resnet18.yaml``)."""
    from rifle_paddle.config import load_config
    cfg = load_config(SOURCE_CONFIG)
    return [os.path.join(folder, cfg["run"]["name"]) for folder in (OUTPUT_DIR, cfg["run"]["output_dir"])]


def md5(path: str) -> str:
    from rifle_paddle.models.pretrained import file_md5
    return file_md5(path)


def committed_source() -> str | None:
    """The committed source model's file, if this checkout has it intact (its md5 is the one ``source.json``
    records), else None: what a checkout's ``train.py`` hands the demo (``rifle_paddle/app/demo.py``), which trains
    a small source of its own without it."""
    weights = os.path.join(REPO, SOURCE_COPY)
    try:
        record = _read_json(os.path.join(REPO, SUMMARIES, "source.json"))
    except (OSError, ValueError):
        record = None
    if record and os.path.isfile(weights) and md5(weights) == record.get("md5"):
        return weights
    return None


def source_summary(path: str) -> dict | None:
    """The record of the source model whose weights are ``path``, from the run directory that trained them."""
    found = md5(path)
    for run_dir in source_run_dirs():
        metrics = _read_json(os.path.join(run_dir, "metrics.json"))
        weights = os.path.join(run_dir, "last.pdparams")
        if metrics and os.path.isfile(weights) and md5(weights) == found:
            return {"md5": found, "acc_top1": metrics["final"]["acc_top1"], "elapsed_s": metrics["elapsed_s"],
                    "num_train": metrics["num_train"], "num_test": metrics["num_test"], "config": SOURCE_CONFIG,
                    "date": datetime.date.today().isoformat(), "environment": environment()}
    return None


def ensure_source() -> dict:
    """The source model's summary (``benchmarks/results/evidence/source.json``); trains the source first when its
    weights are missing.

    The committed runs were made from the source that summary names (by md5); a weights file with another md5 is
    reported as ``foreign`` and never pooled with them."""
    from rifle_paddle.config import load_config
    from rifle_paddle.experiments.pretrain import pretrain
    path, summary_file = source_path(), os.path.join(SUMMARIES, "source.json")
    committed = _read_json(summary_file)
    if not os.path.isfile(path) and os.path.isfile(SOURCE_COPY):
        print(f"restoring the committed source model {SOURCE_COPY} -> {path}", flush=True)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        shutil.copyfile(SOURCE_COPY, path)
    if not os.path.isfile(path):
        print(f"training the source model ({SOURCE_CONFIG}) -> {path}", flush=True)
        pretrain(load_config(SOURCE_CONFIG, [f"run.output_dir={OUTPUT_DIR}", "run.overwrite=true"]), path)
    if not os.path.isfile(SOURCE_COPY):
        os.makedirs(SUMMARIES, exist_ok=True)
        shutil.copyfile(path, SOURCE_COPY)
    if committed is not None:
        found = md5(path)
        return committed if committed["md5"] == found else {**committed, "md5": found, "foreign": True}
    summary = source_summary(path)
    if summary is None:
        raise SystemExit(f"error: {path} exists, but neither {summary_file} nor the run directory that trained it "
                         f"({' or '.join(source_run_dirs())}) does: delete {path} to train the source here")
    _write_json(summary, summary_file)
    return summary


# ------------------------------------------------------------------------------------------------ the runs
def _tables():
    from rifle_paddle.experiments.matrix import load_table
    return {name: load_table(path) for name, path in TABLES.items()}


def summary_path(run_name: str) -> str:
    return os.path.join(SUMMARIES, "runs", f"{run_name}.json")


def plan_jobs(seeds: list[int]) -> list:
    """Every run of both tables once (a cell shared by the tables is one run), in the order of the module doc."""
    from rifle_paddle.experiments.sweep import plan
    jobs, seen = [], set()
    for table in _tables().values():
        for job in plan(table, seeds, [f"run.output_dir={OUTPUT_DIR}"]):
            if job.name not in seen:
                seen.add(job.name)
                jobs.append(job)

    def lateness(job) -> tuple:
        late = [i for i, tag in enumerate(LAST_FIRST) if tag in (job.cell.dataset, job.cell.method.name)]
        return (max(late) + 1 if late else 0, job.seed)
    return sorted(jobs, key=lateness)


def summarize(run_dir: str, source: dict) -> dict:
    """The committed record of one finished run (a few KB), read from its run directory."""
    from rifle_paddle.experiments.analyze import load_state, relative_weight_change
    from rifle_paddle.core.epoch_numbers import epoch_index
    from rifle_paddle.experiments.runs import read_run
    run = read_run(run_dir)
    metrics, cfg = run.metrics, run.config
    dataset, method, seed = run.cell
    changes = relative_weight_change(load_state(cfg["model"]["pretrained"]),
                                     load_state(os.path.join(run_dir, "last.pdparams")), "fc")
    return {
        "run": run.name, "dataset": dataset, "method": method, "seed": seed, "source_md5": source["md5"],
        "acc_top1": metrics["final"]["acc_top1"], "num_train": metrics["num_train"], "num_test": metrics["num_test"],
        "steps": metrics["steps"], "elapsed_s": metrics["elapsed_s"],
        "setup_s": metrics.get("setup_s"),  # before training (DELTA's channel scores); not in runs before 2026-12-04
        # the summaries keep the 0-based epoch indices they were first written with, whatever metrics.json uses
        "epochs": [{"epoch": epoch_index(e, metrics), **{k: e[k] for k in ("train_loss", "lr") if k in e}}
                   for e in metrics["epochs"]],
        "rifle_epochs": [epoch_index(e, metrics) for e in metrics.get("rifle_events") or []],
        "rifle_warning": metrics.get("rifle_warning"),
        "weight_change": {k: round(v, 6) for k, v in changes.items()},
        "config": cfg, "date": datetime.date.today().isoformat(),
    }


def train_and_summarize(job) -> None:
    """The sweep's runner: train ``job`` in this process, then write its summary (a picklable module function)."""
    os.chdir(REPO)
    from rifle_paddle.experiments.sweep import train_in_process
    train_in_process(job)
    record_summary(job.run_dir)


def record_summary(run_dir: str) -> None:
    summary = summarize(run_dir, _read_json(os.path.join(SUMMARIES, "source.json")))
    _write_json(summary, summary_path(summary["run"]))


def run(args) -> int:
    from rifle_paddle.console import setup_logging
    from rifle_paddle.data import read_split
    from rifle_paddle.experiments.runs import is_complete
    from rifle_paddle.experiments.sweep import run_jobs
    setup_logging()
    read_split({"name": "fashion_mnist", "root": None}, "test")  # a missing data set fails now, clearly
    source = ensure_source()
    if source.get("foreign"):
        raise SystemExit(f"error: {source_path()} (md5 {source['md5']}) is not the source the committed runs used; "
                         f"restore that file, or move benchmarks/results/evidence/ aside to start a new evidence")
    print(f"source model: top-1 {source['acc_top1']:.4f} on {source['num_test']} source test images, trained in "
          f"{source['elapsed_s'] / 60:.1f} min (md5 {source['md5']})", flush=True)
    jobs = plan_jobs(list(range(args.seeds)))
    todo = []
    for job in jobs:
        if os.path.isfile(summary_path(job.name)):
            continue
        if is_complete(job.run_dir):  # finished before its summary was written
            record_summary(job.run_dir)
            continue
        todo.append(job)
    if args.max_runs is not None:
        todo = todo[:args.max_runs]
    print(f"{len(jobs)} runs in the protocol, {len(jobs) - len(todo)} summarized or skipped, {len(todo)} to run now",
          flush=True)
    failures = run_jobs(todo, runner=train_and_summarize, workers=args.workers)
    for job, error in failures:
        print(f"failed: {job.name}: {error}", file=sys.stderr)
    return 1 if failures else 0


def status(args) -> int:
    jobs = plan_jobs(list(range(args.seeds)))
    done = [j for j in jobs if os.path.isfile(summary_path(j.name))]
    spent = sum(_read_json(summary_path(j.name))["elapsed_s"] for j in done)
    print(f"{len(done)} of {len(jobs)} runs summarized ({spent / 3600:.1f} h of run time); next: "
          + ", ".join(j.name for j in jobs if j not in done)[:400])
    return 0


# ------------------------------------------------------------------------------------------------ the report
def load_summaries() -> list[dict]:
    folder = os.path.join(SUMMARIES, "runs")
    if not os.path.isdir(folder):
        return []
    return [_read_json(os.path.join(folder, name)) for name in sorted(os.listdir(folder)) if name.endswith(".json")]


def steps_after_last_reinit(summary: dict) -> int | None:
    """Optimizer steps the last re-drawn head trained for (None without re-initialization)."""
    if not summary["rifle_epochs"]:
        return None
    epochs = len(summary["epochs"])
    return round((epochs - max(summary["rifle_epochs"])) * summary["steps"] / epochs)


def environment() -> str:
    import paddle
    return (f"PaddlePaddle {paddle.__version__} ({'CUDA' if paddle.is_compiled_with_cuda() else 'CPU'} build), "
            f"Python {platform.python_version()}, {os.cpu_count()} CPU cores, {platform.machine()}")


def _by(summaries: list[dict], dataset: str, method: str) -> dict[int, dict]:
    return {s["seed"]: s for s in summaries if s["dataset"] == dataset and s["method"] == method}


def _accuracies(summaries: list[dict], dataset: str, method: str) -> dict[int, float]:
    """``{seed: top-1}`` of one cell."""
    return {seed: r["acc_top1"] for seed, r in _by(summaries, dataset, method).items()}


def _difference_text(pair) -> str:
    """A paired difference in points, mean ± sample std (no spread below two pairs)."""
    return f"{100 * pair.mean:+.2f}" + ("" if pair.std is None else f" ± {100 * pair.std:.2f}")


def regime_rows(summaries: list[dict], regimes: list[str], methods: list[str]) -> list[dict]:
    """Per regime and RIFLE setting: plain and RIFLE accuracies and their paired difference."""
    from rifle_paddle.experiments.report import paired_difference
    rows = []
    for dataset in regimes:
        plain = _by(summaries, dataset, "finetune")
        for method in methods:
            rifle = _by(summaries, dataset, method)
            pair = paired_difference(dataset, method, {s: r["acc_top1"] for s, r in plain.items()},
                                     {s: r["acc_top1"] for s, r in rifle.items()})
            if pair is None:
                continue
            any_run = next(iter(rifle.values()))
            rows.append({"dataset": dataset, "method": method, "pair": pair,
                         "steps_per_epoch": any_run["steps"] // len(any_run["epochs"]),
                         "tail_steps": steps_after_last_reinit(any_run),
                         "plain": [plain[s]["acc_top1"] for s in pair.seeds],
                         "rifle": [rifle[s]["acc_top1"] for s in pair.seeds]})
    return rows


def warning_threshold(rows: list[dict], min_seeds: int = 5) -> tuple[int | None, bool]:
    """The rule of docs/evidence.md part 3 on the regime curve: the smallest tail (in steps) from which every point
    with a longer or equal tail has a mean paired difference >= 0, and True; or, when the point with the longest
    tail is still negative, one more than that tail, and False (no measured tail sufficed). Only points with
    ``min_seeds`` paired seeds count; (None, False) without any. Not rounded: see :func:`short_tail_steps`."""
    points = sorted((r["tail_steps"], r["pair"].direction) for r in rows if r["pair"].n >= min_seeds)
    if not points:
        return None, False
    if points[-1][1] < 0:
        return points[-1][0] + 1, False
    threshold = points[-1][0]
    for tail, direction in reversed(points):  # a tie (mean 0 up to float rounding) is "at least 0"
        if direction < 0:
            break
        threshold = tail
    return threshold, True


def short_tail_steps(threshold: int) -> int:
    """The rule's value rounded up to a multiple of 50 steps: what goes into ``SHORT_TAIL_STEPS``
    (``rifle_paddle/callbacks/rifle.py``)."""
    return -(-threshold // 50) * 50


def curve_complete(rows: list[dict], regimes: list[str], methods: list[str], min_seeds: int = 5) -> bool:
    """Whether every (regime, RIFLE setting) point of the curve has ``min_seeds`` paired seeds."""
    counted = {(r["dataset"], r["method"]) for r in rows if r["pair"].n >= min_seeds}
    return all((d, m) in counted for d in regimes for m in methods)


def code_holds(value: int, sufficed: bool) -> bool:
    """Whether the library's warning states this finding: its threshold is ``value`` and its sentence (RIFLE stopped
    losing from that tail on) is true only when some measured tail sufficed."""
    from rifle_paddle.callbacks.rifle import SHORT_TAIL_STEPS
    return sufficed and SHORT_TAIL_STEPS == value


def threshold_text(threshold: int | None, sufficed: bool, complete: bool) -> list[str]:
    """RESULTS.md's paragraph on the threshold: the rule's value, what goes into the code, and whether the code has
    it (only once the curve is complete is the value final)."""
    from rifle_paddle.callbacks.rifle import SHORT_TAIL_STEPS
    if threshold is None:
        return ["The threshold of RIFLE's warning (docs/evidence.md part 3) needs cells with 5 paired seeds; none "
                "has them yet.", ""]
    value = short_tail_steps(threshold)
    if sufficed:
        finding = (f"{threshold} optimizer steps after the last re-initialization; from there on RIFLE did not lose "
                   "to plain fine-tuning on average")
    else:
        finding = (f"{threshold} steps. RIFLE lost on average even at the longest tail measured with 5 paired seeds "
                   f"({threshold - 1} steps), so no measured tail sufficed")
    text = f"**Threshold of RIFLE's warning** (docs/evidence.md part 3): {finding}; rounded up, {value} steps. "
    if not complete:
        text += ("Some cells of the curve have fewer than 5 seeds and do not count yet, so this value is not final; "
                 f"the code keeps {SHORT_TAIL_STEPS}.")
    elif code_holds(value, sufficed):
        text += ("`SHORT_TAIL_STEPS` and the warning's sentence (`SHORT_TAIL_FINDING`) in "
                 "`rifle_paddle/callbacks/rifle.py` hold this finding.")
    elif sufficed:
        text += (f"**The code disagrees**: `rifle_paddle/callbacks/rifle.py` has `SHORT_TAIL_STEPS = "
                 f"{SHORT_TAIL_STEPS}`; set it to {value}.")
    else:
        text += (f"**The code disagrees**: the warning in `rifle_paddle/callbacks/rifle.py` says RIFLE stopped losing "
                 f"from {SHORT_TAIL_STEPS} steps on, but no measured tail sufficed; set `SHORT_TAIL_STEPS` to "
                 f"{value} and rewrite `SHORT_TAIL_FINDING`.")
    return [text, ""]


def plot_regime_curve(rows: list[dict], path: str, min_seeds: int = 5) -> str:
    from rifle_paddle.experiments.artifacts import pyplot, save_figure
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    for i, method in enumerate(sorted({r["method"] for r in rows})):
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["tail_steps"])
        xs = [r["tail_steps"] for r in mine]
        for r in mine:
            ax.scatter([r["tail_steps"]] * r["pair"].n, [100 * d for d in r["pair"].differences], s=12,
                       color=f"C{i}", alpha=0.45)
        means = [100 * r["pair"].mean for r in mine]
        errs = [100 * (r["pair"].std or 0) / np.sqrt(r["pair"].n) for r in mine]
        ax.errorbar(xs, means, yerr=errs, color=f"C{i}", marker="o", capsize=3, label=f"{method} (mean ± s.e.)")
        for r, x, m in zip(mine, xs, means):
            if r["pair"].n < min_seeds:  # not yet a cell of the protocol: hollow, with its seed count
                ax.plot([x], [m], marker="o", markersize=9, color="white", markeredgecolor=f"C{i}")
                ax.annotate(f"n={r['pair'].n}", (x, m), textcoords="offset points", xytext=(6, 6), fontsize=8,
                            color=f"C{i}")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("optimizer steps after the last re-initialization")
    ax.set_ylabel("RIFLE − plain fine-tuning, top-1 (points)")
    ax.set_title(f"Paired difference per seed (dots) and mean, by data regime\n(hollow: fewer than {min_seeds} seeds yet)",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


#: Paired comparisons other than "against plain fine-tuning" (added after results, 2026-12-04; the protocol reports
#: only those against plain): what one switch changes with everything else equal. (method, its reference, question)
SECONDARY = [("l2sp_dtnh", "l2sp", "DTNH's own effect on L2-SP"),
             ("rifle_l2sp", "l2sp", "RIFLE on top of L2-SP"),
             ("rifle_reset", "rifle", "resetting momentum at each re-initialization (ours)")]


def secondary_rows(summaries: list[dict], dataset: str) -> list[tuple[str, str, str, object]]:
    """``(method, reference, question, paired difference)`` for each comparison of ``SECONDARY`` that has runs."""
    from rifle_paddle.experiments.report import paired_difference
    rows = []
    for method, reference, question in SECONDARY:
        pair = paired_difference(dataset, method, _accuracies(summaries, dataset, reference),
                                 _accuracies(summaries, dataset, method))
        if pair is not None:
            rows.append((method, reference, question, pair))
    return rows


def never_hurt_reading(summaries: list[dict], dataset: str, baseline: str) -> str | None:
    """Whether DTNH's "never hurt" claim was exercised (L2-SP significantly below plain fine-tuning) and how L2-SP +
    DTNH then fared against plain fine-tuning; None until both have runs."""
    from rifle_paddle.experiments.report import paired_difference
    plain = _accuracies(summaries, dataset, baseline)
    l2sp, dtnh = (paired_difference(dataset, m, plain, _accuracies(summaries, dataset, m)) for m in ("l2sp", "l2sp_dtnh"))
    if l2sp is None or dtnh is None:
        return None
    if not l2sp.significantly_worse():
        return ("L2-SP did not hurt significantly here, so DTNH's \"never hurt\" claim was not exercised "
                f"(L2-SP − plain {100 * l2sp.mean:+.2f} points, {l2sp.verdict()}).")
    return (f"L2-SP hurt here ({100 * l2sp.mean:+.2f} points against plain fine-tuning, {l2sp.verdict()}), so "
            "DTNH's \"never hurt\" claim was exercised: L2-SP + DTNH against plain fine-tuning "
            f"{100 * dtnh.mean:+.2f} points, {dtnh.verdict()}: "
            + ("it still hurt." if dtnh.significantly_worse() else "not significantly below plain fine-tuning."))


def _secondary_comparisons(summaries: list[dict], dataset: str, table) -> list[str]:
    from rifle_paddle.experiments.artifacts import markdown_table
    rows = secondary_rows(summaries, dataset)
    if not rows:
        return []
    titles = {name: m.title for name, m in table.methods.items()}
    body = [[question, f"{titles[method]} − {titles[reference]}", pair.n, _difference_text(pair),
             " ".join(f"{100 * d:+.1f}" for d in pair.differences), pair.verdict()]
            for method, reference, question, pair in rows]
    text = ["### One switch at a time (added after results, 2026-12-04)", "",
            "Paired differences between two methods that differ by one switch, same seeds and images; the protocol "
            "fixed only the comparisons with plain fine-tuning above.", "",
            markdown_table(["Question", "Comparison", "n", "Difference (points)", "Per seed", "Verdict"], body), ""]
    reading = never_hurt_reading(summaries, dataset, table.baseline)
    return text + ([f"**DTNH.** {reading}", ""] if reading else [])


def stage_change(summary: dict) -> dict[str, float]:
    """Mean relative weight change per stage (conv1, layer1 ... layer4) of one run."""
    stages: dict[str, list[float]] = {}
    for key, value in summary["weight_change"].items():
        stages.setdefault(key.split(".")[0], []).append(value)
    return {k: float(np.mean(v)) for k, v in stages.items()}


def write_report(summaries: list[dict], source: dict | None) -> str:
    from rifle_paddle.experiments.artifacts import markdown_table, write_text
    from rifle_paddle.experiments.report import paired_difference, sample_std
    tables = _tables()
    figures = os.path.join("benchmarks", "results")
    regimes, methods_table = tables["regimes"], tables["methods"]
    rifle_methods = [m for m in regimes.methods if m != regimes.baseline]
    rows = regime_rows(summaries, regimes.datasets, rifle_methods)
    text = ["# CPU evidence: RIFLE and the regularizers on Fashion-MNIST", "",
            f"Generated by `python benchmarks/evidence.py report` on {datetime.date.today().isoformat()} from "
            f"{len(summaries)} run summaries in `{SUMMARIES}/runs/`; the protocol, fixed before the runs, is "
            f"`docs/evidence.md`. Runs: {environment()}. The earlier CPU evidence (20 labels per class, a weak "
            "source), which motivated this protocol, is kept in [results/transfer_cpu.md](results/transfer_cpu.md).",
            ""]
    if source:
        text += [f"Source model: ResNet-18 from scratch on the 5 source classes ({source['num_train']} images), "
                 f"top-1 {100 * source['acc_top1']:.2f} % on its {source['num_test']} test images, trained in "
                 f"{source['elapsed_s'] / 60:.1f} min (md5 `{source['md5']}`).", ""]
    mixed = {s["source_md5"] for s in summaries}
    if len(mixed) > 1:
        text += [f"**Warning**: the summaries come from {len(mixed)} different source models: {sorted(mixed)}.", ""]
    text += ["## 1. When does RIFLE pay off? (the regime curve)", "",
             "Top-1 % on the 5,000 target test images after the last epoch; the paired difference RIFLE − plain per "
             "seed (same images, same source), its mean ± sample standard deviation and a two-sided paired t-test. "
             "Steps after the last re-initialization: what the last re-drawn head trains for.", ""]
    headers = ["Regime", "Steps/epoch", "RIFLE", "Steps after last re-init", "n", "Plain", "RIFLE (mean)",
               "RIFLE − plain", "Per seed", "Verdict"]
    body = [[r["dataset"], r["steps_per_epoch"], r["method"], r["tail_steps"], r["pair"].n,
             f"{100 * np.mean(r['plain']):.2f}", f"{100 * np.mean(r['rifle']):.2f}",
             _difference_text(r["pair"]),
             " ".join(f"{100 * d:+.1f}" for d in r["pair"].differences), r["pair"].verdict()] for r in rows]
    text += [markdown_table(headers, body) if body else "No run of part 1 is finished yet.", ""]
    threshold, sufficed = warning_threshold(rows)
    text += threshold_text(threshold, sufficed, curve_complete(rows, regimes.datasets, rifle_methods))
    if rows:
        png = plot_regime_curve(rows, os.path.join(figures, "evidence_regime_curve.png"))
        text += [f"![regime curve](results/{os.path.basename(png)})", ""]
    text += ["## 2. The method table (192 labels per class, 30 steps an epoch)", ""]
    dataset = methods_table.datasets[0]
    plain = _accuracies(summaries, dataset, methods_table.baseline)
    body = []
    for name, method in methods_table.methods.items():
        runs = _by(summaries, dataset, name)
        if not runs:
            body.append([method.title, 0, "not run yet", "", ""])
            continue
        values = [r["acc_top1"] for r in runs.values()]
        std = sample_std(values)
        pair = None if name == methods_table.baseline else paired_difference(
            dataset, name, plain, _accuracies(summaries, dataset, name))
        body.append([method.title, len(values), f"{100 * np.mean(values):.2f}"
                     + (f" ± {100 * std:.2f}" if std is not None else ""),
                     "" if pair is None else _difference_text(pair),
                     "" if pair is None else pair.verdict()])
    text += [markdown_table(["Method", "n", "Top-1 %", "− plain (paired)", "Verdict"], body), ""]
    text += _secondary_comparisons(summaries, dataset, methods_table)
    text += ["### Where the weights moved", "",
             "Relative change `||w − w0|| / ||w0||` from the source weights after training, per stage (mean over "
             "the stage's layers, then over seeds); conv1 is the input side. RIFLE's claim: the deep (input-side) "
             "layers move more than under plain fine-tuning.", ""]
    stage_rows = []
    for name, method in methods_table.methods.items():
        runs = list(_by(summaries, dataset, name).values())
        if runs:
            per_run = [stage_change(r) for r in runs]
            stages = list(per_run[0])
            stage_rows.append([method.title] + [f"{np.mean([p[k] for p in per_run]):.4f}" for k in stages])
    if stage_rows:
        text += [markdown_table(["Method"] + stages, stage_rows), ""]
    total = sum(s["elapsed_s"] for s in summaries)
    text += ["## Cost", ""]
    if summaries:
        text += [f"{len(summaries)} runs, {total / 3600:.1f} h of run wall time in all (two at a time). "
                 "Median per run and regime: " + ", ".join(
                 f"{d} {np.median([s['elapsed_s'] for s in summaries if s['dataset'] == d]) / 60:.1f} min"
                     for d in regimes.datasets if any(s["dataset"] == d for s in summaries)) + ".", ""]
        text += setup_text(summaries)
    else:
        text += ["No run finished yet.", ""]
    return write_text("\n".join(text), RESULTS)


def setup_text(summaries: list[dict]) -> list[str]:
    """The time before training (``setup_s``: data, model, DELTA's channel scores), not in the run wall time above;
    recorded in summaries written since 2026-12-04 only, so per method over the runs that have it."""
    recorded: dict[str, list[float]] = {}
    for s in summaries:
        if s.get("setup_s") is not None:
            recorded.setdefault(s["method"], []).append(s["setup_s"])
    if not recorded:
        return []
    per_method = [f"{method} {np.median(values) / 60:.1f} min ({len(values)} run{'s' * (len(values) != 1)})"
                  for method, values in sorted(recorded.items())]
    return ["Before training (not in the wall time above; recorded since 2026-12-04), median per run: "
            + ", ".join(per_method) + ".", ""]


def report(args) -> int:
    summaries = load_summaries()
    path = write_report(summaries, _read_json(os.path.join(SUMMARIES, "source.json")))
    with open(path, encoding="utf-8") as f:
        print(f.read())
    return 0


# ------------------------------------------------------------------------------------------------ plumbing
def _read_json(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _write_json(data: dict, path: str) -> None:
    from rifle_paddle.core.files import atomic_write_text
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", path)


def main(argv=None) -> int:
    from rifle_paddle.experiments.sweep import positive_int
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("run", "status", "report"))
    p.add_argument("--seeds", type=positive_int, default=5, help="seeds 0..N-1 per cell (default 5, the protocol's)")
    p.add_argument("--workers", type=positive_int, default=min(2, os.cpu_count() or 1),
                   help="runs at once, one process each (default 2)")
    p.add_argument("--max-runs", type=positive_int, help="stop after this many runs (default: all)")
    args = p.parse_args(argv)
    os.chdir(REPO)
    return {"run": run, "status": status, "report": report}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
