"""Build a paper-style results table from run directories.

    python -m rifle_paddle.experiments.report output/                   # -> output/report/results.{md,csv,png}
    python -m rifle_paddle.experiments.report output/ --metric best --out results/

Every finished run under the folder (a ``metrics.json`` with its final accuracy) counts once in its cell, which
is read from the run's ``config.yaml`` (``run.cell`` and ``run.seed``; see ``runs.Run.cell``), never trusted from
the folder's name: a folder whose name says otherwise is reported as its config says, with a warning. Per cell: the mean and the sample standard deviation (n - 1) of the
top-1 test accuracy over seeds, the difference of that mean to the baseline row (plain fine-tuning) of the same
data set, and the published number where ``published.yaml`` has one, with its source.

Metric: ``final`` (default) is the accuracy after the last epoch, the protocol of the RIFLE authors' code;
``best`` is the best epoch's, which selects on the test set and flatters every method, so it is opt-in.
Rows and columns follow the tables in ``configs/tables/`` (their order and titles) when that folder is found;
``--table configs/tables/<name>.yaml`` restricts the report to that table's cells.
"""
from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass, field

import numpy as np
import yaml

from ..console import module_parser
from .artifacts import csv_text, markdown_table, pyplot, save_figure, write_text
from ..config import CONFIGS_DIR
from .matrix import TableError, dataset_title, load_table
from .runs import Run, find_runs

PUBLISHED_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "published.yaml")


class ReportError(ValueError):
    """The runs cannot be turned into a table (the message says why)."""


def load_published(path: str = PUBLISHED_PATH) -> dict[tuple[str, str], dict]:
    """``{(dataset, method): {'acc_top1': fraction, 'kind': short label, 'source': text}}``; every number must
    cite its source and say what kind of source it is (``kind``, printed beside it: e.g. "authors' code README",
    never "paper" unless the number was read in the paper)."""
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    published, problems = {}, []
    for dataset, methods in data.items():
        for method, entry in (methods or {}).items():
            entry = entry or {}
            value, source, kind = entry.get("acc_top1"), entry.get("source"), entry.get("kind")
            if not isinstance(value, (int, float)) or not 0 <= value <= 1 or not source or not kind:
                problems.append(f"{dataset}/{method}: needs acc_top1 (a fraction), a kind and a source")
                continue
            published[(dataset, method)] = {"acc_top1": float(value), "kind": str(kind),
                                            "source": " ".join(str(source).split())}
    if problems:
        raise ReportError(f"{path}: " + "; ".join(problems))
    return published


def sample_std(values: list[float]) -> float | None:
    """Sample standard deviation (n - 1) over seeds; undefined (None) for one seed."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


class _PerSeed:
    """``n``, ``mean`` and sample ``std`` of the per-seed numbers a result names in ``_sample``."""

    _sample = "values"

    @property
    def n(self) -> int:
        return len(getattr(self, self._sample))

    @property
    def mean(self) -> float:
        return float(np.mean(getattr(self, self._sample)))

    @property
    def std(self) -> float | None:
        return sample_std(getattr(self, self._sample))


@dataclass
class CellResult(_PerSeed):
    dataset: str
    method: str
    seeds: list[int]
    values: list[float]  # fractions, one per seed
    delta: float | None = None  # difference of the means to the baseline row, fraction
    published: dict | None = None


@dataclass
class PairedDifference(_PerSeed):
    """A method against the baseline on the seeds both have: seed ``s`` of both saw the same training images and
    started from the same weights, so the per-seed difference removes the split-to-split variance that dominates
    few-label runs. ``p_value``: two-sided paired t-test (None below two pairs or with identical differences)."""

    dataset: str
    method: str
    seeds: list[int]
    differences: list[float]  # fractions, method minus baseline, per seed
    p_value: float | None
    _sample = "differences"

    #: Below this a mean difference (a fraction of the test set) is float rounding, not a measurement: differences of
    #: accuracies that agree on average come out as -2e-17, and such a tie must read as a tie.
    TIE = 1e-9

    @property
    def direction(self) -> int:
        """+1 if the method is better on average, -1 if worse, 0 for a tie."""
        return 0 if abs(self.mean) < self.TIE else (1 if self.mean > 0 else -1)

    @property
    def wins(self) -> int:
        return sum(d > 0 for d in self.differences)

    @property
    def losses(self) -> int:
        return sum(d < 0 for d in self.differences)

    def significantly_worse(self, level: float = 0.05) -> bool:
        """Below the baseline on average, with a paired test under ``level``."""
        return self.direction < 0 and self.p_value is not None and self.p_value < level

    def verdict(self, level: float = 0.05) -> str:
        """One sentence a reader can take at face value."""
        if self.p_value is None:
            return "too few seeds for a test" if self.n < 2 else "identical on every seed pair"
        if self.direction == 0:
            return f"the same on average ({self.n} pairs, p = {self.p_value:.2f})"
        direction = "better" if self.direction > 0 else "worse"
        if self.p_value < level:
            return f"{direction} (p = {self.p_value:.3f} < {level})"
        return f"{direction} on average, not significant at {level} (p = {self.p_value:.2f}, {self.n} pairs)"


def paired_difference(dataset: str, method: str, baseline: dict[int, float],
                      values: dict[int, float]) -> PairedDifference | None:
    """``values`` against ``baseline`` (both ``{seed: accuracy}``) over the seeds both have; None if none."""
    from scipy import stats  # late: only the reports need SciPy
    seeds = [s for s in values if s in baseline]
    if not seeds:
        return None
    diffs = [values[s] - baseline[s] for s in seeds]
    p = None
    if len(diffs) >= 2 and np.ptp(diffs) > 0:
        p = float(stats.ttest_1samp(diffs, 0.0).pvalue)  # = ttest_rel(method, baseline)
    return PairedDifference(dataset, method, seeds, diffs, p)


def paired_differences(report: "Report") -> list[PairedDifference]:
    """Every non-baseline cell against the baseline of its data set, over the seeds both have."""
    out = []
    for dataset in report.datasets:
        base = report.cells.get((dataset, report.baseline))
        if base is None:
            continue
        for method in report.methods:
            cell = report.cells.get((dataset, method))
            if method == report.baseline or cell is None:
                continue
            pair = paired_difference(dataset, method, dict(zip(base.seeds, base.values)),
                                     dict(zip(cell.seeds, cell.values)))
            if pair is not None:
                out.append(pair)
    return out


def paired_markdown(report: "Report") -> str:
    rows = []
    for pd_ in paired_differences(report):
        spread = f" ± {_pct(pd_.std)}" if pd_.std is not None else ""
        rows.append([dataset_title(pd_.dataset), report.title(pd_.method), pd_.n,
                     _signed_pct(pd_.mean) + spread, " ".join(_signed_pct(d) for d in pd_.differences),
                     f"{pd_.wins}/{pd_.n}",
                     "—" if pd_.p_value is None else f"{pd_.p_value:.3f}", pd_.verdict()])
    if not rows:
        return ""
    headers = ["Data set", "Method", "pairs", f"Δ vs {report.title(report.baseline)} (points)", "per seed",
               "seeds better",
               "p (paired t)", "verdict"]
    return "\n".join([f"## Paired differences to {report.title(report.baseline)}", "",
                      "Per seed, method minus baseline (same training images, same starting weights): mean ± "
                      "sample std of the differences, how many seeds the method won, and a two-sided paired "
                      "t-test.", "", markdown_table(headers, rows)])


@dataclass
class Report:
    metric: str
    baseline: str
    datasets: list[str]
    methods: list[str]
    cells: dict[tuple[str, str], CellResult]
    method_titles: dict[str, str] = field(default_factory=dict)
    incomplete: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def title(self, method: str) -> str:
        return self.method_titles.get(method, method)


def table_order(configs_dir: str = CONFIGS_DIR) -> tuple[list[str], list[str], dict[str, str]]:
    """Data set order, method order and method titles from every table in ``configs_dir/tables``."""
    datasets, methods, titles = [], [], {}
    for path in sorted(glob.glob(os.path.join(configs_dir, "tables", "*.yaml"))):
        try:
            table = load_table(path)
        except TableError:
            continue  # a broken table must not keep results from being reported; configgen reports it
        datasets += [d for d in table.datasets if d not in datasets]
        for name, method in table.methods.items():
            if name not in methods:
                methods.append(name)
                titles[name] = method.title
    return datasets, methods, titles


def _ordered(present: set[str], preferred: list[str], first: str | None = None) -> list[str]:
    rest = [x for x in preferred if x in present] + sorted(present - set(preferred))
    return ([first] if first in present else []) + [x for x in rest if x != first]


def build_report(runs: list[Run], metric: str = "final", baseline: str = "finetune",
                 published: dict | None = None, order: tuple | None = None) -> Report:
    """Group the complete table runs by cell and summarize them."""
    if metric not in ("final", "best"):
        raise ReportError(f"unknown metric '{metric}': use 'final' or 'best'")
    by_cell: dict[tuple[str, str], dict[int, float]] = {}
    where: dict[tuple[str, str, int], str] = {}
    incomplete, ignored = [], []
    warnings = [run.mismatch for run in runs if run.mismatch]
    for run in runs:
        if run.cell is None:
            ignored.append(run.path)
            continue
        if not run.complete:
            incomplete.append(run.path)
            continue
        dataset, method, seed = run.cell
        if (dataset, method, seed) in where:
            raise ReportError(f"two runs of {dataset}/{method}, seed {seed}: {where[(dataset, method, seed)]} and "
                              f"{run.path}; "
                              f"report one output folder at a time")
        value = run.accuracy(metric)
        if value is None:  # finished, but never evaluated during training: no best epoch
            incomplete.append(run.path)
            continue
        where[(dataset, method, seed)] = run.path
        by_cell.setdefault((dataset, method), {})[seed] = float(value)
    if not by_cell:
        raise ReportError("no complete run (a folder with config.yaml and a finished metrics.json) was found" + (f"; {len(incomplete)} incomplete" if incomplete else ""))
    published = published or {}
    cells = {}
    for (dataset, method), per_seed in by_cell.items():
        seeds = sorted(per_seed)
        cells[(dataset, method)] = CellResult(dataset, method, seeds, [per_seed[s] for s in seeds],
                                              published=published.get((dataset, method)))
    for (dataset, method), cell in cells.items():
        base = cells.get((dataset, baseline))
        if base is not None:
            cell.delta = cell.mean - base.mean
    dataset_order, method_order, titles = order or ([], [], {})
    return Report(metric=metric, baseline=baseline,
                  datasets=_ordered({d for d, _ in cells}, dataset_order),
                  methods=_ordered({m for _, m in cells}, method_order, first=baseline),
                  cells=cells, method_titles=titles, incomplete=incomplete, ignored=ignored,
                  warnings=warnings)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _signed_pct(x: float) -> str:
    return f"{100 * x:+.2f}"


def to_markdown(report: Report, source_label: str = "") -> str:
    sources: list[str] = []
    typical_n = max((c.n for c in report.cells.values()), default=0)

    def cell_text(dataset: str, method: str) -> str:
        cell = report.cells.get((dataset, method))
        parts = []
        if cell is not None:
            parts.append(_pct(cell.mean) + (f" ± {_pct(cell.std)}" if cell.std is not None else ""))
            if cell.delta is not None and method != report.baseline:
                parts.append(f"({_signed_pct(cell.delta)})")
            if cell.n != typical_n:
                parts.append(f"[n={cell.n}]")
        pub = cell.published if cell is not None else None
        if pub is not None:
            if pub["source"] not in sources:
                sources.append(pub["source"])
            parts.append(f"· {pub['kind']} {_pct(pub['acc_top1'])} [{sources.index(pub['source']) + 1}]")
        return " ".join(parts) or "—"

    headers = ["Method"] + [dataset_title(d) for d in report.datasets]
    rows = [[report.title(m)] + [cell_text(d, m) for d in report.datasets] for m in report.methods]
    which = "after the last epoch" if report.metric == "final" else "at the best epoch (selected on the test set)"
    text = [f"# Top-1 test accuracy (%){f' — {source_label}' if source_label else ''}", "",
            f"Top-1 test accuracy {which}: mean ± sample standard deviation over {typical_n} "
            f"seed{'' if typical_n == 1 else 's'} "
            f"(cells with fewer are marked [n=...]); in parentheses the difference to "
            f"{report.title(report.baseline)} on the same data set; after '·' a published number, labelled by the kind of "
            f"source it was read in.", "",
            markdown_table(headers, rows)]
    paired = paired_markdown(report)
    if paired:
        text += [paired]
    if sources:
        text += ["Sources of the published numbers:", ""] + [f"{i}. {s}" for i, s in enumerate(sources, 1)] + [""]
    if report.incomplete:
        text += [f"Not counted, unfinished: {', '.join(os.path.basename(p) for p in report.incomplete)}.", ""]
    if report.warnings:
        text += ["Warnings:", ""] + [f"- {w}" for w in report.warnings] + [""]
    return "\n".join(text)


def to_csv(report: Report) -> str:
    headers = ["dataset", "method", "n", "seeds", "mean_top1_pct", "std_top1_pct", f"delta_vs_{report.baseline}_pct",
               "published_top1_pct", "published_source"]
    rows = []
    for d in report.datasets:
        for m in report.methods:
            cell = report.cells.get((d, m))
            if cell is None:
                continue
            pub = cell.published or {}
            rows.append([d, m, cell.n, " ".join(map(str, cell.seeds)), round(100 * cell.mean, 6),
                         "" if cell.std is None else round(100 * cell.std, 6),
                         "" if cell.delta is None else round(100 * cell.delta, 6),
                         "" if not pub else round(100 * pub["acc_top1"], 6), pub.get("source", "")])
    return csv_text(headers, rows)


def bar_chart_figure(report: Report):
    """Grouped bars from 0 % (bar lengths compare honestly), one group per data set and one bar per method, with
    every seed's accuracy as a dot on its bar and the published number, where there is one, as a black mark.

    The bars hide nothing and exaggerate nothing: their origin is zero, and the spread is shown as the seeds
    themselves rather than as an error bar that two seeds cannot support. Differences of a point or two are read
    from the table's paired differences, not from bar heights."""
    plt = pyplot()
    n_methods = len(report.methods)
    width = 0.8 / n_methods
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 + 0.35 * n_methods * len(report.datasets)), 4.2))
    colors = plt.get_cmap("tab10" if n_methods <= 10 else "tab20")
    marked = seeds_marked = False
    for j, method in enumerate(report.methods):
        xs, means, pub_x, pub_y, seed_x, seed_y = [], [], [], [], [], []
        for i, dataset in enumerate(report.datasets):
            cell = report.cells.get((dataset, method))
            if cell is None:
                continue
            x = i - 0.4 + (j + 0.5) * width
            xs.append(x)
            means.append(100 * cell.mean)
            offsets = np.linspace(-0.25, 0.25, cell.n) * width if cell.n > 1 else [0.0]
            seed_x += [x + o for o in offsets]
            seed_y += [100 * v for v in cell.values]
            if cell.published:
                pub_x.append(x)
                pub_y.append(100 * cell.published["acc_top1"])
        ax.bar(xs, means, width * 0.92, color=colors(j % colors.N), label=report.title(method))
        ax.scatter(seed_x, seed_y, s=9, color="black", alpha=0.6, zorder=3, linewidths=0,
                   label=None if seeds_marked else "one seed")
        seeds_marked = True
        if pub_x:
            ax.scatter(pub_x, pub_y, marker="_", s=160, color="black", zorder=4,
                       label=None if marked else "published")
            marked = True
    ax.set_xticks(range(len(report.datasets)))
    ax.set_xticklabels([dataset_title(d) for d in report.datasets])
    ax.set_ylabel("top-1 test accuracy (%)")
    ax.set_ylim(0.0, 100.0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(4, n_methods + 2), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return fig


def bar_chart(report: Report, path: str) -> str:
    return save_figure(bar_chart_figure(report), path)


def write_report(report: Report, out_dir: str, source_label: str = "") -> list[str]:
    return [write_text(to_markdown(report, source_label), os.path.join(out_dir, "results.md")),
            write_text(to_csv(report), os.path.join(out_dir, "results.csv")),
            bar_chart(report, os.path.join(out_dir, "results.png"))]


def main(argv=None) -> int:
    parser = module_parser("python -m rifle_paddle.experiments.report", __doc__)
    parser.add_argument("runs", help="folder holding the run directories (searched recursively), e.g. output/")
    parser.add_argument("--out", help="where to write results.{md,csv,png} (default: <runs>/report)")
    parser.add_argument("--metric", choices=("final", "best"), default="final",
                        help="accuracy after the last epoch (default) or at the best epoch")
    parser.add_argument("--table", help="only the cells of this table file, in its order, against its baseline")
    parser.add_argument("--baseline", help="method every delta is taken against (default: the table's, finetune)")
    parser.add_argument("--configs", default=CONFIGS_DIR,
                        help="configs folder whose tables give the row order (default: the packaged configs)")
    parser.add_argument("--published", default=PUBLISHED_PATH, help="published numbers (YAML, with sources)")
    args = parser.parse_args(argv)
    try:
        runs = find_runs(args.runs)
        if not runs:
            raise ReportError(f"{args.runs} holds no run directory (a folder with config.yaml)")
        baseline, order = "finetune", table_order(args.configs)
        if args.table:
            table = load_table(args.table)
            cells = {(c.dataset, c.method.name) for c in table.cells}
            runs = [r for r in runs if r.cell is None or r.cell[:2] in cells]
            baseline = table.baseline
            order = (table.datasets, list(table.methods), {n: m.title for n, m in table.methods.items()})
        report = build_report(runs, args.metric, args.baseline or baseline, load_published(args.published), order)
    except (FileNotFoundError, ReportError, TableError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    paths = write_report(report, args.out or os.path.join(args.runs, "report"), source_label=args.runs)
    print(to_markdown(report, args.runs))
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if report.ignored:
        print(f"({len(report.ignored)} run directories with an unreadable config.yaml were left out)",
              file=sys.stderr)
    print("written: " + ", ".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
