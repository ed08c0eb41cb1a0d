"""Mixed precision on the CPU: what of Paddle's AMP can run without a GPU, with stand-ins for half precision.

Paddle disables its loss scaler and its casts on the CPU, so these tests switch the scaler on by making it believe
the tracer's place is a GPU (``gpu_place_for_scaler``); its kernels (``check_finite_and_unscale``) run on the CPU.
What needs real fp16 kernels is in ``tests/gpu/``.
"""
from __future__ import annotations

import numpy as np
import paddle
import pytest
from gpu_stand_in import enable_loss_scaler_on_cpu
from tiny_net import linear_model

from rifle_paddle.engine.amp import LossScaler, convert_for_o2, fp32_state_dict
from rifle_paddle.engine.model import TransferModel
from rifle_paddle.models import create_model


@pytest.fixture
def gpu_place_for_scaler(monkeypatch):
    """Enable Paddle's loss scaler on the CPU (it would disable itself with a warning)."""
    enable_loss_scaler_on_cpu(monkeypatch.setattr)


def test_an_overflow_lowers_the_loss_scale_and_skips_the_step(gpu_place_for_scaler):
    """Paddle's GradScaler raised TypeError here with NumPy 2 (float() of its shape-[1] scale)."""
    model = linear_model({"level": "O1", "init_loss_scaling": 2.0 ** 15})
    weight = model.network.weight.numpy().copy()
    label = np.zeros([1], dtype="int64")
    # the mean output is finite in float32 (~1e35) but 2^15 times it is not: the scaled gradient overflows
    model.train_batch([np.full([1, 2], 1e35, dtype="float32")], [label])
    assert isinstance(model._scaler, LossScaler) and model._scaler.loss_scale == 2.0 ** 14
    np.testing.assert_array_equal(model.network.weight.numpy(), weight)  # the step was skipped
    # a normal batch then steps with the unscaled gradient: d mean(w.x + b)/dw = x, times lr 0.1
    model.train_batch([np.ones([1, 2], dtype="float32")], [label])
    np.testing.assert_allclose(model.network.weight.numpy(), weight - 0.1, rtol=1e-6)
    assert model._scaler.loss_scale == 2.0 ** 14


def test_loss_scaler_state_is_paddles(gpu_place_for_scaler):
    """A checkpoint's scaler state written by Paddle's GradScaler loads into ours and back."""
    paddle_scaler = paddle.amp.GradScaler(init_loss_scaling=512.0, incr_every_n_steps=7)
    ours = LossScaler()
    ours.load_state_dict(paddle_scaler.state_dict())
    assert ours.loss_scale == 512.0 and ours.state_dict()["incr_every_n_steps"] == 7


# ------------------------------------------------------------------------------------ O2: half-precision weights
# bfloat16 stands in for float16 (the same rounding problem, 8 bits of mantissa instead of 11; both cast on the CPU)
HALF = "bfloat16"


def _resnet_o2(num_classes: int = 3):
    """A ResNet-18 as O2 leaves it (half precision but batch norm), with its SGD and the weights before the cast."""
    paddle.seed(1)
    net = create_model("resnet18", num_classes=num_classes)
    exact = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    optimizer = paddle.optimizer.Momentum(0.1, parameters=net.parameters())
    convert_for_o2(net, optimizer, HALF)
    return net, optimizer, exact


def test_o2_keeps_the_exact_fp32_weights_as_master_and_saves_them():
    """Paddle creates master weights at the first step from the rounded half weights; ours hold the values from
    before the cast, and the state saved is float32 and equal to them."""
    net, optimizer, exact = _resnet_o2()
    assert net.conv1.weight.dtype == paddle.bfloat16 and net.bn1.weight.dtype == paddle.float32
    assert not np.array_equal(net.conv1.weight.astype("float32").numpy(), exact["conv1.weight"])  # rounded
    state = fp32_state_dict(net, optimizer)
    assert {str(v.dtype) for v in state.values() if v.is_floating_point()} == {"paddle.float32"}
    for key, value in state.items():
        np.testing.assert_array_equal(value.numpy(), exact[key], err_msg=key)


def _o2_model(net, optimizer) -> TransferModel:
    model = TransferModel(net)
    model.prepare(optimizer, paddle.nn.CrossEntropyLoss(), amp_configs={"level": "O2"})
    return model


def test_o2_checkpoints_load_into_an_fp32_network_and_back(tmp_path, tiny_config):
    """best.pdparams and the resumable checkpoint (published as last.pdparams) of an O2 model load into the fp32
    network eval.py builds (they held half-precision tensors: "dtype not match"), and a resumed O2 run loads the
    fp32 checkpoint into its half-precision network."""
    from rifle_paddle.records import RunRecorder
    from rifle_paddle.engine.resume import Checkpointer
    from rifle_paddle.engine.training_state import restore_network
    net, optimizer, exact = _resnet_o2()
    model = _o2_model(net, optimizer)
    checkpointer = Checkpointer(str(tmp_path), None, tiny_config())
    checkpointer.set_model(model)
    checkpointer._save()
    recorder = RunRecorder(str(tmp_path))
    recorder.set_model(model)
    recorder.on_epoch_begin(0)
    recorder.on_eval_end({"acc_top1": 0.5})
    for name in ("last.pdparams", "best.pdparams"):
        fp32 = create_model("resnet18", num_classes=3)
        fp32.set_state_dict(paddle.load(str(tmp_path / name)))  # Paddle's own loading, no conversion
        for key, value in fp32.state_dict().items():
            np.testing.assert_array_equal(value.numpy(), exact[key], err_msg=f"{name}: {key}")
    resumed, _, _ = _resnet_o2()
    resumed.conv1.weight.set_value(paddle.zeros_like(resumed.conv1.weight))
    restore_network(resumed, paddle.load(str(tmp_path / "last.pdparams")))
    np.testing.assert_array_equal(resumed.conv1.weight.numpy(), net.conv1.weight.numpy())


def test_eval_loads_a_half_precision_checkpoint(tmp_path, tiny_config):
    """A .pdparams holding half-precision weights (an O2 run of an earlier version) is cast on load."""
    from rifle_paddle.engine import evaluate
    net, _, _ = _resnet_o2()
    path = str(tmp_path / "half.pdparams")
    paddle.save(net.state_dict(), path)
    result = evaluate(tiny_config(f"model.checkpoint={path}"))
    assert result["num_test"] == 12 and 0.0 <= result["acc_top1"] <= 1.0


def test_l2sp_under_o2_measures_from_the_fp32_master_weights():
    """At step 0 the network is the pretrained one: L2-SP's distance must be 0, not the half-precision rounding
    of every weight (2e-2 on ResNet-18 with fp16)."""
    from rifle_paddle.engine.amp import master_weights
    from rifle_paddle.regularizers import L2SP
    paddle.seed(1)
    net = create_model("resnet18", num_classes=3)
    l2sp = L2SP(alpha=1.0, beta=0.0).attach(net)  # the reference: taken before the cast, as the engine does
    optimizer = paddle.optimizer.Momentum(0.1, parameters=net.parameters())
    convert_for_o2(net, optimizer, HALF)
    assert float(l2sp.closed_form()[0]) > 1e-3  # from the live weights: the rounding alone
    l2sp.master_weights = master_weights(optimizer)
    value, grads = l2sp.closed_form()
    assert float(value) == 0.0 and all(float(g.abs().max()) == 0.0 for _, g in grads)


def test_the_regularized_step_hands_the_master_weights_to_the_regularizer():
    """Through the engine's step: the L2-SP gradient is alpha (master - w0). float64 stands in for the half
    precision network; the masters are moved by 1e-3 as training would move them, the live weights are not."""
    from tiny_net import Tiny

    from rifle_paddle.regularizers import L2SP, RegularizedStep
    paddle.seed(2)
    net = Tiny()
    l2sp = L2SP(alpha=2.0, beta=0.0).attach(net)
    optimizer = paddle.optimizer.SGD(0.1, parameters=net.parameters())
    convert_for_o2(net, optimizer, "float64")
    for p in net.parameters():  # Paddle keeps master weights of half-precision parameters only: made by hand
        optimizer._master_weights[p.name] = p.astype("float32") + 1e-3
    model = TransferModel(net, train_step=RegularizedStep(l2sp))
    model.prepare(optimizer, paddle.nn.CrossEntropyLoss())
    x, y = paddle.zeros([2, 4], dtype="float64"), paddle.zeros([2], dtype="int64")
    model.train_step(model, [x], [y], None)
    # the input is 0, so the task gradient of the body's weight is 0: what is left is L2-SP's 2.0 * 1e-3
    np.testing.assert_allclose(net.body.weight.grad.numpy(), np.full([4, 3], 2e-3), atol=1e-6)  # fp32 arithmetic


def test_o2_evaluation_runs_the_network_under_autocast(monkeypatch):
    """hapi evaluates without autocast: an O2 (half-precision) network then gets fp32 inputs, which conv2d and
    linear refuse on a GPU. Paddle's autocast does nothing on the CPU, so a recording one stands in for it."""
    import contextlib
    active: list = []

    @contextlib.contextmanager
    def recording_auto_cast(enable=True, level="O1", **kwargs):
        active.append(level if enable else "off")
        try:
            yield
        finally:
            active.pop()

    monkeypatch.setattr(paddle.amp, "auto_cast", recording_auto_cast)
    seen: list = []

    class Probe(paddle.nn.Linear):
        def forward(self, x):
            seen.append(list(active))
            return super().forward(x)

    net = Probe(2, 3)
    model = TransferModel(net)
    model.prepare(paddle.optimizer.SGD(0.1, parameters=net.parameters()), paddle.nn.CrossEntropyLoss(),
                  amp_configs="O2")
    x, y = np.ones([2, 2], dtype="float32"), np.zeros([2], dtype="int64")
    model.eval_batch([x], [y])
    model.predict_batch([x])
    assert seen == [["O2"], ["O2"]]


# ------------------------------------------------------------------------------------------------ O2: resuming
def _o2_optimizer_with_state(optimizer_class, seed: int):
    """A Tiny network converted for O2 (bfloat16) with its optimizer's state as after some steps: every accumulator
    and master weight filled with its own random values (Paddle keys the accumulators by the master weight's name,
    ``linear_0.w_0_fp32_master_0_velocity_0``; the CPU has no bfloat16 kernels to take real steps)."""
    from tiny_net import Tiny
    net = Tiny()
    optimizer = optimizer_class(learning_rate=0.1, parameters=net.parameters())
    convert_for_o2(net, optimizer, HALF)
    optimizer._create_accumulators(paddle.static.default_main_program().global_block(), net.parameters())
    rng = np.random.default_rng(seed)
    for per_param in optimizer._accumulators.values():
        for acc in per_param.values():
            acc.set_value(rng.normal(size=acc.shape).astype("float32"))
    for master in optimizer._master_weights.values():
        master.set_value(rng.normal(size=master.shape).astype("float32"))
    return net, optimizer


def _per_structured_name(net, optimizer) -> dict:
    """``{(accumulator, structured parameter name): values}`` and ``{('master', name): values}``."""
    masters = optimizer._master_weights
    out = {}
    for structured, p in net.named_parameters():
        owner = masters[p.name].name
        out[("master", structured)] = masters[p.name].numpy()
        for acc_name, per_param in optimizer._accumulators.items():
            out[(acc_name, structured)] = per_param[owner].numpy()
    return out


@pytest.mark.parametrize("optimizer_class", [paddle.optimizer.Momentum, paddle.optimizer.Adam])
def test_an_o2_optimizer_state_resumes_into_a_new_process_by_value(tmp_path, optimizer_class):
    """Every O2 resume stopped with "this optimizer has no 'fp32_master_0_velocity' for body.weight": the key's
    master-weight part was taken for the accumulator's name. Saved to a file and restored into a network built
    anew (other unique names), each parameter's accumulators and master weight must come back equal."""
    from rifle_paddle.engine.training_state import parameter_names, restore_optimizer
    saved_net, saved_opt = _o2_optimizer_with_state(optimizer_class, seed=0)
    assert any("_fp32_master_0_" in key for key in saved_opt.state_dict())  # the O2 layout under test
    paddle.save(saved_opt.state_dict(), str(tmp_path / "opt.pdopt"))
    net, optimizer = _o2_optimizer_with_state(optimizer_class, seed=1)  # other values, other unique names
    assert set(parameter_names(net)).isdisjoint(parameter_names(saved_net))
    restore_optimizer(optimizer, paddle.load(str(tmp_path / "opt.pdopt")), net, parameter_names(saved_net))
    expected, restored = _per_structured_name(saved_net, saved_opt), _per_structured_name(net, optimizer)
    assert set(restored) == set(expected) and len(expected) >= 8
    for key, value in expected.items():
        np.testing.assert_array_equal(restored[key], value, err_msg=str(key))


# -------------------------------------------------------------------------------- DTNH's statistics and overflows
def test_an_overflowing_step_leaves_dtnh_statistics_and_metrics_json_finite(gpu_place_for_scaler, tmp_path):
    """An AMP step whose loss-scaled gradients overflow is skipped by the scaler; DTNH's statistics summed its
    infinite gradients and mean_cosine / global_cosine were NaN for the rest of the epoch (and a bare NaN in
    metrics.json). The overflowed step must not count: the summary is the one of the clean step alone."""
    import json

    from tiny_net import Tiny

    from rifle_paddle.regularizers import DTNH, L2SP, RegularizationMonitor, RegularizedStep
    paddle.seed(0)
    net = Tiny()
    l2sp = L2SP(alpha=1.0, beta=1.0).attach(net, "fc")
    with paddle.no_grad():
        net.body.weight.set_value(net.body.weight + 0.5)  # away from the reference: g_R is not 0
    step = RegularizedStep(l2sp, DTNH(net.named_parameters()))
    model = TransferModel(net, train_step=step)
    model.prepare(paddle.optimizer.SGD(0.01, parameters=net.parameters()), paddle.nn.CrossEntropyLoss(),
                  amp_configs={"level": "O1", "init_loss_scaling": 2.0 ** 15})
    monitor = RegularizationMonitor(step)
    monitor.on_epoch_begin(0)
    labels = [np.array([0, 1], dtype="int64")]
    model.train_batch([np.array([[1.0, -2.0, 0.5, 1.0], [0.3, 0.2, -1.0, 2.0]], dtype="float32")], labels)
    clean = step.dtnh.summary(reset=False)
    model.train_batch([np.full([2, 4], 1e35, dtype="float32")], labels)  # finite loss, infinite scaled gradient
    assert model._scaler.loss_scale == 2.0 ** 14  # the overflow happened and the step was skipped
    monitor.on_epoch_end(0)
    record = monitor.history[-1]
    assert record["steps"] == 1 and clean["steps"] == 1
    for key, value in clean.items():
        assert record[key] == pytest.approx(value), key
    json.dumps(record, allow_nan=False)  # strict JSON


def test_metrics_json_is_strict_json_whatever_the_numbers(tmp_path):
    """A NaN anywhere in the record (a regularization statistic, a test loss) was written as a bare NaN, which
    strict JSON readers reject; it is written as null."""
    import json

    from rifle_paddle.records import RunRecorder
    recorder = RunRecorder(str(tmp_path), extra={"regularization": [{"epoch": 0, "mean_cosine": float("nan")}],
                                                 "final": {"loss": float("inf"), "acc_top1": 0.5}})
    recorder.write_metrics()

    def refuse(constant):
        raise ValueError(f"bare {constant} in metrics.json")

    metrics = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=refuse)
    assert metrics["regularization"][0]["mean_cosine"] is None and metrics["final"] == {"loss": None, "acc_top1": 0.5}


def test_an_o1_resume_restores_the_loss_scale_and_its_counters(gpu_place_for_scaler, tmp_path, tiny_config):
    """Through the engine's checkpoint: an overflow (scale 2^15 -> 2^14) and a clean step, saved; a new process's
    model, resumed from it, continues with 2^14 and the same good/bad step counters, not with a fresh 2^15."""
    from rifle_paddle.engine.resume import Checkpointer, find_resume_point
    amp = {"level": "O1", "init_loss_scaling": 2.0 ** 15, "incr_every_n_steps": 5}
    model = linear_model(amp)
    label = [np.zeros([1], dtype="int64")]
    model.train_batch([np.full([1, 2], 1e35, dtype="float32")], label)  # overflows: skipped, scale halved
    model.train_batch([np.ones([1, 2], dtype="float32")], label)
    saved = model._scaler.state_dict()
    assert model._scaler.loss_scale == 2.0 ** 14 and saved["incr_count"] == 1
    cfg = tiny_config(f"run.output_dir={tmp_path}", "run.name=o1")
    checkpointer = Checkpointer(str(tmp_path / "o1"), None, cfg)
    checkpointer.set_model(model)
    checkpointer._save()
    resumed = linear_model(amp)
    restorer = Checkpointer(str(tmp_path / "o1"), None, cfg, resume=find_resume_point({**cfg, "train": {
        **cfg["train"], "resume": str(tmp_path / "o1")}}))
    restorer.set_model(resumed)
    restorer.on_train_begin()
    assert resumed._scaler.loss_scale == 2.0 ** 14
    assert {k: v for k, v in resumed._scaler.state_dict().items()} == saved
