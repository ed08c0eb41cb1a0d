"""Analyses of finished runs. One so far, for the central claim of the RIFLE paper:

    python -m rifle_paddle.experiments.analyze weight-change output/cub200-finetune-s0 output/cub200-rifle-s0
    python -m rifle_paddle.experiments.analyze weight-change --pretrained /weights/resnet50.pdparams RUN_A RUN_B --weights best

RIFLE (Li et al., ICML 2020) argues that plain fine-tuning leaves the deep (early) layers of the backbone close to
their pretrained values, because the gradients a fitted classifier sends back are small, and that re-initializing
the classifier brings larger, meaningful updates deep into the network. ``weight-change`` measures exactly that:
for every convolution / linear layer of the backbone, in depth order, the relative distance to the pretrained
weights ``||w - w0|| / ||w0||`` (Frobenius norms), for several runs side by side. The classifier is excluded (it
has no pretrained counterpart); batch-norm parameters and statistics are not layers' weights and are left out.

Outputs ``weight_change.md`` (per layer, then per stage: the mean over the layers of ``conv1``, ``layer1`` ...),
``weight_change.csv`` and ``weight_change.png`` (one line per run over the layers), in ``--out``.
"""
from __future__ import annotations

import functools
import os
import sys
from collections import OrderedDict

import numpy as np
import paddle

from ..console import module_parser
from .artifacts import csv_text, markdown_table, pyplot, save_figure, write_text
from .runs import Run, read_run


class AnalysisError(ValueError):
    """The runs cannot be analyzed (the message says why)."""


def load_state(path: str) -> "OrderedDict[str, np.ndarray]":
    if not os.path.isfile(path):
        raise AnalysisError(f"weights not found: {path}")
    state = paddle.load(path, return_numpy=True)
    if not isinstance(state, dict):
        raise AnalysisError(f"{path} does not hold a state dict")
    return OrderedDict((k, np.asarray(v)) for k, v in state.items())


def relative_weight_change(pretrained: dict, current: dict, head_name: str) -> "OrderedDict[str, float]":
    """``{layer weight key: ||w - w0|| / ||w0||}`` in the order of ``current`` (depth order for our models).

    Only weights of layers (tensors of rank >= 2) that the pretrained state also has, with the same shape, and
    that do not belong to the classifier ``head_name``.
    """
    head_prefix = head_name + "."
    changes = OrderedDict()
    for key, w in current.items():
        if key.startswith(head_prefix) or w.ndim < 2 or key not in pretrained:
            continue
        w0 = pretrained[key]
        if w0.shape != w.shape:
            continue
        norm0 = float(np.linalg.norm(w0.astype(np.float64)))
        if norm0 == 0.0:
            continue  # relative change undefined for an all-zero pretrained tensor
        changes[key] = float(np.linalg.norm(w.astype(np.float64) - w0.astype(np.float64)) / norm0)
    return changes


def _model_cfg(run: Run) -> dict:
    return (run.config or {}).get("model") or {}


@functools.lru_cache(maxsize=None)
def _default_classifier(arch: str) -> str:
    from ..models import create_model, find_classifier
    return find_classifier(create_model(arch, num_classes=2))[0]


def classifier_name(run: Run) -> str:
    """The classifier of the run's model, found as in training (``model.head``, else ``find_classifier``)."""
    model_cfg = _model_cfg(run)
    if model_cfg.get("head"):
        return model_cfg["head"]
    if not model_cfg.get("arch"):
        raise AnalysisError(f"{run.path}: no config.yaml with model.arch; name the classifier with --head")
    return _default_classifier(model_cfg["arch"])


def pretrained_path(runs: list[Run], explicit: str | None) -> str:
    """``--pretrained``, else the one ``model.pretrained`` all runs were trained from (resolved as in training)."""
    if explicit:
        return explicit
    from ..models import PretrainedWeightsError, resolve_pretrained
    sources = {(_model_cfg(r).get("arch"), _model_cfg(r).get("pretrained")) for r in runs}
    if len(sources) != 1 or None in next(iter(sources)):
        raise AnalysisError("the runs do not name one common pretrained model (model.arch and model.pretrained in "
                            "their config.yaml); pass --pretrained PATH")
    arch, spec = next(iter(sources))
    try:
        path = resolve_pretrained(arch, spec)
    except PretrainedWeightsError as e:
        raise AnalysisError(f"{e}\n  or pass --pretrained PATH") from None
    if path is None:
        raise AnalysisError("the runs were trained from scratch (model.pretrained: none): nothing to compare to")
    return path


def stage_of(key: str) -> str:
    """``'layer3.4.conv2.weight'`` -> ``'layer3'``: the top-level block a layer belongs to."""
    return key.split(".", 1)[0]


def weight_change_table(changes: "OrderedDict[str, OrderedDict[str, float]]") -> tuple[list[str], list[list]]:
    """Per-layer rows (layers of the first run, in its order) with one column per run."""
    labels = list(changes)
    layers = list(next(iter(changes.values())))
    headers = ["#", "layer"] + labels
    rows = [[i, key.removesuffix(".weight")] + [changes[label].get(key, float("nan")) for label in labels]
            for i, key in enumerate(layers)]
    return headers, rows


def stage_means(changes: "OrderedDict[str, OrderedDict[str, float]]") -> tuple[list[str], list[list]]:
    labels = list(changes)
    stages = list(OrderedDict.fromkeys(stage_of(k) for k in next(iter(changes.values()))))
    rows = []
    for stage in stages:
        row = [stage]
        for label in labels:
            values = [v for k, v in changes[label].items() if stage_of(k) == stage]
            row.append(float(np.mean(values)) if values else float("nan"))
        rows.append(row)
    return ["stage"] + labels, rows


def _fmt(rows: list[list]) -> list[list]:
    return [[f"{v:.4f}" if isinstance(v, float) else v for v in row] for row in rows]


def plot_weight_change_figure(changes: "OrderedDict[str, OrderedDict[str, float]]",
                              highlight: list[str] | None = None):
    """Two panels, layers input to output: each run's relative change on a log axis (the layers span orders of
    magnitude), and each run's change divided by the first run's (the baseline), where "RIFLE moves the deep layers
    more" is a line above 1.

    ``highlight`` (default: the runs whose label contains ``rifle``) are drawn last, thick and opaque, so the method
    the figure is about is never hidden under the others; the rest are thin and translucent."""
    plt = pyplot()
    labels = list(changes)
    layers = list(changes[labels[0]])
    emphasized = set(highlight if highlight is not None else [lab for lab in labels if "rifle" in lab.lower()])
    order = [lab for lab in labels if lab not in emphasized] + [lab for lab in labels if lab in emphasized]
    colors = {lab: f"C{i % 10}" for i, lab in enumerate(labels)}
    fig, (ax, ratio_ax) = plt.subplots(2, 1, sharex=True, figsize=(max(7.0, 0.12 * len(layers)), 6.5),
                                       gridspec_kw={"height_ratios": [3, 2]})
    x = np.arange(len(layers))
    base = np.array([changes[labels[0]].get(k, np.nan) for k in layers])
    for z, label in enumerate(order):
        values = np.array([changes[label].get(k, np.nan) for k in layers])
        style = ({"linewidth": 2.2, "alpha": 1.0, "marker": "."} if label in emphasized else
                 {"linewidth": 1.0, "alpha": 0.55, "marker": None})
        ax.plot(x, values, label=label, color=colors[label], zorder=2 + z, **style)
        if label != labels[0]:
            ratio_ax.plot(x, values / base, color=colors[label], zorder=2 + z, **style)
    ax.set_yscale("log")
    ax.set_ylabel("||w - w0|| / ||w0||")
    ax.set_title("Relative change of each layer from its pretrained weights")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ratio_ax.axhline(1.0, color="black", linewidth=0.8)
    ratio_ax.set_yscale("log")
    ratio_ax.set_ylabel(f"ratio to {labels[0]}")
    ratio_ax.grid(alpha=0.3, which="both")
    step = max(1, len(layers) // 30)
    ratio_ax.set_xticks(range(0, len(layers), step))
    ratio_ax.set_xticklabels([layers[i].removesuffix(".weight") for i in range(0, len(layers), step)],
                             rotation=90, fontsize=7)
    ratio_ax.set_xlabel("layer (input to output)")
    return fig


def plot_weight_change(changes: "OrderedDict[str, OrderedDict[str, float]]", path: str,
                       highlight: list[str] | None = None) -> str:
    return save_figure(plot_weight_change_figure(changes, highlight), path)


def weight_change(run_dirs: list[str], pretrained: str | None = None, weights: str = "last",
                  head: str | None = None) -> tuple["OrderedDict[str, OrderedDict[str, float]]", str]:
    """``({run name: {layer key: relative change}}, pretrained weights path)``, runs in the given order."""
    if not run_dirs:
        raise AnalysisError("give at least one run directory")
    runs = [read_run(d) for d in run_dirs]
    for run in runs:
        if not os.path.isdir(run.path):
            raise AnalysisError(f"not a directory: {run.path}")
    base_path = pretrained_path(runs, pretrained)
    base = load_state(base_path)
    changes = OrderedDict()
    for run in runs:
        label = run.name if run.name not in changes else run.path
        per_layer = relative_weight_change(base, load_state(run.weights_path(weights)), head or classifier_name(run))
        if not per_layer:
            raise AnalysisError(f"{run.path}: no layer of its {weights}.pdparams matches the pretrained weights "
                                "(another architecture?)")
        changes[label] = per_layer
    return changes, base_path


def write_weight_change(changes, out_dir: str, pretrained_label: str) -> list[str]:
    headers, rows = weight_change_table(changes)
    stage_headers, stage_rows = stage_means(changes)
    md = ["# Relative weight change from the pretrained weights", "",
          f"`||w - w0|| / ||w0||` per layer (Frobenius norms; w0 from `{pretrained_label}`), classifier excluded.",
          "", "## Mean per stage", "", markdown_table(stage_headers, _fmt(stage_rows)),
          "## Per layer (input to output)", "", markdown_table(headers, _fmt(rows))]
    return [write_text("\n".join(md), os.path.join(out_dir, "weight_change.md")),
            write_text(csv_text(headers, rows), os.path.join(out_dir, "weight_change.csv")),
            plot_weight_change(changes, os.path.join(out_dir, "weight_change.png"))]


def main(argv=None) -> int:
    parser = module_parser("python -m rifle_paddle.experiments.analyze", __doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    wc = commands.add_parser("weight-change", help="per-layer relative weight change from the pretrained weights")
    wc.add_argument("runs", nargs="+", help="run directories, compared side by side")
    wc.add_argument("--pretrained", help="pretrained .pdparams (default: the runs' model.pretrained)")
    wc.add_argument("--weights", choices=("last", "best"), default="last", help="which checkpoint of each run")
    wc.add_argument("--head", help="classifier layer name (default: found from the runs' model)")
    wc.add_argument("--out", help="output folder (default: analysis/ beside the first run)")
    args = parser.parse_args(argv)
    try:
        changes, pretrained = weight_change(args.runs, args.pretrained, args.weights, args.head)
    except AnalysisError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.runs[0])), "analysis")
    paths = write_weight_change(changes, out, pretrained)
    stage_headers, stage_rows = stage_means(changes)
    print(markdown_table(stage_headers, _fmt(stage_rows)), end="")
    print("written: " + ", ".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
