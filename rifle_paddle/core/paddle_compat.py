"""Every access to a private part of Paddle, in one place, with the Paddle versions it was checked on.

The engine builds on hapi's ``paddle.Model`` and on the optimizer's and ``GradScaler``'s internals where Paddle has
no public way (resuming a run mid-epoch, seeding AMP O2's master weights, setting a gradient). Private names can
change in any Paddle release, so none is used outside this module: ``tests/test_paddle_compat.py`` exercises every
accessor below against Paddle's observable behaviour, so a release that breaks one fails a named test instead of a
user's run (``.ci/run`` runs it on the oldest and the newest supported Paddle), and checks that no other module
touches a private attribute of Paddle's objects.

Checked on: PaddlePaddle 3.0.0, 3.1.1, 3.2.2, 3.3.1 (CPU wheels; ``.ci/run`` tests the oldest and the newest, 3.0.0
and 3.3.1, on every run) unless an accessor says otherwise. What each accessor is for and why the public API cannot
do it: the table in ``docs/development.md`` ("Paddle's private parts"), which ``tests/test_paddle_compat.py`` keeps
listing every accessor.
"""
from __future__ import annotations

import paddle

CHECKED_ON = ("3.0.0", "3.1.1", "3.2.2", "3.3.1")


# ------------------------------------------------------------------------------------------------ random generators
def cpu_rng_state():
    """The CPU generator's state. ``paddle.get_rng_state("cpu")`` lists it; read from the generator itself because
    Paddle 3.0's ``set_rng_state(..., device="cpu")`` fails (``'str' object has no attribute
    '_convert_to_place'``: its parameter ``device`` shadows the module ``paddle.device``)."""
    return paddle.base.core.default_cpu_generator().get_state()


def set_cpu_rng_state(state) -> None:
    """Put back ``cpu_rng_state()`` (also a one-element list, as ``paddle.get_rng_state("cpu")`` gives)."""
    if isinstance(state, (list, tuple)):
        state = state[0]
    paddle.base.core.default_cpu_generator().set_state(state)


def set_cpu_threads(threads: int) -> None:
    """Run Paddle's CPU kernels on ``threads`` threads (``paddle.base.core.set_num_threads``)."""
    paddle.base.core.set_num_threads(threads)


def cuda_rng_state(device: int):
    """The generator of one card (``paddle.get_cuda_rng_state`` lists every visible card, and
    ``set_cuda_rng_state`` refuses another count). Checked on a GPU with 3.3 only (no card here)."""
    return paddle.base.core.default_cuda_generator(device).get_state()


def set_cuda_rng_state(device: int, state) -> None:
    paddle.base.core.default_cuda_generator(device).set_state(state)


# ------------------------------------------------------------------------------------------------------- optimizers
def learning_rate(optimizer):
    """The optimizer's learning rate as given: a float or the ``LRScheduler`` it steps (``_learning_rate``)."""
    return optimizer._learning_rate


def create_accumulators(optimizer, params: list) -> None:
    """Create the optimizer's per-parameter state (momentum velocity, Adam moments) now instead of at the first
    ``step`` (``_create_accumulators``), so a checkpoint's values can be put into it."""
    optimizer._create_accumulators(paddle.static.default_main_program().global_block(), params)


def accumulators(optimizer) -> dict:
    """``{accumulator name: {parameter name: tensor}}`` (``_accumulators``), e.g. ``velocity`` of Momentum; empty
    before the first step or ``create_accumulators``."""
    return getattr(optimizer, "_accumulators", None) or {}


def adam_betas(optimizer) -> tuple[float, float]:
    """``(beta1, beta2)`` of an Adam-style optimizer (``_beta1``, ``_beta2``), Adam's defaults for others: the
    values its bias-correction powers start from."""
    return float(getattr(optimizer, "_beta1", 0.9)), float(getattr(optimizer, "_beta2", 0.999))


def master_weights(optimizer) -> dict:
    """``{parameter name: fp32 master weight}`` of an AMP O2 optimizer (``_master_weights``; empty otherwise)."""
    return getattr(optimizer, "_master_weights", None) or {}


def seed_master_weight(optimizer, parameter, value) -> None:
    """Switch the optimizer to multi-precision and give ``parameter`` (half precision) the fp32 master weight
    ``value`` (``_multi_precision``, ``_create_master_weight``)."""
    optimizer._multi_precision = True
    optimizer._create_master_weight(parameter).set_value(value)


def cast_for_o2(network, dtype: str) -> None:
    """Cast ``network`` in place as AMP O2 does, batch norm kept in fp32 (``paddle.amp.auto_cast.amp_initialize``,
    which, unlike ``paddle.amp.decorate``, also casts off the GPU)."""
    from paddle.amp.auto_cast import amp_initialize
    amp_initialize([network], dtype, None)


# ----------------------------------------------------------------------------------------------- layers and tensors
def is_batch_norm(layer) -> bool:
    """A batch norm of the ``paddle.nn`` API (``BatchNorm1D/2D/3D``, ``SyncBatchNorm``:
    ``nn.layer.norm._BatchNormBase``)."""
    return isinstance(layer, paddle.nn.layer.norm._BatchNormBase)


def running_statistics(layer) -> tuple:
    """A batch norm's running ``(mean, variance)`` buffers (``_mean``, ``_variance``)."""
    return layer._mean, layer._variance


def set_gradient(parameter, gradient) -> None:
    """Set ``parameter.grad`` to ``gradient`` where backward gave it none (``_set_grad_ivar``; Paddle has no public
    setter)."""
    parameter._set_grad_ivar(gradient)


# -------------------------------------------------------------------------------------------------- AMP's GradScaler
def loss_scale(scaler) -> float:
    """The current loss scale of a ``GradScaler`` (1 when disabled; ``_enable``, ``_scale``)."""
    return float(scaler._scale.item()) if scaler._enable else 1.0


def set_loss_scale(scaler, value: float) -> None:
    scaler._scale = paddle.to_tensor([float(value)], dtype="float32")


def update_loss_scale(scaler) -> tuple[float, float] | None:
    """Paddle's dynamic loss-scale rule (``AmpScaler._update``, unchanged from 3.0 to 3.3) on the scaler's
    counters: after ``decr_every_n_nan_or_inf`` overflowing steps the scale is multiplied by ``decr_ratio``, after
    ``incr_every_n_steps`` clean steps by ``incr_ratio``. Returns ``(before, after)`` when it lowered the scale.
    ``GradScaler.update`` calls ``_update``, which ``engine.amp.LossScaler`` overrides with this."""
    if not scaler._enable:
        return None
    if scaler._cache_found_inf:
        scaler._incr_count = 0
        scaler._decr_count += 1
        if scaler._decr_count == scaler._decr_every_n_nan_or_inf:
            before = float(scaler._scale.item())
            scaler._scale = scaler._scale * scaler._decr_ratio
            scaler._decr_count = 0
            return before, before * scaler._decr_ratio
        return None
    scaler._decr_count = 0
    scaler._incr_count += 1
    if scaler._incr_count == scaler._incr_every_n_steps:
        scaler._scale = scaler._scale * scaler._incr_ratio
        scaler._incr_count = 0
    return None


# -------------------------------------------------------------------------------------------------- hapi paddle.Model
def model_optimizer(model):
    """The optimizer ``prepare`` was given (``_optimizer``), None before."""
    return model._optimizer


def model_loss(model):
    """The loss ``prepare`` was given (``_loss``)."""
    return model._loss


def model_metrics(model) -> list:
    """The metrics ``prepare`` was given (``_metrics``)."""
    return model._metrics


def amp_level(model) -> str:
    """``O0`` (no AMP), ``O1`` or ``O2``, as ``prepare`` set it (``_adapter._amp_level``)."""
    return getattr(model._adapter, "_amp_level", "O0")


def amp_configs(model) -> dict:
    """The ``GradScaler`` arguments ``prepare`` derived from ``amp_configs`` (``_adapter._amp_configs``)."""
    return model._adapter._amp_configs


def amp_custom_lists(model) -> dict:
    """``custom_white_list`` / ``custom_black_list`` for ``auto_cast`` (``_adapter._amp_custom_lists``)."""
    return getattr(model._adapter, "_amp_custom_lists", {})


def world_size_of(model) -> int:
    """How many ranks hapi trains on (``_adapter._nranks``); 1 outside ``paddle.distributed.launch``."""
    return getattr(model._adapter, "_nranks", 1)


def parallel_network(model):
    """The DataParallel wrapper hapi built on several ranks (``_adapter.ddp_model``), else the network."""
    return model._adapter.ddp_model if world_size_of(model) > 1 else model.network


def merge_counts(model) -> dict:
    """hapi's running counts that cut the distributed sampler's padding off gathered eval outputs
    (``_adapter._merge_count``: ``eval_total``, ``eval_batch``); written back by the caller."""
    return model._adapter._merge_count


def test_loader(model):
    """The test loader hapi's ``fit``/``evaluate`` is running (``_test_dataloader``), or None."""
    return getattr(model, "_test_dataloader", None)


def model_grad_scaler(model):
    """hapi's ``GradScaler`` slot (``_scaler``; ``prepare`` resets it to None)."""
    return getattr(model, "_scaler", None)


def set_model_grad_scaler(model, scaler) -> None:
    model._scaler = scaler


def begin_fit(model, eval_data) -> None:
    """What hapi's ``fit`` sets before its epoch loop (``_accumulate``, ``num_iters``, ``stop_training``,
    ``_test_dataloader``)."""
    model._accumulate, model.num_iters, model.stop_training = 1, None, False
    model._test_dataloader = eval_data


def end_fit(model) -> None:
    model._test_dataloader = None


def metric_names(model) -> list:
    """``['loss', ...metric names]`` as hapi reports them (``_metrics_name``)."""
    return model._metrics_name()


def run_one_epoch(model, loader, callbacks, mode: str) -> dict:
    """One pass of hapi's loop over ``loader`` (``_run_one_epoch``) in ``mode`` ``train`` or ``eval``, with a fresh
    logs dict (hapi's default one is shared between calls)."""
    return model._run_one_epoch(loader, callbacks, mode, {})
