"""RIFLE: re-initialize the fully-connected classifier a few times during fine-tuning.

Li, Xiong, An, Xu, Dou. "RIFLE: Backpropagation in Depth for Deep Transfer Learning through Re-Initializing the
Fully-connected LayEr", ICML 2020 (arXiv:2007.03349).

Why it works: once a freshly initialized head has fitted the target task, the gradients it sends into the backbone
are small and the deep (early) layers stay near their pretrained values. Re-drawing the head at random makes the
loss large again, and the resulting large, still meaningful gradients reach deep into the backbone. Stopping the
re-initializations a few epochs before the end lets the head and the backbone converge together.

Schedule: the rule of the authors' ``fine_tuning/run.py`` (haozhe-an/RIFLE-Paddle-Implementation), with
``cyclic_num = num_reinits + 1``: after the 0-based epoch ``e`` the head is re-drawn when
``(e + 1) % (E // cyclic_num) == 0`` unless ``e > E - 5``. In words: at the start of every epoch that is a multiple
of ``E // cyclic_num`` and leaves at least ``min_tail_epochs = 4`` epochs after it. On 40 epochs that is
[13, 26] (cyclic_num 3) and [10, 20, 30] (cyclic_num 4). The rule is the authors' for every ``E``, so on short or
oddly sized runs it may give fewer re-initializations than ``num_reinits`` (``E = 12, cyclic_num = 4``: [3, 6]) or,
when ``E mod cyclic_num >= min_tail_epochs``, one more (``E = 49, cyclic_num = 5``: 5 re-initializations); the
callback logs the schedule it will use and warns when its length is not ``num_reinits``. An explicit list of
epochs may be given instead (PaddleTransfer's ``reinit_epochs``); it must leave ``min_tail_epochs`` after it.

What is re-drawn (``init``), each name meaning exactly one rule:

- ``'authors'`` (default): every parameter ``p`` of the layer from ``N(0, sqrt(2 / p.shape[0]))``, literally the
  authors' ``np.random.normal(0, np.sqrt(2 / var.shape[0]), var.shape)``. For a Linear layer (weight ``[in, out]``)
  the weight gets ``sqrt(2 / in)`` (He-normal) and the bias ``[C]`` gets ``sqrt(2 / C)`` (0.100 for 200 classes).
- ``'he_normal'``: weight and bias from ``N(0, sqrt(2 / fan_in))`` (the bias on the weight's fan-in; 0.031 for
  ResNet-50).
- ``'uniform'``: weight and bias from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, the distribution of the authors'
  *initial* fc weight (``as_models/resnet.py``) and PyTorch's ``nn.Linear`` default.
- ``'paddletransfer'``: the weight only, from ``U(-b, b)`` with ``b = 1/sqrt(weight.shape[1])`` (PaddleTransfer's
  ``rifle.py``; Paddle's Linear weight is ``[in, out]``, so ``b = 1/sqrt(num_classes)``); the bias is kept.

Optimizer state: kept by default, as the authors' static graph kept the momentum of the fc variables through a
re-initialization. ``reset_optimizer_state=True`` (our option, a separate row in the tables) zeroes the re-drawn
parameters' accumulators: the old velocity points along the gradient of a head that no longer exists, and adds one
stale step of size ~ lr / (1 - momentum) to the fresh weights. Under AMP O2 the accumulators are keyed by the fp32
master weights, and those are reset. The learning-rate schedule is not restarted (as the authors).

Reproducibility and multi-GPU: the new weights are drawn from a NumPy generator seeded with ``(seed, epoch)`` and
independent of Paddle's global RNG, so (1) they do not perturb data order or dropout streams, (2) a resumed run
draws exactly the same heads, (3) every rank of a ``paddle.distributed.launch`` run draws identical weights
without a broadcast.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import paddle
from paddle import nn

from ..core import paddle_compat
from ..config.keywords import keyword_section
from ..config.schema import defaults, register_choices
from ..models.classifier import find_classifier

from ..core.epoch_numbers import shown

log = logging.getLogger(__name__)
#: the ``rifle`` config section's defaults (config/schema.py): the keyword defaults of RIFLE and RifleController
DEFAULTS = defaults()["rifle"]

INITIALIZERS = register_choices("rifle.init", ("authors", "he_normal", "uniform", "paddletransfer"))

#: Below this many optimizer steps after the last re-initialization RIFLE is warned against. Set on 2026-12-04 by the
#: rule of docs/evidence.md part 3 (fixed before the runs) from the complete regime curve of the CPU evidence
#: (benchmarks/RESULTS.md; 4 regimes x 2 RIFLE settings, 5 paired seeds each): the smallest tail from which every
#: measured point has a mean paired difference RIFLE - plain >= 0 is 1,000 steps (+0.07 +- 0.17 points at 1,000,
#: +0.05 +- 0.11 at 1,400; -0.04 at 420). No point was significant either way, so this marks where RIFLE stopped
#: losing on average, not where it was shown to win; :data:`SHORT_TAIL_FINDING` says so. The evidence owns the check
#: that this value and that sentence still hold for its committed runs (tests/test_evidence.py).
SHORT_TAIL_STEPS = 1000
#: What the evidence found at :data:`SHORT_TAIL_STEPS`, as the warning cites it.
SHORT_TAIL_FINDING = ("In the CPU evidence (docs/evidence.md) RIFLE stopped losing to plain fine-tuning on average "
                      "only with tails of {threshold} steps or more")


def tail_steps(schedule: list[int], epochs: int, steps_per_epoch: int) -> int | None:
    """Optimizer steps the last re-drawn head trains for (None without re-initialization)."""
    return (epochs - max(schedule)) * steps_per_epoch if schedule else None


def short_tail_warning(schedule: list[int], epochs: int, steps_per_epoch: int | None,
                       threshold: int = SHORT_TAIL_STEPS) -> str | None:
    """The warning RIFLE gives before training when its last head would train fewer than ``threshold`` steps (the
    evidence's :data:`SHORT_TAIL_STEPS`) to pay off, else None."""
    if not steps_per_epoch:
        return None
    tail = tail_steps(schedule, epochs, steps_per_epoch)
    if tail is None or tail >= threshold:
        return None
    return (f"RIFLE: the last re-drawn head trains for only {tail} optimizer steps ({epochs - max(schedule)} epochs "
            f"of {steps_per_epoch} steps), fewer than {threshold}. {SHORT_TAIL_FINDING.format(threshold=threshold)}: "
            f"use fewer re-initializations (rifle.num_reinits), more epochs, more data per epoch, or "
            f"rifle.min_tail_steps={threshold}")


def rifle_schedule(epochs: int, num_reinits: int = DEFAULTS["num_reinits"],
                   min_tail_epochs: int = DEFAULTS["min_tail_epochs"],  # the authors' 4: run.py's "e > E - 5"
                   explicit: list[int] | None = None, min_tail_steps: int = DEFAULTS["min_tail_steps"],
                   steps_per_epoch: int | None = None) -> list[int]:
    """0-based epochs at whose start the classifier is re-initialized (see the module docstring).

    ``min_tail_steps`` (with ``steps_per_epoch``) is the tail in optimizer steps: it raises the tail in epochs to
    ``ceil(min_tail_steps / steps_per_epoch)`` when that is more than ``min_tail_epochs``.

    >>> rifle_schedule(40, 3)      # the authors' cyclic_num=4 on 40 epochs
    [10, 20, 30]
    >>> rifle_schedule(40, 2)      # cyclic_num=3
    [13, 26]
    >>> rifle_schedule(12, 3)      # the authors' rule on a short run: the third falls in the 4-epoch tail
    [3, 6]
    """
    if epochs <= 0:
        raise ValueError(f"epochs must be positive, got {epochs}")
    if min_tail_epochs < 0 or min_tail_steps < 0:
        raise ValueError(f"min_tail_epochs and min_tail_steps must be >= 0, got {min_tail_epochs}, {min_tail_steps}")
    if min_tail_steps and steps_per_epoch:
        min_tail_epochs = max(min_tail_epochs, math.ceil(min_tail_steps / steps_per_epoch))
    latest = epochs - min_tail_epochs  # the last start that leaves min_tail_epochs epochs after it
    if explicit is not None:
        bad = [e for e in explicit if not 0 < e < epochs]
        if bad:
            raise ValueError(f"re-initialization epochs {bad} are outside 1..{epochs - 1}")
        late = [e for e in explicit if e > latest]
        if late:
            raise ValueError(f"re-initialization epochs {late} fall in the last {min_tail_epochs} epochs "
                             f"(min_tail_epochs), which are kept for convergence")
        return sorted(set(explicit))
    if num_reinits < 0:
        raise ValueError(f"num_reinits must be >= 0, got {num_reinits}")
    period = epochs // (num_reinits + 1)
    if period == 0:
        raise ValueError(f"{num_reinits} re-initializations need at least {num_reinits + 1} epochs, got {epochs}")
    return list(range(period, min(latest, epochs - 1) + 1, period))


def _fan_in(layer: nn.Layer, weight: paddle.Tensor) -> int:
    shape = list(weight.shape)
    if isinstance(layer, nn.Linear) or len(shape) == 2:  # Paddle's Linear weight is [in, out]
        return int(shape[0])
    return int(np.prod(shape[1:]))  # conv: [out, in/groups, *kernel]


def draw(rng: np.random.Generator, init: str, param: paddle.Tensor, weight: paddle.Tensor,
         fan_in: int) -> np.ndarray | None:
    """New values for ``param`` of a layer whose weight is ``weight`` under the rule ``init``; None: keep it."""
    shape = list(param.shape)
    if init == "authors":
        return rng.normal(0.0, math.sqrt(2.0 / shape[0]), size=shape)
    if init == "he_normal":
        return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)
    if init == "uniform":
        bound = 1.0 / math.sqrt(fan_in)
        return rng.uniform(-bound, bound, size=shape)
    if init == "paddletransfer":
        if param is not weight:
            return None
        bound = 1.0 / math.sqrt(shape[1])
        return rng.uniform(-bound, bound, size=shape)
    raise ValueError(f"unknown initializer '{init}', expected one of {', '.join(INITIALIZERS)}")


def reset_optimizer_state(optimizer: paddle.optimizer.Optimizer, params: list[paddle.Tensor]) -> list[str]:
    """Reset the optimizer's per-parameter accumulators of ``params`` to their initial values.

    Accumulators are created lazily at the first step, so there may be nothing to reset yet. With
    ``multi_precision`` (AMP O2) Paddle keys them by the fp32 master weight's name (``<name>_fp32_master_0``), not
    the parameter's. Returns the accumulator names that were reset (for the log).
    """
    master = paddle_compat.master_weights(optimizer)
    names = {p.name for p in params} | {master[p.name].name for p in params if p.name in master}
    touched = []
    for acc_name, per_param in paddle_compat.accumulators(optimizer).items():
        for pname, acc in per_param.items():
            if pname not in names:
                continue
            if "beta1_pow" in acc_name:  # Adam-style bias-correction powers restart at beta, not 0
                value = paddle_compat.adam_betas(optimizer)[0]
            elif "beta2_pow" in acc_name:
                value = paddle_compat.adam_betas(optimizer)[1]
            else:
                value = 0.0
            acc.set_value(paddle.full(acc.shape, value, dtype=acc.dtype))
            touched.append(f"{acc_name}[{pname}]")
    return touched


@paddle.no_grad()
def reinitialize_layer(layer: nn.Layer, rng: np.random.Generator, init: str = "authors",
                       optimizer: paddle.optimizer.Optimizer | None = None,
                       reset_state: bool = False, name: str = "") -> dict:
    """Re-draw the parameters of ``layer`` in place as ``init`` says; return norms before/after per parameter.

    The report names each parameter by its place in the model (``name`` + ``.weight``, e.g. ``fc.weight``), not
    by Paddle's internal ``linear_1.w_0``, which changes with how many layers the process has built.

    In place (``set_value``) so the Parameter objects, and with them the optimizer's parameter list and any
    DataParallel buckets, stay valid. With AMP O2 the optimizer's fp32 master copy is overwritten too, otherwise
    the next step would restore the old head from it.
    """
    named = list(layer.named_parameters(prefix=name))
    params = [p for _, p in named]
    if not params:
        raise ValueError(f"{type(layer).__name__} has no parameters to re-initialize")
    weight = getattr(layer, "weight", None)
    weight = weight if weight is not None else params[0]
    fan_in = _fan_in(layer, weight)
    master = paddle_compat.master_weights(optimizer) if optimizer is not None else {}
    report = {}
    redrawn = []
    for pname, p in named:
        value = draw(rng, init, p, weight, fan_in)
        if value is None:
            continue
        redrawn.append(p)
        before = float(paddle.linalg.norm(p.astype("float32")))
        p.set_value(paddle.to_tensor(value, dtype=p.dtype, place=p.place))
        if p.name in master:
            master[p.name].set_value(paddle.to_tensor(value, dtype=master[p.name].dtype, place=p.place))
        report[pname] = {"norm_before": before, "norm_after": float(paddle.linalg.norm(p.astype("float32")))}
    if optimizer is not None and reset_state:
        report["reset_accumulators"] = reset_optimizer_state(optimizer, redrawn)
    return report


def _check(caller: str, num_reinits, epochs, min_tail_epochs, min_tail_steps, init, reset_optimizer_state,
           layer=None) -> dict:
    """The ``rifle`` config section's checks on arguments given by hand (one line, naming the key), so a
    ``RIFLE(num_reinits=-1)`` in a user's own loop is refused as the same value in a config file is; returns the
    checked values (a numpy integer as an int, which the run's JSON records can hold)."""
    return keyword_section("rifle", {"num_reinits": num_reinits, "epochs": epochs, "min_tail_epochs": min_tail_epochs,
                              "min_tail_steps": min_tail_steps, "init": init,
                              "reset_optimizer_state": reset_optimizer_state, "layer": layer}, caller)


@dataclass
class RifleController:
    """RIFLE for a hand-written dygraph loop: call ``controller.on_epoch_begin(epoch)`` before each epoch.

    >>> rifle = RifleController(model.fc, optimizer, epochs=40, num_reinits=3, steps_per_epoch=len(loader))
    >>> for epoch in range(40):
    ...     rifle.on_epoch_begin(epoch)      # re-draws model.fc at epochs 10, 20, 30
    ...     train_one_epoch(...)
    """

    layer: nn.Layer
    optimizer: paddle.optimizer.Optimizer | None
    epochs: int
    num_reinits: int = DEFAULTS["num_reinits"]
    min_tail_epochs: int = DEFAULTS["min_tail_epochs"]
    schedule_epochs: list[int] | None = None
    init: str = DEFAULTS["init"]
    reset_optimizer_state: bool = DEFAULTS["reset_optimizer_state"]
    seed: int = 0
    history: list[dict] = field(default_factory=list)
    min_tail_steps: int = DEFAULTS["min_tail_steps"]
    steps_per_epoch: int | None = None
    #: the layer's dotted name in the model (``fc``), prefixed to the parameter names in the events
    layer_name: str = ""

    def __post_init__(self):
        checked = _check("RifleController", self.num_reinits, self.schedule_epochs, self.min_tail_epochs,
                         self.min_tail_steps, self.init, self.reset_optimizer_state)
        self.num_reinits, self.schedule_epochs = checked["num_reinits"], checked["epochs"]
        self.min_tail_epochs, self.min_tail_steps = checked["min_tail_epochs"], checked["min_tail_steps"]
        self.schedule = rifle_schedule(self.epochs, self.num_reinits, self.min_tail_epochs, self.schedule_epochs,
                                       self.min_tail_steps, self.steps_per_epoch)
        #: the short-tail warning (None when the tail is long enough or the steps per epoch are unknown)
        self.warning = short_tail_warning(self.schedule, self.epochs, self.steps_per_epoch)
        if self.warning:
            log.warning(self.warning)
        if self.schedule_epochs is None and len(self.schedule) != self.num_reinits:
            log.warning("RIFLE: the authors' rule gives %d re-initialization(s) %s on %d epochs with cyclic_num=%d "
                        "(num_reinits=%d) and a %d-epoch tail; list rifle.epochs to choose them yourself",
                        len(self.schedule), self.schedule, self.epochs, self.num_reinits + 1, self.num_reinits,
                        self.min_tail_epochs)

    def on_epoch_begin(self, epoch: int) -> dict | None:
        """Re-initialize if ``epoch`` is scheduled and not done yet; returns the event record, or None.

        "Not done yet": a run resumed from the middle of a re-initialization epoch starts that epoch again and
        must not re-draw the head it has trained since."""
        if epoch not in self.schedule or any(event["epoch"] == epoch for event in self.history):
            return None
        rng = np.random.default_rng([self.seed, epoch])
        report = reinitialize_layer(self.layer, rng, self.init, self.optimizer, self.reset_optimizer_state,
                                    self.layer_name)
        event = {"epoch": epoch, **report}
        self.history.append(event)
        norms = ", ".join(f"{name} {r['norm_before']:.3f}->{r['norm_after']:.3f}"
                          for name, r in report.items() if isinstance(r, dict))
        log.info("RIFLE: re-initialized the classifier before epoch %d (%s)", shown(epoch), norms)
        return event


class RIFLE(paddle.callbacks.Callback):
    """RIFLE as a ``paddle.Model.fit`` callback: ``model.fit(train, callbacks=[RIFLE(num_reinits=3)])``.

    Args:
        num_reinits: ``cyclic_num - 1`` of the authors' code; the schedule is their rule (module docstring).
        epochs: explicit 0-based epochs at whose start to re-initialize (overrides ``num_reinits``).
        min_tail_epochs: epochs that must follow the last re-initialization (the authors': 4).
        min_tail_steps: optimizer steps that must follow it (raises the tail in epochs; 0: no constraint).
        init: ``'authors'`` (default), ``'he_normal'``, ``'uniform'`` or ``'paddletransfer'`` (module docstring).
        reset_optimizer_state: zero the re-drawn parameters' momentum (our option; the authors keep it).
        layer: dotted name of the layer to re-draw; default the model's classifier (``find_classifier``).
        seed: seeds the new weights together with the epoch.
        writer: optional ``visualdl.LogWriter`` for the norms before and after each re-initialization.
    """

    def __init__(self, num_reinits: int = DEFAULTS["num_reinits"], epochs: list[int] | None = None,
                 min_tail_epochs: int = DEFAULTS["min_tail_epochs"], init: str = DEFAULTS["init"],
                 reset_optimizer_state: bool = DEFAULTS["reset_optimizer_state"], layer: str | None = None,
                 seed: int = 0, writer=None, min_tail_steps: int = DEFAULTS["min_tail_steps"]):
        super().__init__()
        checked = _check("RIFLE", num_reinits, epochs, min_tail_epochs, min_tail_steps, init, reset_optimizer_state,
                         layer)
        num_reinits, epochs = checked["num_reinits"], checked["epochs"]
        min_tail_epochs, min_tail_steps = checked["min_tail_epochs"], checked["min_tail_steps"]
        self.num_reinits, self.explicit_epochs, self.min_tail_epochs = num_reinits, epochs, min_tail_epochs
        self.init, self.reset_state, self.layer_name, self.seed = init, reset_optimizer_state, layer, seed
        self.writer, self.min_tail_steps = writer, min_tail_steps
        self.controller: RifleController | None = None
        self._restored_history: list[dict] = []

    @property
    def history(self) -> list[dict]:
        return self.controller.history if self.controller else self._restored_history

    def state_dict(self) -> dict:
        """The re-initializations done so far (the schedule itself is a pure function of the config)."""
        return {"history": list(self.history)}

    def set_state_dict(self, state: dict) -> None:
        self._restored_history = list(state["history"])
        if self.controller is not None:
            self.controller.history = list(self._restored_history)

    def on_train_begin(self, logs=None):
        if not logging.getLogger("rifle_paddle").handlers:  # used from the user's own script: still report
            from ..console import setup_logging
            setup_logging()
        name, layer = find_classifier(self.model.network, self.layer_name)
        self.controller = RifleController(
            layer=layer, optimizer=paddle_compat.model_optimizer(self.model), epochs=self.params["epochs"],
            num_reinits=self.num_reinits, min_tail_epochs=self.min_tail_epochs,
            schedule_epochs=self.explicit_epochs, init=self.init, reset_optimizer_state=self.reset_state,
            seed=self.seed, history=list(self._restored_history), min_tail_steps=self.min_tail_steps,
            steps_per_epoch=self.params.get("steps"), layer_name=name)
        log.info("RIFLE: re-initializing '%s' before epochs %s of %d (rifle.epochs %s: epochs finished before "
                 "each)", name, [shown(e) for e in self.controller.schedule], self.params["epochs"],
                 self.controller.schedule)

    def on_epoch_begin(self, epoch, logs=None):
        event = self.controller.on_epoch_begin(epoch)
        if event is None or self.writer is None:
            return
        for pname, r in event.items():
            if isinstance(r, dict):
                self.writer.add_scalar(f"rifle/{pname}/norm_before", r["norm_before"], shown(epoch))
                self.writer.add_scalar(f"rifle/{pname}/norm_after", r["norm_after"], shown(epoch))
        # beside the loss curves: a 1 at the re-initialization's epoch in train/, and at its first step in
        # train_step/ (the VisualDLLogger's x axes), so the jump in the loss has its cause drawn next to it
        self.writer.add_scalar("train/rifle_reinit", 1.0, shown(epoch))
        steps = self.params.get("steps")
        if steps:
            self.writer.add_scalar("train_step/rifle_reinit", 1.0, epoch * steps + 1)

    def on_epoch_end(self, epoch, logs=None):
        if self.writer is not None and not any(e["epoch"] == epoch for e in self.history):
            self.writer.add_scalar("train/rifle_reinit", 0.0, shown(epoch))
