"""Everything a training process holds that decides what it computes next, captured and put back.

A resumed run must continue *exactly*, not approximately: the network is not enough. Besides the weights
(batch-norm statistics included) and the optimizer's accumulators with the learning-rate schedule (part of
``optimizer.state_dict()``), the next batches depend on the random generators, on the sampler's epoch counter
(with ``run.seed``, the shuffling seed of ``data.sampler.SeededBatchSampler``), on AMP's loss scale, and on
stateful pieces of the method: RIFLE's record of re-initializations, the regularizer's frozen pretrained reference,
the recorder's metrics so far, the regularization monitor's history.

Those pieces plug in through one protocol: any training step or callback with ``state_dict()`` and
``set_state_dict(state)`` is a *component* (``stateful_components``) and is saved and restored under a stable name;
nothing else in the engine needs to know about it.

Random streams come in two groups, because they are consumed in two places. The *data* streams (Python's
``random``, NumPy's global generator) are drawn by the input pipeline, possibly ahead of training in a prefetch
thread, and seed the worker processes; the *model* streams (Paddle's CPU and CUDA generators) are drawn by the
training step (dropout, DisturbLabel). At an epoch boundary both are quiescent and one snapshot serves. In the
middle of an epoch the data streams have already run ahead by an unknown number of prefetched batches, so a
mid-epoch checkpoint keeps the data streams of the epoch's start and the model streams of the current step, and
the resumed run replays the epoch's finished batches through the loader (see ``resume.fit_from``).
"""
from __future__ import annotations

import random
import re
from collections import Counter
from typing import Any, Iterable, Protocol

import numpy as np
import paddle

from ..core import paddle_compat
from ..core.weights import load_weights


class Stateful(Protocol):
    """A training step or callback whose state a checkpoint must keep (same protocol as ``paddle.nn.Layer``)."""

    def state_dict(self) -> dict: ...

    def set_state_dict(self, state: dict) -> Any: ...


def is_stateful(obj) -> bool:
    """Duck-typed, through ``getattr``: a wrapper forwarding attributes to a stateful step (DisturbLabel) counts
    (``isinstance`` on a Protocol looks attributes up statically since Python 3.12 and would miss it)."""
    return callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "set_state_dict", None))


# ---------------------------------------------------------------------------------------------------- random streams
def capture_rng() -> dict:
    """Every global random generator's state, in a form ``paddle.save`` accepts. On a GPU: the generator of this
    process's card only (``paddle_cuda_device``), which any card can take back, where Paddle's
    ``get_cuda_rng_state`` lists every visible card and ``set_cuda_rng_state`` refuses another count."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [kind, key.tolist(), int(pos), int(has_gauss), float(gauss)],
             "paddle_cpu": [paddle_compat.cpu_rng_state()]}  # a list, as paddle.get_rng_state("cpu") gives
    device = current_gpu()
    if device is not None:
        state["paddle_cuda_device"] = paddle_compat.cuda_rng_state(device)
    return state


def current_gpu() -> int | None:
    """The card this process computes on (its rank's under ``paddle.distributed.launch``), None without one."""
    if not paddle.is_compiled_with_cuda() or paddle.device.cuda.device_count() == 0:
        return None
    device = paddle.device.get_device()  # "gpu:<id>" on a card
    return int(device.split(":")[1]) if device.startswith("gpu:") else None


def restore_rng(state: dict) -> None:
    random.setstate(_as_tuples(state["python"]))
    kind, key, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(key, dtype=np.uint32), pos, has_gauss, gauss))
    paddle_compat.set_cpu_rng_state(state["paddle_cpu"])
    device = current_gpu()
    if device is None:
        return
    if "paddle_cuda_device" in state:
        paddle_compat.set_cuda_rng_state(device, state["paddle_cuda_device"])
    elif len(state.get("paddle_cuda", [])) == paddle.device.cuda.device_count():  # written by an older version
        paddle.set_cuda_rng_state(state["paddle_cuda"])


def mid_epoch_rng(at_epoch_start: dict, now: dict) -> dict:
    """The data streams as at the epoch's start, the model streams as now (see the module docstring)."""
    return {**now, "python": at_epoch_start["python"], "numpy": at_epoch_start["numpy"]}


def _as_tuples(value):
    """``random.setstate`` needs the nested tuples ``getstate`` gave (a reload may turn them into lists)."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


# -------------------------------------------------------------------------------------------------------- components
def stateful_components(train_step, callbacks: Iterable) -> dict[str, Stateful]:
    """The training step and the callbacks that keep state, under names stable from one process to the next:
    ``train_step`` and the callback's class name (``#2``, ``#3`` for a second, third of one class)."""
    components: dict[str, Stateful] = {}
    if is_stateful(train_step):
        components["train_step"] = train_step
    seen: Counter = Counter()
    for callback in callbacks:
        if is_stateful(callback):
            name = type(callback).__name__
            seen[name] += 1
            components[name if seen[name] == 1 else f"{name}#{seen[name]}"] = callback
    return components


def restore_components(components: dict[str, Stateful], states: dict[str, dict]) -> None:
    """Restore every component; the two sets of names must match (a silent partial restore would continue a
    different run)."""
    missing, unknown = sorted(set(components) - set(states)), sorted(set(states) - set(components))
    if missing or unknown:
        raise ValueError("the checkpoint does not fit this run's components: "
                         + "; ".join(filter(None, [missing and f"no saved state for {', '.join(missing)}",
                                                   unknown and f"saved state for unknown {', '.join(unknown)}"])))
    for name, component in components.items():
        component.set_state_dict(states[name])


# ------------------------------------------------------------------------------------- the model's state, in one
def capture_training(model, components: dict[str, Stateful], mid_epoch: bool) -> dict:
    """The state file's part that belongs to the model and the components (the network and optimizer go to files of
    their own): AMP's loss scale, the parameters' structured names (``restore_optimizer``), every component's
    state, and, in the middle of an epoch, the metrics' running totals (``paddle.metric.Accuracy``: ``total`` and
    ``count``), so that an epoch interrupted midway reports its accuracy over all its batches."""
    scaler, totals = paddle_compat.model_grad_scaler(model), None
    if mid_epoch:
        totals = [{"total": [float(t) for t in m.total], "count": [int(c) for c in m.count]}
                  if hasattr(m, "total") and hasattr(m, "count") else None for m in paddle_compat.model_metrics(model)]
    return {"metric_totals": totals,
            "grad_scaler": scaler.state_dict() if scaler is not None else None,
            "parameter_names": parameter_names(model.network),
            "components": {name: component.state_dict() for name, component in components.items()}}


def restore_training(model, components: dict[str, Stateful], network: dict, optimizer: dict, state: dict) -> None:
    """Put back the network, the optimizer and what ``capture_training`` kept. Raises ``ValueError`` or
    ``KeyError`` for a checkpoint that does not fit the model. ``TransferModel`` creates AMP's scaler lazily, so
    it is asked for it (``grad_scaler()``)."""
    restore_network(model.network, network)
    restore_optimizer(paddle_compat.model_optimizer(model), optimizer, model.network, state["parameter_names"])
    scaler = model.grad_scaler()
    if state.get("grad_scaler") is not None and scaler is not None:
        scaler.load_state_dict(state["grad_scaler"])
    restore_components(components, state["components"])
    for metric, saved in zip(paddle_compat.model_metrics(model), state.get("metric_totals") or []):
        if saved is not None:
            metric.total, metric.count = list(saved["total"]), list(saved["count"])


# ----------------------------------------------------------------------------------------- network, optimizer
def restore_network(network: paddle.nn.Layer, state: dict) -> None:
    """Strictly (``core.weights``): Paddle only warns about missing or misshapen entries, which here would mean
    continuing with part of the network re-initialized. fp32 files load into an AMP O2 network."""
    load_weights(network, state, "this run's network")


def parameter_names(network: paddle.nn.Layer) -> dict[str, str]:
    """``{unique name: structured name}`` of the network's parameters (``conv2d_7.w_0`` -> ``layer1.0.conv1.weight``).

    Paddle keys optimizer state by unique names, which depend on how many layers the process created before:
    the same network built again in the same process (a sweep resuming its runs) gets other names. A checkpoint
    keeps this map so ``restore_optimizer`` can match saved state to parameters by their structured names.
    """
    return {p.name: name for name, p in network.named_parameters()}


_COUNTER = re.compile(r"_\d+$")  # Paddle appends a unique counter to an accumulator's name
#: AMP O2 (``multi_precision``): Paddle keys the accumulators of a half-precision parameter by its fp32 master
#: weight, ``<param>_fp32_master_<n>``, so the state's key is ``<param>_fp32_master_0_velocity_0``
_MASTER = re.compile(r"^fp32_master_\d+_")


def restore_optimizer(optimizer: paddle.optimizer.Optimizer, state: dict, network: paddle.nn.Layer,
                      saved_names: dict[str, str]) -> None:
    """Put a saved ``optimizer.state_dict()`` (accumulators, fp32 master weights, learning-rate schedule) into
    ``optimizer`` by structured parameter name (``saved_names``: ``parameter_names`` of the saving network).

    Not ``optimizer.set_state_dict``: besides matching by unique names (see ``parameter_names``), Paddle only
    parks loaded accumulators until the next ``step``, so anything that edits optimizer state before it (RIFLE
    resetting a new head's momentum at the very epoch a run resumes at) would find nothing, and the parked old
    values would come back at the step. Here the accumulators are created at once and then filled.
    """
    schedule = paddle_compat.learning_rate(optimizer)
    if isinstance(schedule, paddle.optimizer.lr.LRScheduler) and state.get("LR_Scheduler"):
        schedule.set_state_dict(state["LR_Scheduler"])
    current = dict(network.named_parameters())
    params = [p for p in current.values() if not p.stop_gradient]
    paddle_compat.create_accumulators(optimizer, params)
    by_length = sorted(saved_names, key=len, reverse=True)
    for key, value in state.items():
        if key == "LR_Scheduler":
            continue
        if key == "master_weights":  # AMP O2: {unique name: fp32 copy}
            for old, master in value.items():
                paddle_compat.master_weights(optimizer)[_current_param(current, saved_names, old).name].set_value(
                    master)
            continue
        old = next((n for n in by_length if key.startswith(n + "_")), None)
        if old is None:
            raise ValueError(f"optimizer state '{key}' belongs to no parameter of the saved network")
        accumulator = _COUNTER.sub("", _MASTER.sub("", key[len(old) + 1:]))
        per_param = paddle_compat.accumulators(optimizer).get(accumulator, {})
        owner = _accumulator_owner(optimizer, _current_param(current, saved_names, old), per_param)
        if owner is None:
            raise ValueError(f"optimizer state '{key}': this optimizer has no '{accumulator}' for {saved_names[old]}")
        per_param[owner].set_value(value)


def _accumulator_owner(optimizer, param, per_param: dict) -> str | None:
    """The key of ``param``'s accumulator in ``per_param``: its fp32 master weight's name when this optimizer keeps
    one (AMP O2), else its own; None when it has none. Which of the two the saving run used does not matter, so an
    O2 checkpoint resumes under O2 whatever the unique names, and state moves between precisions."""
    master = paddle_compat.master_weights(optimizer).get(param.name)
    for name in ((master.name,) if master is not None else ()) + (param.name,):
        if name in per_param:
            return name
    return None


def _current_param(current: dict, saved_names: dict[str, str], old: str):
    structured = saved_names.get(old)
    if structured not in current:
        raise ValueError(f"the saved optimizer state names parameter {structured or old}, which this network lacks")
    return current[structured]


# ------------------------------------------------------------------------------------------------------ the sampler
def sampler_epoch(loader) -> int | None:
    """The epoch counter of a ``DistributedBatchSampler``, which seeds its shuffling (``SeededBatchSampler``: with
    the run's seed, a config key a resume may not change, so the counter is all a checkpoint needs); None for other
    samplers."""
    return getattr(getattr(loader, "batch_sampler", None), "epoch", None)


def set_sampler_epoch(loader, epoch: int | None) -> None:
    sampler = getattr(loader, "batch_sampler", None)
    if epoch is not None and hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
