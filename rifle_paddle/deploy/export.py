"""``rifle-export``: a trained run as a Paddle Inference model with its preprocessing and class names.

    rifle-export output/<run>                      # -> output/<run>/export/
    rifle-export output/<run> --weights last --out models/cub_rifle

The folder holds ``inference.json`` and ``inference.pdiparams`` (``paddle.jit.save`` of the network in evaluation
mode, input ``image`` of shape [batch, 3, crop, crop] float32, output the logits), ``preprocess.json``
(``preprocess.py``) and ``classes.json``. Load it with ``paddle.inference.Config(<dir>/inference.json,
<dir>/inference.pdiparams)`` or ``paddle.jit.load(<dir>/inference)``; ``rifle-predict`` does it for you.
"""
from __future__ import annotations

import json
import os
import sys

import yaml

from ..console import module_parser
from ..engine.classes import CLASSES_FILE, read_classes, write_classes
from ..engine.errors import RunError
from .preprocess import Preprocessing

MODEL_PREFIX = "inference"
PREPROCESS_FILE = "preprocess.json"


def _run_config(run_dir: str) -> dict:
    from ..config import load_config
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        raise RunError(f"{run_dir} is not a run directory (no config.yaml)")
    return load_config(path, [])


def _weights(run_dir: str, which: str) -> str:
    if which in ("best", "last"):
        path = os.path.join(run_dir, f"{which}.pdparams")
        if not os.path.isfile(path):
            other = "last" if which == "best" else "best"
            hint = f" (it has {other}.pdparams: --weights {other})" if os.path.isfile(
                os.path.join(run_dir, f"{other}.pdparams")) else ""
            raise RunError(f"{run_dir} has no {which}.pdparams{hint}")
        return path
    if not os.path.isfile(which):
        raise RunError(f"weights not found: {which}")
    return which


def _recorded_num_classes(run_dir: str) -> int | None:
    try:
        with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:
            return json.load(f).get("num_classes")
    except (OSError, ValueError):
        return None


def _crop_bottom(cfg: dict) -> int:
    """Rows the reader removes at the bottom of every image (FGVC-Aircraft's banner), without reading the data."""
    from ..data.fgvc_aircraft import BANNER_ROWS
    data = cfg["data"]
    return BANNER_ROWS if data["name"] == "fgvc_aircraft" and data.get("remove_banner", True) else 0


def _check_out(out_dir: str) -> None:
    """The export folder may not be a run folder (its ``classes.json`` and weights are the run's) nor a file."""
    if os.path.isfile(os.path.join(out_dir, "config.yaml")):
        raise RunError(f"--out {out_dir} is a run folder: an export there would replace its {CLASSES_FILE}; name a "
                       f"folder of its own, e.g. {os.path.join(out_dir, 'export')}")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise RunError(f"--out {out_dir} is a file, not a folder")


def _check_class_names(classes: list[str] | None, state: dict, network, head: str, weights_path: str) -> None:
    """The class names must be as many as the weights' outputs, or the exported model names the wrong classes."""
    from ..models import find_classifier
    name, _ = find_classifier(network, head)
    saved = state.get(f"{name}.weight")
    if classes is None or saved is None:
        return
    outputs = list(saved.shape)[-1]
    if outputs != len(classes):
        raise RunError(f"{weights_path} has {outputs} outputs but {CLASSES_FILE} names {len(classes)} classes: the "
                       f"exported model would name the wrong classes; export the weights of the run that wrote "
                       f"this {CLASSES_FILE}")


def export_run(run_dir: str, out_dir: str | None = None, weights: str = "best") -> str:
    """Export ``run_dir``'s network with ``weights`` (best, last or a .pdparams path) to ``out_dir``; returns it."""
    import paddle
    from paddle.static import InputSpec

    from ..core.weights import load_weights, read_state
    from ..models import create_model
    if not os.path.isdir(run_dir):
        raise RunError(f"run directory not found: {run_dir}")
    cfg = _run_config(run_dir)
    out_dir = out_dir or os.path.join(run_dir, "export")
    _check_out(out_dir)
    weights_path = _weights(run_dir, weights)
    state = read_state(weights_path)
    run_classes = read_classes(run_dir)
    num_classes = cfg["model"]["num_classes"] or _recorded_num_classes(run_dir) or len(run_classes or [])
    if not num_classes:
        raise RunError(f"cannot tell the number of classes of {run_dir}: neither its config, metrics.json nor "
                       f"{CLASSES_FILE} says; pass -o model.num_classes=... when training")
    network = create_model(cfg["model"]["arch"], num_classes=num_classes)
    _check_class_names(run_classes, state, network, cfg["model"]["head"], weights_path)
    load_weights(network, state, f"{cfg['model']['arch']} with {num_classes} classes (the run's config)")
    network.eval()
    pre = Preprocessing.from_data_config(cfg["data"], _crop_bottom(cfg))
    os.makedirs(out_dir, exist_ok=True)
    paddle.jit.save(network, os.path.join(out_dir, MODEL_PREFIX),
                    input_spec=[InputSpec([None, 3, pre.crop, pre.crop], "float32", "image")])
    with open(os.path.join(out_dir, PREPROCESS_FILE), "w", encoding="utf-8") as f:
        f.write(pre.to_json())
    classes = run_classes or [str(i) for i in range(num_classes)]  # a run from before classes.json: indices
    write_classes(out_dir, classes, cfg["data"]["name"])
    with open(os.path.join(out_dir, "export.json"), "w", encoding="utf-8") as f:
        json.dump({"run_dir": os.path.abspath(run_dir), "weights": os.path.abspath(weights_path),
                   "arch": cfg["model"]["arch"], "num_classes": num_classes,
                   "class_names": "from the run" if run_classes else "indices (the run has no classes.json)",
                   "paddle": paddle.__version__}, f, indent=2)
    return out_dir


def main(argv=None) -> int:
    parser = module_parser("rifle-export", __doc__)
    parser.add_argument("run_dir", help="a run directory (holds config.yaml and best/last.pdparams)")
    parser.add_argument("--weights", default="best", help="best (default), last, or a .pdparams file")
    parser.add_argument("--out", help="the folder to write (default: <run_dir>/export)")
    args = parser.parse_args(argv)
    from ..console import setup_logging
    setup_logging()
    try:
        out = export_run(args.run_dir, args.out, args.weights)
    except (RunError, ValueError, yaml.YAMLError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"exported to {out}: {MODEL_PREFIX}.json, {MODEL_PREFIX}.pdiparams, {PREPROCESS_FILE}, {CLASSES_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
