"""Real-data transfer on a CPU: plain fine-tuning, RIFLE, L2-SP, L2-SP + DTNH and RIFLE + L2-SP, several seeds.

The papers' tables need GPUs and downloads; this is the scaled-down, honest version that runs offline on 2 cores
in about an hour (configs/tables/fashion_mnist_cpu.yaml, configs/datasets/fashion_mnist.yaml):

1. source: ResNet-18 trained from scratch on 5 Fashion-MNIST classes (configs/fashion_mnist/source_resnet18.yaml,
   through ``rifle_paddle.experiments.pretrain``; cached in output/weights/ and reused);
2. target: the 5 other classes with 20 labels each, every method from those weights, seeds 0..N-1, through the
   sweep (seed ``s`` of every method trains on the same images, so the comparison is paired);
3. ``benchmarks/results/transfer_cpu.md``: mean +- std top-1 per method, the paired difference to plain fine-tuning with a
   paired t-test, the per-layer weight change from the source weights (the RIFLE paper's mechanism) and the
   training-loss curves around the re-initializations, with the figures under ``benchmarks/results/``.

    python benchmarks/transfer_cpu.py                          # 5 seeds, 2 runs at a time (~1 h on 2 cores)
    python benchmarks/transfer_cpu.py --seeds 8                # adds seeds 5 to 7; finished runs are kept
    python benchmarks/transfer_cpu.py --output-dir output/transfer_cpu_r2 -o rifle.num_reinits=2

Every finished run is kept and skipped when the command is run again, so an interrupted benchmark continues where it
stopped. Overrides (``-o``) apply to every transfer run; give them their own ``--output-dir``, or the runs made
without them are reused. Data: ``apt-get install dataset-fashion-mnist`` (see datasets/README.md).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from collections import OrderedDict

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

TABLE = os.path.join("configs", "tables", "fashion_mnist_cpu.yaml")
SOURCE_CONFIG = os.path.join("configs", "fashion_mnist", "source_resnet18.yaml")
CURVE_METHODS = ("finetune", "rifle", "rifle_l2sp")


def _parser() -> argparse.ArgumentParser:
    from rifle_paddle.experiments.sweep import positive_int
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=positive_int, default=5, help="seeds 0..N-1 per method (default 5)")
    p.add_argument("--methods", help="comma-separated subset of the table's methods (default: all)")
    p.add_argument("--output-dir", default=os.path.join("output", "transfer_cpu"), help="where the runs go")
    p.add_argument("--results", default=os.path.join("benchmarks", "results", "transfer_cpu.md"),
                   help="the report to write (benchmarks/RESULTS.md is the current evidence's: benchmarks/evidence.py)")
    p.add_argument("--workers", type=positive_int, default=min(2, os.cpu_count() or 1),
                   help="runs at once, one process each (default: 2, or 1 on a single core)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every transfer run (repeatable)")
    return p


def source_weights(overrides: list[str]) -> tuple[str, float]:
    """The source checkpoint the table's configs point at, trained now if it is not there yet."""
    from rifle_paddle.config import load_config
    from rifle_paddle.experiments.pretrain import pretrain
    target = load_config(os.path.join("configs", "fashion_mnist", "resnet18_finetune.yaml"), overrides)
    path = target["model"]["pretrained"]
    start = time.time()
    if not os.path.isfile(path):
        print(f"[1/3] pretraining the source model -> {path}", flush=True)
        pretrain(load_config(SOURCE_CONFIG, ["run.name=fashion_mnist-source", "run.overwrite=true"]), path)
    else:
        print(f"[1/3] source model: {path} (cached; delete it to pretrain again)", flush=True)
    return path, time.time() - start


def mean_weight_change(runs_by_method: dict[str, list[str]]) -> "OrderedDict[str, OrderedDict[str, float]]":
    """Per method, the per-layer relative change from the source weights averaged over its seeds."""
    from rifle_paddle.experiments.analyze import weight_change
    out = OrderedDict()
    for method, run_dirs in runs_by_method.items():
        changes, _ = weight_change(run_dirs)
        layers = list(next(iter(changes.values())))
        out[method] = OrderedDict((k, float(np.mean([c[k] for c in changes.values()]))) for k in layers)
    return out


def plot_loss_curves(runs: dict, path: str) -> str:
    """Training loss per epoch of one seed, re-initialization epochs marked: the jump and the re-convergence."""
    from rifle_paddle.experiments.artifacts import pyplot, save_figure
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 3.6))
    for i, (method, run) in enumerate(runs.items()):
        epochs = run.metrics["epochs"]
        ax.plot([e["epoch"] + 1 for e in epochs], [e["train_loss"] for e in epochs], label=method, color=f"C{i}")
        for event in run.metrics.get("rifle_events") or []:
            ax.axvline(event["epoch"] + 0.5, color=f"C{i}", alpha=0.3, linestyle="--")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (epoch mean)")
    ax.set_yscale("log")
    ax.set_title("Training loss; dashed: classifier re-initialized before that epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def protocol(overrides: list[str]) -> str:
    """The protocol paragraph, read from the configs the runs used (so it cannot go stale)."""
    from rifle_paddle.callbacks.rifle import rifle_schedule
    from rifle_paddle.config import load_config
    from rifle_paddle.data.fashion_mnist import CLASSES
    fine = load_config(os.path.join("configs", "fashion_mnist", "resnet18_finetune.yaml"), overrides)
    rifle = load_config(os.path.join("configs", "fashion_mnist", "resnet18_rifle.yaml"), overrides)
    source = load_config(SOURCE_CONFIG)
    d, t, r = fine["data"], fine["train"], rifle["rifle"]
    names = lambda idx: ", ".join(CLASSES[i] for i in idx)  # noqa: E731
    reinits = rifle_schedule(t["epochs"], r["num_reinits"], r["min_tail_epochs"], r["epochs"])
    return (f"Protocol (configs/datasets/fashion_mnist.yaml, configs/tables/fashion_mnist_cpu.yaml): "
            f"{source['model']['arch']} trained from scratch on the source classes ({names(source['data']['classes'])}; "
            f"{source['data']['train_per_class']} images each, {source['train']['epochs']} epochs), then fine-tuned on "
            f"the target classes ({names(d['classes'])}) with {d['train_per_class']} labelled images per class, "
            f"{d['image_size']} px, {t['epochs']} epochs, batch {d['batch_size']}, SGD momentum {t['momentum']}, "
            f"lr {t['lr']} with lr_schedule {t['lr_schedule']}, weight decay {t['weight_decay']}, training "
            f"transform {d['train_transform']}, order {d['order']}, drop_last {str(d['drop_last']).lower()}; tested "
            f"once after the last epoch on every test image of the target classes. RIFLE: {r['num_reinits']} "
            f"re-initializations of the classifier, before epochs {', '.join(str(e + 1) for e in reinits)} "
            f"(1-based), {r['init']}, momentum reset: {str(r['reset_optimizer_state']).lower()}. L2-SP: alpha = "
            f"beta = 0.01 towards the source weights. DTNH: per {rifle['dtnh']['granularity']}.")


def environment() -> str:
    import paddle
    return (f"PaddlePaddle {paddle.__version__} ({'CUDA' if paddle.is_compiled_with_cuda() else 'CPU'} build), "
            f"Python {platform.python_version()}, {os.cpu_count()} CPU cores, {platform.machine()}")


def write_results(args, report, complete_runs: list, pretrain_s: float, sweep_s: float) -> str:
    from rifle_paddle.experiments.analyze import plot_weight_change, stage_means
    from rifle_paddle.experiments.artifacts import markdown_table, write_text
    from rifle_paddle.experiments.report import bar_chart, to_markdown
    figures = os.path.join("benchmarks", "results")
    runs = {m: [r for r in complete_runs if r.cell[1] == m] for m in report.methods}
    by_method = {m: [r.path for r in sorted(rs, key=lambda r: r.cell[2])] for m, rs in runs.items() if rs}
    changes = mean_weight_change(by_method)
    stage_headers, stage_rows = stage_means(changes)
    weight_png = plot_weight_change(changes, os.path.join(figures, "transfer_cpu_weight_change.png"))
    seed0 = {m: next(r for r in runs[m] if r.cell[2] == min(x.cell[2] for x in runs[m]))
             for m in CURVE_METHODS if runs.get(m)}
    loss_png = plot_loss_curves(seed0, os.path.join(figures, "transfer_cpu_loss.png")) if seed0 else None
    bars_png = bar_chart(report, os.path.join(figures, "transfer_cpu_accuracy.png"))
    elapsed = {m: np.median([r.metrics.get("elapsed_s", np.nan) for r in rs]) for m, rs in runs.items() if rs}
    cfg_lines = " ".join(f"-o {o}" for o in args.override)
    rel = lambda p: os.path.relpath(p, os.path.dirname(args.results)).replace(os.sep, "/")  # noqa: E731
    text = [
        "# CPU evidence: transfer on real images (Fashion-MNIST)", "",
        f"Written by `python benchmarks/transfer_cpu.py --seeds {args.seeds}{' ' + cfg_lines if cfg_lines else ''}` "
        f"on {datetime.date.today().isoformat()}; every number below comes from the runs in `{args.output_dir}/`. "
        f"{environment()}.", "",
        protocol(args.override), "",
        to_markdown(report, args.output_dir).replace("# Top-1 test accuracy (%)", "## Top-1 test accuracy (%)", 1),
        f"![accuracy]({rel(bars_png)})", "",
        "## Where the weights moved", "",
        "Relative change `||w - w0|| / ||w0||` of each backbone layer from the source weights after training, "
        "averaged over the seeds, then averaged per stage (conv1 is the input side). The RIFLE paper's claim is "
        "that re-initializing the classifier makes the deep (input-side) layers move more than plain "
        "fine-tuning does.", "",
        markdown_table(stage_headers, [[row[0]] + [f"{v:.4f}" for v in row[1:]] for row in stage_rows]),
        f"![weight change]({rel(weight_png)})", ""]
    if loss_png:
        text += ["## Training loss around the re-initializations (seed "
                 f"{min(r.cell[2] for r in seed0.values())})", "", f"![loss]({rel(loss_png)})", ""]
    total_s = sum(r.metrics.get("elapsed_s", 0.0) for r in complete_runs)
    pretrain = (f"{pretrain_s / 60:.1f} min (ResNet-18 from scratch, this invocation)" if pretrain_s > 1 else
                "cached from an earlier invocation (delete the checkpoint to measure it again)")
    text += ["## Cost", "",
             f"Pretraining the source model: {pretrain}. Transfer: {len(complete_runs)} runs, "
             f"{total_s / 60:.1f} min of run wall time in all ({args.workers} at a time: about "
             f"{total_s / 60 / max(1, args.workers):.0f} min); this invocation ran them for {sweep_s / 60:.1f} min. "
             "Median wall time of one run (training and the final test), per method: " +
             ", ".join(f"{m} {s:.0f} s" for m, s in elapsed.items()) + ".", ""]
    return write_text("\n".join(text), args.results)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    os.chdir(REPO)
    from rifle_paddle.config import ConfigError
    from rifle_paddle.console import setup_logging
    from rifle_paddle.data import DataError, read_split
    from rifle_paddle.experiments.matrix import load_table
    from rifle_paddle.experiments.report import build_report
    from rifle_paddle.experiments.runs import find_runs
    from rifle_paddle.experiments.sweep import SweepError, plan, run_jobs
    setup_logging()
    try:
        read_split({"name": "fashion_mnist", "root": None}, "test")
        table = load_table(TABLE)
        methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
        overrides = list(args.override) + [f"run.output_dir={args.output_dir}"]
        jobs = plan(table, list(range(args.seeds)), overrides, methods=methods)
    except (DataError, ConfigError, SweepError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _, pretrain_s = source_weights(args.override)
    todo = [j for j in jobs if j.state != "done"]
    print(f"[2/3] {len(jobs)} transfer runs, {len(todo)} to do, in {args.output_dir}", flush=True)
    start = time.time()
    failures = run_jobs(jobs, workers=args.workers)
    sweep_s = time.time() - start
    if failures:
        for job, error in failures:
            print(f"failed: {job.name}: {error}", file=sys.stderr)
        return 1
    cells = {(c.dataset, c.method.name) for c in table.cells}
    runs = [r for r in find_runs(args.output_dir) if r.cell is not None and r.cell[:2] in cells
            and r.cell[2] < args.seeds]
    report = build_report(runs, baseline=table.baseline,
                          order=(table.datasets, list(table.methods), {n: m.title for n, m in table.methods.items()}))
    path = write_results(args, report, [r for r in runs if r.complete], pretrain_s, sweep_s)
    print(f"[3/3] written {path}")
    with open(path, encoding="utf-8") as f:
        print(f.read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
