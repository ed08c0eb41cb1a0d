"""Command lines of ``train.py`` and ``eval.py`` (also installed as ``rifle-train`` / ``rifle-eval``).

PaddleClas conventions: ``-c config.yaml`` and repeated ``-o section.key=value`` overrides.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from .. import __version__
from ..config import ConfigError, config_listing, load_config, to_yaml
from ..config.loader import parse_override
from ..config.reference import describe_schema
from ..core import strict_json
from ..console import module_parser


def version_line() -> str:
    """``rifle-paddle X (PaddlePaddle Y, CPU|CUDA build)``: what a bug report needs first."""
    import paddle
    build = "CUDA" if paddle.is_compiled_with_cuda() else "CPU"
    return f"rifle-paddle {__version__} (PaddlePaddle {paddle.__version__}, {build} build)"


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = module_parser(prog, description, epilog="Config keys: run with --help-config; shipped configs: "
                      "--list-configs. Example:\n"
                      "  rifle-train -c cub200/resnet50_rifle -o data.root=/data/CUB_200_2011")
    p.add_argument("-c", "--config", help="YAML config: a file, or the name of a config shipped with the package "
                   "(e.g. cub200/resnet50_rifle; see --list-configs). A file may inherit others with _base_")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. -o train.epochs=40 (repeatable; value is YAML)")
    p.add_argument("--print-config", action="store_true", help="print the effective config and exit")
    p.add_argument("--help-config", action="store_true", help="list every config key with its default")
    p.add_argument("--list-configs", nargs="?", const="tables", choices=("tables", "all"),
                   help="list the configs shipped with the package and exit (all: with the demo's)")
    p.add_argument("--version", action="version", version=version_line())
    return p


def _load(args, paths_for: str) -> dict:
    """The validated config; files and directories it names are checked too, unless only printing it."""
    info_only = args.print_config or args.help_config or args.list_configs
    try:
        return load_config(args.config, args.override, paths_for=None if info_only else paths_for)
    except ConfigError as e:
        sys.exit(f"error: {e}")


def _apply_resume(args) -> None:
    """``--resume RUN`` is ``-o train.resume=RUN`` and, without ``-c``, the run's own ``config.yaml``."""
    if args.resume is None:
        return
    if args.config is None:
        args.config = os.path.join(args.resume, "config.yaml")
        if not os.path.isfile(args.config):
            run = _enclosing_run(args.resume)
            hint = f"; --resume takes the run folder: --resume {run}" if run else " (is it a run directory?)"
            sys.exit(f"error: --resume {args.resume}: no config.yaml there{hint}")
    args.override.append(f"train.resume={json.dumps(args.resume)}")  # quoted: a path is never read as a number


def _enclosing_run(path: str) -> str | None:
    """The run folder above ``path`` (a checkpoint or a file of the run given to ``--resume``), if any."""
    parent = os.path.dirname(os.path.abspath(path))
    while parent != os.path.dirname(parent):
        if os.path.isfile(os.path.join(parent, "config.yaml")):
            return parent
        parent = os.path.dirname(parent)
    return None


def _handle_info(args, cfg: dict) -> bool:
    if args.list_configs:
        print(config_listing(args.list_configs == "all"))
        return True
    if args.help_config:
        print(describe_schema())
        return True
    if args.print_config:
        print(to_yaml(cfg), end="")
        return True
    return False


def _fail(e: Exception) -> None:
    sys.exit(f"error: {e}")


def train_main(argv=None, demo_source: Callable[[], str | None] | None = None) -> int:
    """``rifle-train``. ``demo_source`` finds the source model the demo (no ``-c``) fine-tunes, called only when the
    demo runs (a checkout's ``train.py`` passes the evidence's committed one); without it the demo trains its own."""
    parser = _parser("rifle-train", "Fine-tune an ImageNet-pretrained ResNet, optionally with RIFLE. "
                     "Without -c, runs the built-in offline demo (plain fine-tuning vs RIFLE).")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its newest checkpoint "
                        "(with its config.yaml unless -c is given; -o may change execution keys such as "
                        "data.num_workers)")
    several = parser.add_argument_group("several cards or processes (paddle.distributed.launch on this command)")
    several.add_argument("--gpus", metavar="IDS", help="train on these cards, e.g. --gpus 0,1")
    several.add_argument("--processes", type=int, metavar="N", help="train as N CPU processes (gloo; with "
                         "-o run.device=cpu): what the test suite runs")
    several.add_argument("--launch-log-dir", metavar="DIR", help="where each rank's output goes (workerlog.<rank>; "
                         "default: ./log)")
    args = parser.parse_args(argv)
    if args.gpus or args.processes is not None:
        from .launch import launch
        return launch(list(sys.argv[1:] if argv is None else argv), args.gpus, args.processes, args.launch_log_dir)
    if args.config is None and not args.override and args.resume is None \
            and not (args.print_config or args.help_config or args.list_configs):
        from .demo import main as demo_main
        return demo_main(demo_source() if demo_source else None)
    _apply_resume(args)
    cfg = _load(args, paths_for="train")
    if _handle_info(args, cfg):
        return 0
    from ..data import DataError
    from ..engine import RunError, train
    from ..engine.resume import TrainingInterrupted
    from ..models import PretrainedWeightsError
    try:
        result = train(cfg)
    except (ConfigError, DataError, RunError, PretrainedWeightsError, ValueError) as e:
        _fail(e)
    except TrainingInterrupted as e:
        print(e, file=sys.stderr)
        return e.exit_code  # the shell's code for "ended by SIGINT" (130) or SIGTERM (143)
    except KeyboardInterrupt:
        print("interrupted; nothing was saved since the last checkpoint", file=sys.stderr)
        return 130
    print(json.dumps({"run_dir": result.get("run_dir"), "final": result.get("final"),
                      "best_epoch": (result.get("best") or {}).get("epoch")}))
    return 0


#: files a run directory holds that an evaluation result must never replace
RUN_RECORDS = ("config.yaml", "metrics.json", "train.log", "classes.json")


def eval_output_path(out: str | None, checkpoint: str) -> str:
    """Where ``eval.py`` writes its JSON: ``--out``, else ``eval.json`` beside the checkpoint. A run's own records
    and weights are refused (``--out run/metrics.json`` used to replace the run's record with the evaluation)."""
    path = os.path.abspath(out or os.path.join(os.path.dirname(checkpoint), "eval.json"))
    folder, name = os.path.split(path)
    is_run = os.path.isfile(os.path.join(folder, "config.yaml"))
    if (is_run and name in RUN_RECORDS) or name.endswith((".pdparams", ".pdopt")) or os.path.isdir(path):
        raise ValueError(f"--out {out}: refusing to write the evaluation over "
                         f"{'a folder' if os.path.isdir(path) else 'the run file ' + path}; name another file, "
                         f"e.g. {os.path.join(folder, 'eval.json')}")
    return path


def run_of_checkpoint(checkpoint: str) -> str | None:
    """The run folder ``checkpoint`` belongs to: the folder itself, the folder of one of its files
    (``best.pdparams``), or the run above ``checkpoints/<name>/``; None for weights from anywhere else."""
    checkpoint = os.path.abspath(checkpoint)
    folder = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint)
    above = os.path.dirname(folder)
    for candidate in (folder, os.path.dirname(above) if os.path.basename(above) == "checkpoints" else None):
        if candidate and os.path.isfile(os.path.join(candidate, "config.yaml")):
            return candidate
    return None


def _apply_run_config(args) -> None:
    """Without ``-c``, a run's checkpoint is evaluated with the run's own ``config.yaml`` (its data, network and
    preprocessing), as ``--resume`` trains on with it; ``-o`` still applies on top (a moved ``data.root``)."""
    if args.config is not None:
        return
    checkpoint = None
    for text in args.override:
        try:
            key, value = parse_override(text)
        except ConfigError:
            return  # the loader reports it
        if key == "model.checkpoint":
            checkpoint = value
    run = run_of_checkpoint(checkpoint) if isinstance(checkpoint, str) and os.path.exists(checkpoint) else None
    if run is not None:
        args.config = os.path.join(run, "config.yaml")
        print(f"rifle-eval: no -c; using the run's own {args.config}", file=sys.stderr)


def eval_main(argv=None) -> int:
    parser = _parser("rifle-eval", "Evaluate a checkpoint: prints top-1 (top-5 with more than five classes), and "
                     "writes a JSON result with each class's accuracy and the confusion matrix as CSV and PNG. "
                     "Without -c, a run's checkpoint is evaluated with the run's own config.yaml.")
    parser.add_argument("--out", help="JSON result path (default: eval.json beside the checkpoint); the confusion "
                                      "matrix goes beside it as <stem>_confusion.csv and .png")
    args = parser.parse_args(argv)
    _apply_run_config(args)
    cfg = _load(args, paths_for="eval")
    if _handle_info(args, cfg):
        return 0
    from ..data import DataError
    from ..engine import RunError, evaluate, resolve_checkpoint
    try:
        out = eval_output_path(args.out, resolve_checkpoint(cfg["model"]["checkpoint"]))  # refused before the work
        result, matrix, classes = evaluate(cfg, with_matrix=True)
    except (DataError, RunError, ValueError) as e:
        _fail(e)
    from ..experiments.artifacts import confusion_csv, plot_confusion, write_text
    replaced = os.path.exists(out)
    stem = os.path.splitext(out)[0]
    result["confusion_csv"], result["confusion_png"] = f"{stem}_confusion.csv", f"{stem}_confusion.png"
    write_text(confusion_csv(matrix, classes), result["confusion_csv"])
    plot_confusion(matrix, classes, result["confusion_png"],
                   title=f"{os.path.basename(result['checkpoint'])}: top-1 {100 * result['acc_top1']:.2f} %")
    write_text(strict_json.dumps(result, indent=2), out)  # atomic: an interrupted write leaves the previous result
    top5 = f"  top-5 {result['acc_top5']:.4f}" if "acc_top5" in result else ""
    worst = sorted((c for c in result["per_class"] if c["acc_top1"] is not None), key=lambda c: c["acc_top1"])[:3]
    print(f"top-1 {result['acc_top1']:.4f}{top5}  ({result['num_test']} images)  -> {out}"
          + (" (replacing the previous result)" if replaced else ""))
    print("weakest classes: " + ", ".join(f"{c['class']} {c['acc_top1']:.3f}" for c in worst)
          + f"; per class in {out}, confusion matrix in {result['confusion_csv']} and .png")
    return 0
