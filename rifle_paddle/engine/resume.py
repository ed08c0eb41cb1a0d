"""Continuing an interrupted run where it stopped, with the same result as if it had never stopped.

The ``Checkpointer`` callback writes a full checkpoint (``training_state``) into ``<run>/checkpoints/``
(``checkpoint_store``) at the start of every epoch after the first and at the end of training, and, on Ctrl-C, in
the middle of an epoch. The checkpoint of epoch ``e`` is taken at the start of epoch ``e``, not at the end of
``e - 1``, because that is exactly where a resumed run takes over: after the evaluation of ``e - 1`` (so the
metrics and the best epoch are final), before anything of epoch ``e`` has happened (RIFLE's re-initialization, the
first batch). Capturing and restoring at the same point of the same callback sequence is what makes a resumed run
continue identically rather than nearly. The checkpointer must therefore be the first callback.

A resumed run (``train.resume``) loads the newest complete checkpoint, refuses a config that changes what the run
computes (``config_differences``), restores the network, optimizer and components as training begins and the
random streams and sampler epoch as the resumed epoch begins, then runs the remaining epochs (``fit_from``). A
checkpoint from the middle of an epoch is continued by replaying that epoch's finished batches through the loader
without training on them, so that the data order and augmentation draws of the rest of the epoch are the ones the
interrupted run would have seen.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
from typing import NamedTuple

import paddle
import yaml
from paddle.hapi.callbacks import config_callbacks

from ..config import SCHEMA, absolute_paths, defaults, to_yaml
from ..core import paddle_compat
from .amp import fp32_state_dict
from .checkpoint_store import (CHECKPOINT_DIR, MANIFESTED, NETWORK_FILE, OPTIMIZER_FILE, PUBLISHED, STATE_FILE,
                               CheckpointStore, DamagedCheckpoint, Position)
from .errors import RunError
from .interrupt import InterruptRequest
from .multicard import gather, resumed_step, world_size
from .nonfinite import require_finite
from .training_state import (capture_rng, capture_training, mid_epoch_rng, restore_rng, restore_training,
                             sampler_epoch, set_sampler_epoch, stateful_components)

log = logging.getLogger(__name__)

STATE_FORMAT = 1

#: keys that change how a run executes, not what it computes: they may differ when it is resumed
EXECUTION_KEYS = frozenset({
    "run.name", "run.cell", "run.output_dir", "run.overwrite", "run.device", "run.cpu_threads", "model.checkpoint", "data.root",
    "data.num_workers", "data.eval_batch_size", "data.strict", "train.eval_freq", "train.log_freq",
    "train.save_best", "train.resume", "train.resume_data_changed", "train.nan_policy", "log.visualdl"})


class TrainingInterrupted(Exception):
    """Training stopped on Ctrl-C or SIGTERM after saving a checkpoint; the message says how to resume and
    ``exit_code`` is the shell's status for that signal (130, 143)."""

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code



def train_command() -> str:
    """The training command as the user typed it: ``python <path>/train.py`` for the script, else the installed
    ``rifle-train`` (also for the library called from Python, whose users have that command)."""
    prog = sys.argv[0] if sys.argv else ""
    return f"python {prog}" if os.path.basename(prog) == "train.py" else "rifle-train"


def resume_command(run_dir: str) -> str:
    return f"{train_command()} --resume {run_dir}"


# ------------------------------------------------------------------------------------------------- where to resume
class ResumePoint(NamedTuple):
    """The newest intact checkpoint of a run, loaded (``files`` is emptied once restored, so that the run does
    not hold a second copy of the network and optimizer in memory). ``damaged``: ``(path, what is wrong)`` of the
    newer checkpoints that failed their check, reported in the run's log and set aside once the resume is
    accepted."""

    run_dir: str
    position: Position
    path: str
    files: dict
    damaged: tuple = ()

    @property
    def state(self) -> dict:
        return self.files[STATE_FILE]

    @property
    def finished(self) -> bool:
        return bool(self.state.get("finished"))


def plain_config(cfg: dict) -> dict:
    """The config's keys and values alone (no private ``_source``), paths absolute, as saved in ``config.yaml``."""
    return yaml.safe_load(to_yaml(absolute_paths(cfg)))


def _changed(saved: dict, current: dict, keys) -> list[tuple[str, object, object]]:
    """``(key, value in the run, value now)`` of the dotted ``keys`` whose value differs.

    A key absent from ``saved`` (a checkpoint from before the key existed) had its default. Paths compare in
    their absolute form (a checkpoint from before paths were recorded absolute holds them relative)."""
    fallback = defaults()
    saved = absolute_paths({s: dict(saved.get(s) or {}) for s in SCHEMA})
    current = absolute_paths(current)
    changed = []
    for dotted in keys:
        section, key = dotted.split(".")
        before, now = saved[section].get(key, fallback[section][key]), current[section][key]
        if before != now:
            changed.append((dotted, before, now))
    return changed


def config_differences(saved: dict, current: dict) -> list[str]:
    """The keys outside ``EXECUTION_KEYS`` whose value differs, as ``key: saved in the run, current now`` lines."""
    keys = [f"{section}.{key}" for section, fields in SCHEMA.items() for key in fields]
    return [f"{key}: {before!r} in the run, {now!r} now"
            for key, before, now in _changed(saved, current, [k for k in keys if k not in EXECUTION_KEYS])]


def run_dir_of(cfg: dict) -> str | None:
    """The run folder ``train.resume`` names (``auto``: ``<run.output_dir>/<run.name>``), None for a new run."""
    spec = cfg["train"]["resume"]
    if spec is None:
        return None
    return os.path.join(cfg["run"]["output_dir"], cfg["run"]["name"] or "") if spec == "auto" else spec


def recorded_results(run_dir: str) -> list[str]:
    """What of a run folder is a result a restart would delete: recorded epochs, weights, checkpoints."""
    found = [name for name in ("best.pdparams", *PUBLISHED.values()) if os.path.isfile(os.path.join(run_dir, name))]
    try:
        with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:
            epochs = len(json.load(f).get("epochs") or [])
        if epochs:
            found.insert(0, f"metrics.json ({epochs} epoch{'s' if epochs > 1 else ''})")
    except (OSError, ValueError, AttributeError):
        pass
    root = CheckpointStore(run_dir).root
    if os.path.isdir(root) and os.listdir(root):
        found.append(f"{CHECKPOINT_DIR}/ ({', '.join(sorted(os.listdir(root)))})")
    return found


def _newest_intact(run_dir: str) -> tuple[ResumePoint | None, list[tuple[str, str]]]:
    """The newest checkpoint that passes its check, and every newer one's damage (``(checkpoint path, what is
    wrong, naming the file)``)."""
    store, damage = CheckpointStore(run_dir), []
    for position, path in reversed(store.complete()):
        try:
            files = store.load(path)
            if files[STATE_FILE].get("format") != STATE_FORMAT:
                raise DamagedCheckpoint(f"{path} was written by an incompatible version (format "
                                        f"{files[STATE_FILE].get('format')}, expected {STATE_FORMAT})")
        except DamagedCheckpoint as e:
            damage.append((path, str(e)))
            continue
        return ResumePoint(run_dir, position, path, files, tuple(damage)), damage
    return None, damage


def find_resume_point(cfg: dict) -> ResumePoint | None:
    """The checkpoint ``train.resume`` asks to continue from, or None to start the run.

    The newest checkpoint whose files match their manifest; a damaged newer one is reported and the previous one
    taken, with a warning. ``auto`` starts the run when its folder holds no checkpoint and no result (a job killed
    before its first checkpoint), and refuses, with the choices, a folder whose results a restart would delete. A
    path must hold an intact checkpoint. Raises ``RunError`` when it cannot resume, or when the config changes the
    run's meaning.
    """
    run_dir = run_dir_of(cfg)
    if run_dir is None:
        return None
    spec = cfg["train"]["resume"]
    point, damage = _newest_intact(run_dir)
    if point is None:
        said = "".join(f"\n  - damaged: {d}" for _, d in damage)
        if spec != "auto":
            raise RunError(f"train.resume={spec}: no intact checkpoint in {CheckpointStore(run_dir).root} (a run "
                           f"writes one at the start of every epoch, and on Ctrl-C){said}")
        results = recorded_results(run_dir) if os.path.isdir(run_dir) else []
        if not results or cfg["run"]["overwrite"]:
            return None
        raise RunError(f"train.resume=auto: {run_dir} holds results ({', '.join(results)}) but no intact "
                       f"checkpoint to continue from, and starting over would delete them{said}\nChoose:\n"
                       f"  - continue: put an intact copy of its {CHECKPOINT_DIR}/ folder back (an interrupted "
                       f"copy?) and run the same command again\n"
                       f"  - start over, deleting those results: add -o run.overwrite=true\n"
                       f"  - keep them and train a new run: -o run.name=<another name>")
    differences = config_differences(point.state["config"], cfg)
    if differences:
        raise RunError(f"cannot resume {run_dir}: the config changes what the run computes:\n  "
                       + "\n  ".join(differences)
                       + f"\nResume with the run's own config ({resume_command(run_dir)}, which reads its "
                         f"config.yaml), or start a new run under another run.name")
    return point


# ------------------------------------------------------------------------------------------------- the callback
class Checkpointer(paddle.callbacks.Callback):
    """Writes resumable checkpoints during ``fit`` and, for a resumed run, restores one. The FIRST callback.

    Args:
        run_dir: the run directory (``checkpoints/`` and ``last.pdparams``/``last.pdopt`` go there).
        train_loader: the training loader, whose sampler epoch is part of the state.
        config: the run's config, saved with every checkpoint to check a later resume against.
        resume: the checkpoint to continue from (``find_resume_point``), or None for a new run.
        rank: only rank 0 writes.

    Before ``fit``: ``install(callbacks, model.train_step)``; pass ``**fit_position()`` to ``fit``, and run it
    inside ``with checkpointer.interrupt:`` so that Ctrl-C saves and stops.
    """

    def __init__(self, run_dir: str, train_loader, config: dict, resume: ResumePoint | None = None, rank: int = 0,
                 data: dict | None = None):
        super().__init__()
        self.data = data  # what the run trains and tests on (``data_record``), checked by a later resume
        self.run_dir, self.train_loader, self.resume, self.rank = run_dir, train_loader, resume, rank
        self.store = CheckpointStore(run_dir)
        self.config = plain_config(config)
        self.components: dict = {}
        self.interrupt = InterruptRequest()
        position = resume.position if resume else Position(0)
        self.epoch, self.step = position.epoch, position.step
        self.saved_world = resume.state.get("world_size", 1) if resume else world_size()
        if self.saved_world != world_size():  # a run continued on another number of cards
            self.step = resumed_step(self.step, self.saved_world, world_size())
            log.warning("resuming a run of %d process(es) on %d: the learning-rate schedule continues from the same "
                        "point of training, but the batches and random streams differ from an uninterrupted run",
                        self.saved_world, world_size())
        self.global_step = resume.state["global_step"] if resume else 0
        self.last_checkpoint = resume.path if resume else None
        self._pending = None  # the resumed state's random streams and sampler epoch, applied at the epoch start
        self._epoch_start_rng: dict | None = None
        self._epoch_start_sampler: int | None = None
        self._epochs_run = 0
        if resume is not None:
            for _, damage in resume.damaged:  # here, not when found: train.log is open now
                log.warning("checkpoint damaged: %s; resuming from the previous one, %s", damage, resume.path)
            changed = [f"{key} {before!r} -> {now!r}" for key, before, now in _changed(  # e.g. another device
                resume.state["config"], self.config,
                sorted(EXECUTION_KEYS - {"train.resume", "run.overwrite", "run.name", "run.output_dir"}))]
            log.info("resuming %s from %s (%s)%s%s", run_dir, resume.path, resume.position,
                     "; training had finished, only the final evaluation is left" if resume.finished else "",
                     f"; changed: {', '.join(changed)}" if changed else "")

    def install(self, callbacks: list, train_step) -> None:
        """Put the checkpointer first in ``callbacks`` (see the module docstring) and keep the state of the stateful
        ones and of ``train_step`` in every checkpoint."""
        callbacks.insert(0, self)
        self.components = stateful_components(train_step, callbacks)

    def fit_position(self) -> dict:
        """``fit`` keyword arguments that continue the resumed run (none for a new run)."""
        if self.resume is None:
            return {}
        if self.resume.finished:  # also a run that stopped early: nothing is left to train
            return {"start_epoch": self.config["train"]["epochs"]}
        return {"start_epoch": self.epoch, "skip_steps": self.step}

    def failure(self, error: Exception) -> RunError:
        """A training failure (e.g. ``NonFiniteLossError``) as a ``RunError`` saying where it happened and from
        which checkpoint the run can continue once the cause is fixed."""
        return RunError(f"{error} at {self.where()}; {self.last_checkpoint_hint()}.\n{self.ways_on(error)}")

    def write_failure(self, error: OSError) -> RunError:
        """A write that failed (a full disk: ``OSError`` ENOSPC) as a ``RunError`` naming the newest intact
        checkpoint; the failed write has removed its temporary files."""
        what = f"{error.strerror or error}" + (f" ({error.filename})" if error.filename else "")
        return RunError(f"could not write to {self.run_dir}: {what}, at {self.where()}; nothing half-written was left. "
                        f"{self.last_checkpoint_hint()}. Free space (or fix the folder), then resume.")

    def ways_on(self, error: Exception) -> str:
        """What a user can really do next. ``--resume`` refuses a changed learning rate or clipping (a resumed run
        computes what the run computed), so those need a new run; the command says how."""
        train_cfg, name = self.config["train"], os.path.basename(os.path.normpath(self.run_dir))
        lower = f"{train_cfg['lr'] / 10:g}"
        ways = [f"  - a new run with a lower learning rate or gradient clipping (--resume cannot change them): "
                f"{train_command()} -c {os.path.join(self.run_dir, 'config.yaml')} -o train.lr={lower} "
                f"-o run.name={name}-lr{lower}" + ("" if train_cfg["grad_clip"] else " (and/or -o train.grad_clip=1.0)")]
        if "loss" in str(error) and self.last_checkpoint is not None:  # not for weights: no policy continues those
            ways.append(f"  - if a rare bad batch caused it: {resume_command(self.run_dir)} -o train.nan_policy=skip "
                        f"(skips and counts non-finite batches)")
        return "What can continue:\n" + "\n".join(ways)

    def where(self) -> str:
        steps = (self.params or {}).get("steps")
        return (f"epoch {self.epoch + 1}, batch {self.step + 1}{f' of {steps}' if steps else ''}, "
                f"global step {self.global_step + 1}")

    def last_checkpoint_hint(self) -> str:
        if self.last_checkpoint is None:
            return "no checkpoint was written yet (the first one is written when the first epoch starts)"
        return f"last good checkpoint: {self.last_checkpoint} (continue with {resume_command(self.run_dir)})"

    # -- hapi events --------------------------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        if self.resume is None:
            if self.rank == 0:
                self.store.clear()  # an overwritten run's checkpoints must never be resumed into this one
            return
        state, path = self.resume.state, self.resume.path
        try:
            restore_training(self.model, self.components, self.resume.files[NETWORK_FILE],
                             self.resume.files[OPTIMIZER_FILE], state)
        except (ValueError, KeyError) as e:
            raise RunError(f"cannot resume from {path}: {e}") from None
        if self.saved_world != world_size():  # the schedule counts steps, which are bigger or smaller now
            schedule = paddle_compat.learning_rate(paddle_compat.model_optimizer(self.model))
            schedule.step(self.epoch * len(self.train_loader) + self.step)
        if self.rank == 0:
            for damaged, _ in self.resume.damaged:  # never again taken for the newest checkpoint
                log.warning("damaged checkpoint moved aside: %s", self.store.set_aside(damaged))
        ranks = state.get("rng_ranks") or [state["rng"]]  # each rank's own streams (older checkpoints: rank 0's)
        rank = paddle.distributed.get_rank()
        self._pending = {"rng": ranks[rank] if rank < len(ranks) else None, "sampler_epoch": state["sampler_epoch"]}
        self.resume.files.clear()

    def on_epoch_begin(self, epoch, logs=None):
        if self._pending is not None:  # the resumed epoch: where the state was captured
            if self._pending["rng"] is not None:  # else a rank the saving run did not have: its fresh streams
                restore_rng(self._pending["rng"])
            set_sampler_epoch(self.train_loader, self._pending["sampler_epoch"])
            self._pending = None
        else:  # every epoch start, the first too: a run with results always has a checkpoint to continue from
            self.epoch, self.step = epoch, 0
            self._save()
        self._epoch_start_rng = capture_rng()
        self._epoch_start_sampler = sampler_epoch(self.train_loader)
        self._epochs_run += 1
        if self.interrupt.requested_on_any_rank():  # Ctrl-C during the previous evaluation, or before training
            if self.last_checkpoint is None:  # before the first epoch: save the state training starts from
                self._save()
            self._stop()

    def on_train_batch_begin(self, step, logs=None):
        # saved here, not at the previous batch's end: every callback (the learning-rate step, the recorder's sums)
        # has processed that batch by now. A Ctrl-C during an epoch's last batch is saved at the next epoch start.
        if self.step > 0 and self.interrupt.requested_on_any_rank():
            self._save()
            self._stop()

    def on_train_batch_end(self, step, logs=None):
        self.step += 1
        self.global_step += 1

    def on_train_end(self, logs=None):
        if self._epochs_run:
            self.epoch, self.step = self.epoch + 1, 0
            self._save(finished=True)

    # -- internals ------------------------------------------------------------------------------------------------
    def _save(self, finished: bool = False) -> None:
        position = Position(self.epoch, self.step)
        mid_epoch = self.step > 0
        rng = gather(mid_epoch_rng(self._epoch_start_rng, capture_rng()) if mid_epoch else capture_rng())
        if self.rank == 0:
            state = {
                "format": STATE_FORMAT, "position": [self.epoch, self.step], "global_step": self.global_step,
                "finished": finished, "config": self.config, "world_size": world_size(),
                "rng": rng[0], "rng_ranks": rng,  # every rank's streams: each continues its own
                "sampler_epoch": self._epoch_start_sampler if mid_epoch else sampler_epoch(self.train_loader),
                **capture_training(self.model, self.components, mid_epoch), "data": self.data, MANIFESTED: True,
            }
            optimizer = paddle_compat.model_optimizer(self.model)
            network = fp32_state_dict(self.model.network, optimizer)  # AMP O2: the fp32 master weights
            require_finite(network, f"the checkpoint {self.store.path(position)}")  # never a poisoned "last good"
            self.store.save(position, {NETWORK_FILE: network, OPTIMIZER_FILE: optimizer.state_dict(),
                                       STATE_FILE: state})
        self.last_checkpoint = self.store.path(position)  # on every rank: ranks must take the same decisions
        if paddle.distributed.get_world_size() > 1:
            paddle.distributed.barrier()  # no rank leaves before rank 0 has the checkpoint on disk

    def _stop(self) -> None:
        by = "SIGTERM" if self.interrupt.signum == signal.SIGTERM else "Ctrl-C"
        raise TrainingInterrupted(f"interrupted ({by}) at {Position(self.epoch, self.step)}; checkpoint saved: "
                                  f"{self.last_checkpoint}\nresume with: {resume_command(self.run_dir)}",
                                  exit_code=self.interrupt.exit_code)


# ------------------------------------------------------------------------------------------- the continued loop
class _Remainder:
    """The batches of ``loader`` after its first ``done``, which are loaded and dropped (not skipped by index) so
    the data streams advance exactly as they did for the interrupted run."""

    def __init__(self, loader, done: int):
        self.loader, self.done = loader, done

    def __len__(self) -> int:
        return len(self.loader) - self.done

    def __iter__(self):
        batches = iter(self.loader)
        for _ in range(self.done):
            next(batches, None)
        yield from batches


def _steps(loader) -> int | None:
    """The batches of one pass over ``loader`` as hapi counts them: None for a loader without a length (over an
    ``IterableDataset``, whose ``len`` Paddle refuses)."""
    try:
        return len(loader)
    except (TypeError, ValueError):
        return None


def evaluates_after(epoch: int, epochs: int, eval_freq: int) -> bool:
    """Whether the 0-based ``epoch`` is followed by a test: after epochs N, 2N, ... (1-based) and after the last.
    hapi's own ``fit`` tests after the first epoch and then every N (``epoch % N == 0``), which for a run that
    tests only at the end (``eval_freq = epochs``) wastes a full test pass after epoch 1."""
    return (epoch + 1) % eval_freq == 0 or epoch + 1 == epochs


def fit_from(model, train_data, eval_data=None, *args, start_epoch: int = 0, skip_steps: int = 0, epochs: int = 1,
             eval_freq: int = 1, log_freq: int = 10, verbose: int = 2, callbacks=None, **unsupported):
    """hapi's epoch loop (``Model.fit``, Paddle 3.3) from ``start_epoch``, after ``skip_steps`` batches of it,
    testing after the epochs ``evaluates_after`` names. Every run goes through it, a new one too (from epoch 0).

    Not hapi's public ``fit`` with callbacks doing the positioning: its loop always starts at epoch 0 (a callback
    cannot skip an epoch: every other callback would see it begin and end), cannot start after a batch, and tests
    after epochs 1, 1 + N, ... where a run tests after N, 2N, ... and the last; a new run through ``fit`` and a
    resumed one through this loop would be two loops to keep alike. So this is hapi's loop, reusing hapi's
    ``config_callbacks`` and ``_run_one_epoch``, so callbacks see the same events with the same
    parameters (``epochs`` is the run's total) as in an uninterrupted ``fit``. Only what the engine passes to
    ``fit`` is supported: data loaders, not data sets (hapi would build a new loader, whose sampler state a
    checkpoint cannot know), and none of ``batch_size``, ``num_iters``, ``save_dir``, gradient accumulation.
    """
    if args or unsupported or isinstance(train_data, paddle.io.Dataset):
        raise TypeError("TransferModel.fit on data loaders takes the keyword arguments epochs, eval_freq, "
                        "log_freq, verbose, callbacks (and start_epoch, skip_steps); pass data sets for the rest "
                        "of hapi's options" +
                        (f"; got {', '.join(sorted(unsupported))}" if unsupported else ""))
    cbks = config_callbacks(callbacks, model=model, epochs=epochs, steps=_steps(train_data),
                            log_freq=log_freq, verbose=verbose, metrics=paddle_compat.metric_names(model))
    paddle_compat.begin_fit(model, eval_data)
    cbks.on_begin("train")
    logs: dict = {}
    for epoch in range(start_epoch, epochs):
        cbks.on_epoch_begin(epoch)
        loader = _Remainder(train_data, skip_steps) if epoch == start_epoch and skip_steps else train_data
        logs = paddle_compat.run_one_epoch(model, loader, cbks, "train")
        cbks.on_epoch_end(epoch, logs)
        if eval_data is not None and evaluates_after(epoch, epochs, eval_freq):
            cbks.on_begin("eval", {"steps": _steps(eval_data),
                                   "metrics": paddle_compat.metric_names(model)})
            cbks.on_end("eval", paddle_compat.run_one_epoch(model, eval_data, cbks, "eval"))
        if model.stop_training:
            break
    cbks.on_end("train", logs)
    paddle_compat.end_fit(model)
