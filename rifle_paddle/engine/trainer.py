"""From a validated config to a trained model and a run directory.

The run directory (``<run.output_dir>/<run.name>/``) holds everything needed to understand and reuse a run:
``config.yaml`` (the effective config, self-contained, see ``run_config_yaml``), ``train.log``, ``vdl/``
(VisualDL), ``checkpoints/`` (the newest resumable checkpoint, see ``resume.py``), ``last.pdparams`` /
``last.pdopt`` (every epoch), ``best.pdparams`` (best test top-1) and ``metrics.json``.
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import math
import os
import random
import shutil
import time

import numpy as np
import paddle
from paddle.static import InputSpec

from ..callbacks import RIFLE
from ..records import RunProgress, RunRecorder, Throughput, VisualDLLogger
from ..config import absolute_paths, to_yaml
from ..config.checks import gpu_available, require_valid
from ..core import paddle_compat
from ..console import close_log_file, log_to_file, paddle_noise_silenced, setup_logging
from ..data import build_datasets, build_loader
from ..models import build_network, drop_pretrained_bn_stats, find_classifier
from ..tricks import install_tricks, wrap_train_step
from . import amp as amp_module
from .amp import convert_for_o2
from .classes import holds_classes, read_classes, write_classes
from .data_record import data_changes, data_record
from .errors import RunError
from .model import TrainStep, TransferModel
from .multicard import (SameStatisticsOnEveryRank, configure_batch_norm, init_process_group, rank_seed,
                        world_size)
from .nonfinite import NonFiniteLossError, NonFiniteLossGuard
from .optim import build_lr_scheduler, build_optimizer
from .resume import Checkpointer, find_resume_point, run_dir_of
from .run_lock import LOCK_FILE, RunLock

log = logging.getLogger("rifle_paddle")


CPU_THREADS_ENV = "RIFLE_PADDLE_CPU_THREADS"


def cpu_threads(setting: int | None) -> int:
    """Threads for Paddle's CPU kernels: ``run.cpu_threads``, else ``$RIFLE_PADDLE_CPU_THREADS`` (set by the sweep
    for its worker processes), else every core. Paddle itself runs them on one thread unless told, which leaves
    all but one core idle in a lone run (ResNet-18 at 32 px on 2 cores: 1.38x the images/s with 2 threads)."""
    if setting:
        return setting
    env = os.environ.get(CPU_THREADS_ENV, "")
    if env:
        if not env.isdigit() or int(env) < 1:
            raise RunError(f"${CPU_THREADS_ENV}={env!r} is not a whole number >= 1")
        return int(env)
    return os.cpu_count() or 1


def select_device(device: str, threads: int | None = None) -> str:
    """'auto' picks the GPU when Paddle has CUDA; under ``paddle.distributed.launch`` Paddle maps 'gpu' to the
    card of this rank. On the CPU, sets the kernel threads (``cpu_threads``)."""
    if device == "auto":
        device = "gpu" if gpu_available() else "cpu"
    if device == "gpu" and not paddle.is_compiled_with_cuda():
        raise RunError("run.device=gpu but this Paddle has no CUDA support: install paddlepaddle-gpu "
                       "(see README) or set -o run.device=cpu")
    paddle.set_device(device)
    if device == "cpu":
        paddle_compat.set_cpu_threads(cpu_threads(threads))
    return device


def seed_everything(seed: int) -> None:
    """Seed every global generator from ``run.seed``. Python's and NumPy's, which draw the augmentation (crops,
    flips) and seed the loader's workers, get a seed of their own on each rank of a multi-card run
    (``rank_seed``), else every card would crop and flip its images in lockstep; Paddle's keeps the run's seed on
    every rank (what is drawn before DataParallel synchronizes the weights stays identical)."""
    data_seed = rank_seed(seed, paddle.distributed.get_rank())
    random.seed(data_seed)
    np.random.seed(data_seed)
    paddle.seed(seed)


def is_main_process() -> bool:
    return paddle.distributed.get_rank() == 0


def run_name(cfg: dict) -> str:
    if cfg["run"]["name"]:
        return cfg["run"]["name"]
    stem = os.path.splitext(os.path.basename(cfg.get("_source") or "default"))[0]
    return f"{stem}-{datetime.datetime.now():%Y%m%d-%H%M%S}"


def target_run_dir(cfg: dict) -> str:
    """The run folder this command writes: the one ``train.resume`` names, else ``<run.output_dir>/<run.name>``
    (a new name with a timestamp when run.name is not set)."""
    return os.path.abspath(run_dir_of(cfg) or os.path.join(cfg["run"]["output_dir"], run_name(cfg)))


#: where an overwritten run's files wait until the new run has started (and go back if it does not)
REPLACED = ".replaced"


def _contents(run_dir: str) -> list[str]:
    """The folder's entries, but for the lock this command holds and an overwritten run set aside."""
    if not os.path.isdir(run_dir):
        return []
    return [e for e in os.listdir(run_dir) if e not in (LOCK_FILE, REPLACED)]


def _remove(path: str) -> None:
    shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)


def prepare_run_dir(cfg: dict, run_dir: str, restart: bool = False) -> str:
    """Create the run directory for a new run.

    A non-empty directory is refused unless ``run.overwrite`` (or ``restart``: ``train.resume=auto`` found no
    checkpoint and no result in it, a job killed before its first checkpoint). Then everything in it is moved into
    ``<run>/.replaced/``, so that nothing of the old run (its ``best.pdparams``, an ``eval.json``, its ``train.log``)
    can be taken for the new run's; it is deleted once the new run has started, and put back if the new run
    cannot start (``discarded_on_failure``): a broken command never costs the old run. Only a run directory (one
    with a ``config.yaml``) is ever emptied."""
    if not is_main_process():  # only rank 0 writes; the others would see rank 0's fresh files
        return run_dir
    if _contents(run_dir):
        if not (cfg["run"]["overwrite"] or restart):
            raise RunError(f"run directory {run_dir} already exists and is not empty; choose another "
                           f"-o run.name=..., or pass -o run.overwrite=true to write over it")
        if not os.path.isfile(os.path.join(run_dir, "config.yaml")):
            raise RunError(f"{run_dir} is not a run directory (no config.yaml): refusing to empty it; choose "
                           f"another -o run.name=... or run.output_dir")
        close_log_file()  # a process that trained the old run (a sweep, a notebook) may still hold its train.log
        aside = os.path.join(run_dir, REPLACED)
        if os.path.lexists(aside):  # left by an overwrite killed while starting: the run it was asked to replace
            _remove(aside)
        os.makedirs(aside)
        for entry in _contents(run_dir):
            os.rename(os.path.join(run_dir, entry), os.path.join(aside, entry))
    os.makedirs(run_dir, exist_ok=True)
    return run_dir


@contextlib.contextmanager
def discarded_on_failure(run_dir: str, new_run: bool):
    """Remove a new run's files when its start fails (empty data, wrong class count, a bad pretrained file): what
    it wrote (``config.yaml``, ``train.log``) is no run, and would make the corrected command be refused as "not
    empty"; an overwritten run set aside by ``prepare_run_dir`` is put back, and deleted only once the new run has
    started. A resumed run's directory is never touched."""
    aside = os.path.join(run_dir, REPLACED)
    try:
        yield
    except BaseException:
        if new_run and is_main_process() and os.path.isdir(run_dir):
            close_log_file()
            for entry in _contents(run_dir):  # the lock stays until the command ends (it removes the folder)
                _remove(os.path.join(run_dir, entry))
            if os.path.isdir(aside):
                for entry in os.listdir(aside):
                    os.rename(os.path.join(aside, entry), os.path.join(run_dir, entry))
                os.rmdir(aside)
                log.info("the run did not start; %s is as it was before", run_dir)
            else:
                log.info("the run did not start; removed %s", run_dir)
        raise
    if new_run and is_main_process() and os.path.isdir(aside):
        shutil.rmtree(aside, ignore_errors=True)


def run_config_yaml(cfg: dict) -> str:
    """The run directory's ``config.yaml``: the config that describes the run and reruns it.

    ``train.resume`` is saved as null: resuming is what one invocation does (``auto`` that found no checkpoint
    starts the run), not a property of the run, and a copy of the config must not resume anything.
    ``train.py --resume <run>`` sets it again. Paths are recorded absolute (``absolute_paths``), so that
    ``-c <run>/config.yaml``, ``--resume`` and the analysis work from any folder.
    """
    return to_yaml(absolute_paths({**cfg, "train": {**cfg["train"], "resume": None}}))


def amp_configs(train_cfg: dict, device: str) -> dict | None:
    """hapi ``amp_configs`` for ``train.amp``; AMP needs a GPU (fp16 kernels), so it is an error on CPU (``train``
    reports it earlier, with the config's other problems: ``checks.path_problems``)."""
    if not train_cfg["amp"]:
        return None
    if device != "gpu":
        raise RunError("train.amp=true needs a GPU; set -o train.amp=false to train on the CPU")
    return {"level": train_cfg["amp_level"], "init_loss_scaling": 2.0 ** 15}


def lr_stair(num_images: int, batch_size: int) -> int:
    """The stair of ``lr_schedule: cosine_epoch``: the authors' ``step_each_epoch = ceil(N / batch)``
    (``fine_tuning/run.py`` line 117), ``N`` the images of the split ``train.lr_stair`` names. On several cards
    ``N`` is each process's share, ``ceil(N / ranks)``, so a stair keeps its length in steps of one process (the
    authors ran one process; their stair is a count of that process's steps)."""
    per_rank = math.ceil(num_images / max(1, paddle.distributed.get_world_size()))
    return max(1, math.ceil(per_rank / batch_size))


def stair_images(train_cfg: dict, num_train: int, num_test: int) -> int:
    """``N`` of the stair: the training split's size, or the test split's (``train.lr_stair: test_split``, the
    RIFLE authors' ``run.py``, which rebinds ``reader_config`` to the test split at line 89 before computing
    ``step_each_epoch`` from it at line 117)."""
    return num_test if train_cfg.get("lr_stair", "train_split") == "test_split" else num_train


def build_model(cfg: dict, network: paddle.nn.Layer, steps_per_epoch: int, device: str,
                train_step: TrainStep | None = None, epoch_stair: int | None = None) -> TransferModel:
    size = cfg["data"]["image_size"]
    optimizer = None
    if steps_per_epoch:
        optimizer = build_optimizer(network.parameters(), cfg["train"],
                                    build_lr_scheduler(cfg["train"], steps_per_epoch, epoch_stair))
    amp = amp_configs(cfg["train"], device) if optimizer else None
    if amp and amp["level"] == "O2":  # before TransferModel, whose constructor wraps it in DataParallel
        convert_for_o2(network, optimizer, amp_module.HALF_DTYPE)
    model = TransferModel(network, inputs=[InputSpec([None, 3, size, size], "float32", "image")],
                          labels=[InputSpec([None], "int64", "label")], train_step=train_step)
    num_classes = find_classifier(network, cfg["model"]["head"])[1].weight.shape[-1]
    # top-5 of <= 5 classes is always 1; a single-k Accuracy is named 'acc', so name it as the two-k one would
    metrics = (paddle.metric.Accuracy(topk=(1, 5)) if num_classes > 5 else
               paddle.metric.Accuracy(topk=(1,), name="acc_top1"))
    model.prepare(optimizer, paddle.nn.CrossEntropyLoss(label_smoothing=cfg["train"]["label_smoothing"]),
                  metrics, amp_configs=amp)
    model.nonfinite = NonFiniteLossGuard(cfg["train"]["nan_policy"])
    return model


def _log_writer(run_dir: str, enabled: bool):
    if not enabled or not is_main_process():
        return None
    from visualdl import LogWriter
    return LogWriter(logdir=os.path.join(run_dir, "vdl"))


def _final_metrics(recorder: RunRecorder, model: TransferModel, test_loader) -> dict:
    last = recorder.epochs[-1] if recorder.epochs else {}
    if "test_acc_top1" not in last:  # eval_freq skipped the last epoch: evaluate once more
        logs = model.evaluate(test_loader, verbose=0)
        last = {f"test_{k}": float(np.ravel(v)[0]) for k, v in logs.items()}
    return {k[len("test_"):]: v for k, v in last.items() if k.startswith("test_")}


def format_accuracy(metrics: dict) -> str:
    return ", ".join(f"top-{k[len('acc_top'):]} {metrics[k]:.4f}" for k in ("acc_top1", "acc_top5") if k in metrics)


def _start(cfg: dict, run_dir: str, resume, device: str):
    """Everything before the first epoch: the log, config.yaml, the data, the network and the model. A failure
    here leaves no run behind (``discarded_on_failure``)."""
    setup_logging(os.path.join(run_dir, "train.log") if is_main_process() else None)
    if is_main_process() and resume is None:
        with open(os.path.join(run_dir, "config.yaml"), "w", encoding="utf-8") as f:
            f.write(run_config_yaml(cfg))
    log.info("run directory: %s (device %s, %d process(es))", run_dir, device,
             paddle.distributed.get_world_size())

    train_set, test_set = build_datasets(cfg["data"], seed=cfg["run"]["seed"])
    if train_set.num_classes < 2:  # one class: the loss is 0 from the first step and top-1 is 1, whatever is learnt
        raise RunError(f"the data has {train_set.num_classes} class{'es' if train_set.num_classes != 1 else ''} "
                       f"({', '.join(map(str, train_set.classes)) or 'none'}): a classifier needs at least 2; check "
                       f"data.root (its train/ folder must hold one sub-folder per class) and data.classes")
    data = data_record(train_set, test_set, cfg["data"]["root"])
    if resume is not None:  # before anything of the run is rewritten (classes.json)
        check_resumed_data(resume, data, run_dir, cfg["train"]["resume_data_changed"])
    num_classes = cfg["model"]["num_classes"] or train_set.num_classes
    if num_classes != train_set.num_classes:  # fewer cannot train; more would be outputs no image ever trains
        raise RunError(f"model.num_classes={num_classes} but the data has {train_set.num_classes} classes; leave "
                       f"model.num_classes null to take the data's")
    log.info("data: %d train / %d test images, %d classes", len(train_set), len(test_set), num_classes)
    if is_main_process() and not holds_classes(run_dir, train_set.classes):  # the data's, checked on a resume
        write_classes(run_dir, train_set.classes, cfg["data"]["name"])
    data_cfg = cfg["data"]
    train_loader = build_loader(train_set, data_cfg["batch_size"], True, data_cfg["num_workers"],
                                seed=cfg["run"]["seed"], drop_last=data_cfg["drop_last"],
                                reshuffle=data_cfg["order"] == "reshuffle")  # each seed its own batch order
    test_loader = build_loader(test_set, data_cfg["eval_batch_size"], False, data_cfg["num_workers"])

    # the batch-norm statistics are reset below, after the regularizer's teacher copy has kept them
    network, head_name = build_network(cfg["model"], num_classes, pretrained_bn_stats=True)
    network = configure_batch_norm(network, cfg["train"]["sync_bn"], device, data_cfg["batch_size"], cfg["train"]["lr"])
    for trick in install_tricks(network, cfg["tricks"], head_name):  # after the pretrained weights are loaded
        log.info("trick: %s", trick)
    from ..regularizers import build_train_step  # a layer below, looked up per run (tests replace it)
    regularized_step = build_train_step(cfg, network, head_name, train_loader,  # None: plain fine-tuning
                                        restoring=resume is not None)  # the checkpoint brings DELTA's attention
    if not cfg["model"]["pretrained_bn_stats"]:  # after the regularizer's teacher copy, which keeps them
        drop_pretrained_bn_stats(network)
    if cfg["dtnh"]["enabled"] and cfg["train"]["weight_decay"]:
        log.warning("DTNH with train.weight_decay=%g: the optimizer adds the decay after DTNH's projection, outside "
                    "its never-hurt guarantee (the DELTA authors use no weight decay with L2-SP/DELTA)",
                    cfg["train"]["weight_decay"])
    model = build_model(cfg, network, len(train_loader), device,
                        train_step=wrap_train_step(regularized_step, cfg["tricks"], num_classes),
                        epoch_stair=lr_stair(stair_images(cfg["train"], len(train_set), len(test_set)),
                                             data_cfg["batch_size"]))
    return train_set, test_set, num_classes, train_loader, test_loader, head_name, regularized_step, model, data


def check_resumed_data(resume, data: dict, run_dir: str, policy: str) -> None:
    """Refuse a resume on other data than the run's (``data_record``): always for another class list (the saved
    outputs would name other classes), else unless ``train.resume_data_changed=allow``, which warns instead."""
    saved = resume.state.get("data")
    if saved is None:  # a checkpoint from before data records: the run's classes.json, if it can be read
        try:
            saved = {"classes": read_classes(run_dir)}
        except ValueError:
            saved = {}
    changes = data_changes(saved, data)
    if not changes:
        return
    listed = "\n  ".join(changes)
    if changes[0].startswith("classes:"):
        raise RunError(f"cannot resume {run_dir}: the data's classes have changed since it stopped:\n  {listed}\n"
                       f"A network trained on the old classes cannot continue on the new ones; train a new run "
                       f"(-o run.name=<another name>), or restore the data as it was")
    if policy != "allow":
        raise RunError(f"cannot resume {run_dir}: the data has changed since it stopped:\n  {listed}\nThe rest of "
                       f"the run would not be the run that stopped. Restore the data as it was, start a new run "
                       f"(-o run.name=<another name>), or continue on the new data anyway with "
                       f"-o train.resume_data_changed=allow")
    log.warning("resuming %s on changed data (train.resume_data_changed=allow): %s", run_dir, "; ".join(changes))


def train(cfg: dict, callbacks: list | None = None) -> dict:
    """Fine-tune as configured; return ``metrics.json``'s content (with ``run_dir``).

    ``callbacks`` are extra hapi callbacks, called before the engine's own at every event.
    """
    started = time.time()
    require_valid(cfg, "train")  # a bad value, a wrong path or a missing GPU fails now, before anything is created
    device = select_device(cfg["run"]["device"], cfg["run"]["cpu_threads"])
    init_process_group()  # several cards: before the first collective (DELTA's attention broadcast)
    seed_everything(cfg["run"]["seed"])
    run_dir = target_run_dir(cfg)
    with RunLock(run_dir) if is_main_process() else contextlib.nullcontext():  # one writer per run folder
        return _train(cfg, run_dir, callbacks, device, started)


def _train(cfg: dict, run_dir: str, callbacks: list | None, device: str, started: float) -> dict:
    """``train`` once the run folder is this process's (``RunLock``)."""
    resume = find_resume_point(cfg)  # None: a new run
    restart = resume is None and cfg["train"]["resume"] == "auto"  # auto, nothing to lose yet: start afresh
    if resume is None:
        prepare_run_dir(cfg, run_dir, restart)
    with discarded_on_failure(run_dir, new_run=resume is None):
        parts = _start(cfg, run_dir, resume, device)
    train_set, test_set, num_classes, train_loader, test_loader, head_name, regularized_step, model, data = parts
    from ..regularizers import RegularizationMonitor

    writer = _log_writer(run_dir, cfg["log"]["visualdl"])
    callbacks = list(callbacks or [])
    rifle_cb = None
    if cfg["rifle"]["enabled"]:
        r = cfg["rifle"]
        rifle_cb = RIFLE(num_reinits=r["num_reinits"], epochs=r["epochs"], min_tail_epochs=r["min_tail_epochs"],
                         init=r["init"], reset_optimizer_state=r["reset_optimizer_state"],
                         layer=r["layer"] or head_name, seed=cfg["run"]["seed"], writer=writer,
                         min_tail_steps=r["min_tail_steps"])
        callbacks.append(rifle_cb)
    recorder = RunRecorder(run_dir, save_best=cfg["train"]["save_best"], rank=paddle.distributed.get_rank(),
                           writer=writer, extra={"run_dir": run_dir, "num_classes": num_classes, "num_train": len(train_set),
                                  "num_test": len(test_set),
                                  "rifle_events": (lambda: rifle_cb.history) if rifle_cb else [],
                                  "rifle_warning": (lambda: getattr(rifle_cb.controller, "warning", None)) if rifle_cb else None,
                                  "unreadable_images": lambda: {"train": train_set.unreadable_files(),
                                                                "test": test_set.unreadable_files()}})
    if regularized_step is not None:  # before the recorder, so each epoch's line is in metrics.json at its end
        monitor = RegularizationMonitor(regularized_step, writer)
        callbacks.append(monitor)
        recorder.extra["regularization"] = lambda: monitor.history
    if world_size() > 1 and not cfg["train"]["sync_bn"]:  # before the recorder saves best.pdparams
        callbacks.append(SameStatisticsOnEveryRank())
    throughput = Throughput(cfg["train"]["log_freq"], cfg["data"]["num_workers"], writer)
    callbacks.append(throughput)  # before the recorder, which records its epoch figures in metrics.json
    recorder.epoch_fields["throughput"] = lambda: throughput.epoch_record
    callbacks.append(recorder)
    callbacks.append(RunProgress())
    if writer is not None:
        callbacks.append(VisualDLLogger(writer, cfg["train"]["log_freq"]))
    checkpointer = Checkpointer(run_dir, train_loader, cfg, resume, rank=paddle.distributed.get_rank(), data=data)
    checkpointer.install(callbacks, model.train_step)  # first callback; keeps every stateful one's state
    recorder.extra["steps"] = lambda: checkpointer.global_step
    # before training, this invocation: data, model, DELTA's channel scores (elapsed_s counts from here on)
    recorder.extra["setup_s"] = round(time.time() - started, 2)

    try:
        with paddle_noise_silenced():
            with checkpointer.interrupt:  # Ctrl-C: checkpoint, then TrainingInterrupted
                model.fit(train_loader, test_loader, epochs=cfg["train"]["epochs"],
                          eval_freq=cfg["train"]["eval_freq"], log_freq=cfg["train"]["log_freq"], verbose=2,
                          callbacks=callbacks, **checkpointer.fit_position())
            recorder.extra["final"] = _final_metrics(recorder, model, test_loader)
        recorder.write_metrics()
    except NonFiniteLossError as e:
        raise log_to_file(checkpointer.failure(e)) from None
    except OSError as e:  # a full disk, a folder gone: clean, with the newest checkpoint that is intact
        raise log_to_file(checkpointer.write_failure(e)) from None
    except Exception as e:  # e.g. a DataError from the loader: the console says it, train.log must too
        log_to_file(e)
        raise
    finally:
        if writer is not None:
            writer.close()
    final = recorder.extra["final"]
    best = recorder.record()["best"] or {}
    log.info("done: test %s (best top-1 %.4f at epoch %s); outputs in %s", format_accuracy(final),
             best.get("test_acc_top1", float("nan")), best.get("epoch"), run_dir)
    for dataset in (train_set, test_set):
        if dataset.unreadable_files():
            log.warning("%s (listed in metrics.json)", dataset.unreadable_summary())
    return recorder.record()
