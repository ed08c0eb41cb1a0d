"""RIFLE: re-initialize the fully-connected classifier a few times during fine-tuning.

Li, Xiong, An, Xu, Dou. "RIFLE: Backpropagation in Depth for Deep Transfer Learning through Re-Initializing the
Fully-connected LayEr", ICML 2020 (arXiv:2007.03349).

Why it works: once a freshly initialized head has fitted the target task, the gradients it sends into the backbone
are small and the deep (early) layers stay near their pretrained values. Re-drawing the head at random makes the
loss large again, and the resulting large, still meaningful gradients reach deep into the backbone. Stopping the
re-initializations a few epochs before the end lets the head and the backbone converge together.

Schedule (the authors' ``fine_tuning/run.py`` with ``cyclic_num = num_reinits + 1``): the run of ``E`` epochs is cut
into ``num_reinits + 1`` cycles of ``E // (num_reinits + 1)`` epochs; the head is re-drawn at the start of every
cycle but the first. Equal cycles always leave at least one cycle at the end, so ``min_tail_epochs`` only binds
when the cycles are shorter than it: the tail is then clipped to one cycle, with a warning. An explicit list of
epochs may be given instead (PaddleTransfer's ``reinit_epochs``); it must keep the tail free.

What is re-drawn: the weight AND the bias of the whole classifier layer (the authors re-initialize every ``fc``
parameter; PaddleTransfer only the weight), from He-normal ``N(0, sqrt(2 / fan_in))`` as the authors, or
``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` as PaddleTransfer; ``fan_in`` is the layer's input width, for the bias too.

Optimizer state: by default the re-drawn parameters' accumulators (SGD momentum velocity, Adam moments) are reset.
The old velocity points along the gradient of a head that no longer exists; keeping it (as the authors' static
graph implicitly did) adds one stale step of size ~ lr / (1 - momentum) to the fresh weights, which on a 0.9
momentum run is about ten plain steps of noise into the new head. Set ``reset_optimizer_state=False`` to reproduce
the authors exactly. The learning-rate schedule is not restarted (as the authors).

Reproducibility and multi-GPU: the new weights are drawn from a NumPy generator seeded with ``(seed, epoch)`` and
independent of Paddle's global RNG, so (1) they do not perturb data order or dropout streams, (2) a resumed run
draws exactly the same heads, (3) every rank of a ``paddle.distributed.launch`` run draws identical weights
without a broadcast.
"""
from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import paddle
from paddle import nn

from ..models.classifier import find_classifier

log = logging.getLogger(__name__)

INITIALIZERS = ("he_normal", "uniform")


def rifle_schedule(epochs: int, num_reinits: int = 3, min_tail_epochs: int = 5,
                   explicit: list[int] | None = None) -> list[int]:
    """0-based epochs at whose start the classifier is re-initialized.

    >>> rifle_schedule(40, 3)      # the authors' cyclic_num=4 on 40 epochs
    [10, 20, 30]
    >>> rifle_schedule(40, 2)      # cyclic_num=3
    [13, 26]
    """
    if epochs <= 0:
        raise ValueError(f"epochs must be positive, got {epochs}")
    if explicit is not None:
        bad = [e for e in explicit if not 0 < e < epochs]
        if bad:
            raise ValueError(f"re-initialization epochs {bad} are outside 1..{epochs - 1}")
        tail_start = epochs - min_tail_epochs
        late = [e for e in explicit if e > tail_start]
        if late:
            raise ValueError(f"re-initialization epochs {late} fall in the last {min_tail_epochs} epochs "
                             f"(min_tail_epochs), which are kept for convergence")
        return sorted(set(explicit))
    if num_reinits < 0:
        raise ValueError(f"num_reinits must be >= 0, got {num_reinits}")
    if num_reinits == 0:
        return []
    period = epochs // (num_reinits + 1)
    if period == 0:
        raise ValueError(f"{num_reinits} re-initializations need at least {num_reinits + 1} epochs, got {epochs}")
    if period < min_tail_epochs:
        warnings.warn(f"RIFLE: cycles of {period} epochs are shorter than min_tail_epochs={min_tail_epochs}; "
                      f"the convergence tail is clipped to {epochs - num_reinits * period} epochs",
                      stacklevel=2)
    return [i * period for i in range(1, num_reinits + 1)]


def _fan_in(layer: nn.Layer, weight: paddle.Tensor) -> int:
    shape = list(weight.shape)
    if isinstance(layer, nn.Linear) or len(shape) == 2:  # Paddle's Linear weight is [in, out]
        return int(shape[0])
    return int(np.prod(shape[1:]))  # conv: [out, in/groups, *kernel]


def _draw(rng: np.random.Generator, init: str, shape: list[int], fan_in: int) -> np.ndarray:
    if init == "he_normal":
        return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)
    if init == "uniform":
        bound = 1.0 / math.sqrt(fan_in)
        return rng.uniform(-bound, bound, size=shape)
    raise ValueError(f"unknown initializer '{init}', expected one of {', '.join(INITIALIZERS)}")


def reset_optimizer_state(optimizer: paddle.optimizer.Optimizer, params: list[paddle.Tensor]) -> list[str]:
    """Reset the optimizer's per-parameter accumulators of ``params`` to their initial values.

    Accumulators are created lazily at the first step, so there may be nothing to reset yet. Returns the
    accumulator names that were reset (for the log).
    """
    names = {p.name for p in params}
    touched = []
    for acc_name, per_param in getattr(optimizer, "_accumulators", {}).items():
        for pname, acc in per_param.items():
            if pname not in names:
                continue
            if "beta1_pow" in acc_name:  # Adam-style bias-correction powers restart at beta, not 0
                value = float(getattr(optimizer, "_beta1", 0.9))
            elif "beta2_pow" in acc_name:
                value = float(getattr(optimizer, "_beta2", 0.999))
            else:
                value = 0.0
            acc.set_value(paddle.full(acc.shape, value, dtype=acc.dtype))
            touched.append(f"{acc_name}[{pname}]")
    return touched


@paddle.no_grad()
def reinitialize_layer(layer: nn.Layer, rng: np.random.Generator, init: str = "he_normal",
                       optimizer: paddle.optimizer.Optimizer | None = None,
                       reset_state: bool = True) -> dict:
    """Re-draw every parameter of ``layer`` in place; return norms before/after per parameter.

    In place (``set_value``) so the Parameter objects, and with them the optimizer's parameter list and any
    DataParallel buckets, stay valid. With AMP O2 the optimizer's fp32 master copy is overwritten too, otherwise
    the next step would restore the old head from it.
    """
    params = [p for p in layer.parameters(include_sublayers=True)]
    if not params:
        raise ValueError(f"{type(layer).__name__} has no parameters to re-initialize")
    weight = getattr(layer, "weight", None)
    fan_in = _fan_in(layer, weight if weight is not None else params[0])
    master = getattr(optimizer, "_master_weights", {}) if optimizer is not None else {}
    report = {}
    for p in params:
        before = float(paddle.linalg.norm(p.astype("float32")))
        value = _draw(rng, init, list(p.shape), fan_in)
        p.set_value(paddle.to_tensor(value, dtype=p.dtype, place=p.place))
        if p.name in master:
            master[p.name].set_value(paddle.to_tensor(value, dtype=master[p.name].dtype, place=p.place))
        report[p.name] = {"norm_before": before, "norm_after": float(paddle.linalg.norm(p.astype("float32")))}
    if optimizer is not None and reset_state:
        report["reset_accumulators"] = reset_optimizer_state(optimizer, params)
    return report


@dataclass
class RifleController:
    """RIFLE for a hand-written dygraph loop: call ``controller.on_epoch_begin(epoch)`` before each epoch.

    >>> rifle = RifleController(model.fc, optimizer, epochs=40, num_reinits=3)
    >>> for epoch in range(40):
    ...     rifle.on_epoch_begin(epoch)      # re-draws model.fc at epochs 10, 20, 30
    ...     train_one_epoch(...)
    """

    layer: nn.Layer
    optimizer: paddle.optimizer.Optimizer | None
    epochs: int
    num_reinits: int = 3
    min_tail_epochs: int = 5
    schedule_epochs: list[int] | None = None
    init: str = "he_normal"
    reset_optimizer_state: bool = True
    seed: int = 0
    history: list[dict] = field(default_factory=list)

    def __post_init__(self):
        if self.init not in INITIALIZERS:
            raise ValueError(f"unknown initializer '{self.init}', expected one of {', '.join(INITIALIZERS)}")
        self.schedule = rifle_schedule(self.epochs, self.num_reinits, self.min_tail_epochs, self.schedule_epochs)

    def on_epoch_begin(self, epoch: int) -> dict | None:
        """Re-initialize if ``epoch`` is scheduled and not done yet; returns the event record, or None.

        "Not done yet": a run resumed from the middle of a re-initialization epoch starts that epoch again and
        must not re-draw the head it has trained since."""
        if epoch not in self.schedule or any(event["epoch"] == epoch for event in self.history):
            return None
        rng = np.random.default_rng([self.seed, epoch])
        report = reinitialize_layer(self.layer, rng, self.init, self.optimizer, self.reset_optimizer_state)
        event = {"epoch": epoch, **report}
        self.history.append(event)
        norms = ", ".join(f"{name} {r['norm_before']:.3f}->{r['norm_after']:.3f}"
                          for name, r in report.items() if isinstance(r, dict))
        log.info("RIFLE: re-initialized the classifier at the start of epoch %d (%s)", epoch, norms)
        return event


class RIFLE(paddle.callbacks.Callback):
    """RIFLE as a ``paddle.Model.fit`` callback: ``model.fit(train, callbacks=[RIFLE(num_reinits=3)])``.

    Args:
        num_reinits: re-initializations, evenly spaced (``cyclic_num - 1`` in the authors' code).
        epochs: explicit 0-based epochs at whose start to re-initialize (overrides ``num_reinits``).
        min_tail_epochs: last epochs kept free of re-initialization.
        init: ``'he_normal'`` (authors) or ``'uniform'`` (PaddleTransfer).
        reset_optimizer_state: reset the re-drawn parameters' momentum (see the module docstring).
        layer: dotted name of the layer to re-draw; default the model's classifier (``find_classifier``).
        seed: seeds the new weights together with the epoch.
        writer: optional ``visualdl.LogWriter`` for the norms before and after each re-initialization.
    """

    def __init__(self, num_reinits: int = 3, epochs: list[int] | None = None, min_tail_epochs: int = 5,
                 init: str = "he_normal", reset_optimizer_state: bool = True, layer: str | None = None,
                 seed: int = 0, writer=None):
        super().__init__()
        if init not in INITIALIZERS:
            raise ValueError(f"unknown initializer '{init}', expected one of {', '.join(INITIALIZERS)}")
        self.num_reinits, self.explicit_epochs, self.min_tail_epochs = num_reinits, epochs, min_tail_epochs
        self.init, self.reset_state, self.layer_name, self.seed = init, reset_optimizer_state, layer, seed
        self.writer = writer
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
            layer=layer, optimizer=self.model._optimizer, epochs=self.params["epochs"],
            num_reinits=self.num_reinits, min_tail_epochs=self.min_tail_epochs,
            schedule_epochs=self.explicit_epochs, init=self.init, reset_optimizer_state=self.reset_state,
            seed=self.seed, history=list(self._restored_history))
        log.info("RIFLE: re-initializing '%s' at the start of epochs %s of %d", name,
                 self.controller.schedule, self.params["epochs"])

    def on_epoch_begin(self, epoch, logs=None):
        event = self.controller.on_epoch_begin(epoch)
        if event is None or self.writer is None:
            return
        for pname, r in event.items():
            if isinstance(r, dict):
                self.writer.add_scalar(f"rifle/{pname}/norm_before", r["norm_before"], epoch)
                self.writer.add_scalar(f"rifle/{pname}/norm_after", r["norm_after"], epoch)
