"""DTNH: the never-hurt direction on constructed gradients, per layer and over the whole vector, its statistics,
the engine's two-gradient step, and short runs through ``train(cfg)`` (alone and composed with RIFLE)."""
import json
import os

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
from paddle import nn

from rifle_paddle.engine import train
from rifle_paddle.engine.model import TransferModel
from rifle_paddle.regularizers import DTNH, L2SP, FeatureDistillation, RegularizedStep, never_hurt_direction
from rifle_paddle.regularizers.dtnh import layer_of
from tiny_net import Tiny


def _t(values):
    return paddle.to_tensor(np.asarray(values, "float32"))


def _np_direction(g_l, g_r):
    dot = g_l @ g_r
    return g_l + g_r - (min(dot, 0.0) / (g_l @ g_l)) * g_l


# ------------------------------------------------------------------------------------------- one vector pair
def test_conflicting_gradients_keep_only_the_orthogonal_part_of_the_regularizer():
    g_l, g_r = np.array([1.0, 0.0, 0.0]), np.array([-2.0, 1.0, 0.5])
    d = never_hurt_direction(_t(g_l), _t(g_r)).numpy()
    np.testing.assert_allclose(d, [1.0, 1.0, 0.5])  # g_L + (g_R minus its component along g_L)
    assert d @ g_l >= 0
    orthogonal = g_r - (g_r @ g_l) / (g_l @ g_l) * g_l
    np.testing.assert_allclose(d - g_l, orthogonal, atol=1e-7)


def test_agreeing_gradients_are_simply_added():
    g_l, g_r = np.array([1.0, 2.0, -1.0]), np.array([0.5, 0.1, 0.0])
    np.testing.assert_allclose(never_hurt_direction(_t(g_l), _t(g_r)).numpy(), g_l + g_r, rtol=1e-6)


def test_random_pairs_never_point_against_the_task_gradient():
    rng = np.random.default_rng(0)
    for _ in range(50):
        g_l, g_r = rng.normal(size=20), 3 * rng.normal(size=20)
        d = never_hurt_direction(_t(g_l), _t(g_r)).numpy()
        assert d @ g_l >= (g_l @ g_l) * (1 - 1e-5)  # first-order decrease of L at least that of a plain step
        if g_l @ g_r < 0:
            assert abs((d - g_l) @ g_l) < 1e-4 * np.linalg.norm(g_l) * np.linalg.norm(g_r)


# ------------------------------------------------------------------------------------- DTNH on parameters, in place
class TwoLayers(nn.Layer):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 2)
        self.b = nn.Linear(2, 2, bias_attr=False)


def _with_grads(task: dict) -> TwoLayers:
    net = TwoLayers()
    for name, p in net.named_parameters():
        p._set_grad_ivar(_t(np.asarray(task[name]).reshape(p.shape)))
    return net


# layer a conflicts mildly, layer b agrees strongly: the whole vectors agree
TASK = {"a.weight": [1, 0, 0, 0], "a.bias": [0, 1], "b.weight": [1, 1, 1, 1]}
REG = {"a.weight": [-1, 1, 0, 0], "a.bias": [-1, 0], "b.weight": [2, 2, 2, 2]}


def _flat(d, names):
    return np.concatenate([np.asarray(d[n], "float64").ravel() for n in names])


def test_per_layer_decomposition_removes_a_conflict_the_global_one_averages_away():
    names = ["a.weight", "a.bias", "b.weight"]
    for granularity in ("layer", "global"):
        net = _with_grads(TASK)
        dtnh = DTNH(net.named_parameters(), granularity)
        dtnh.apply([_t(np.asarray(REG[n]).reshape(p.shape)) for n, p in zip(names, dtnh.parameters)])
        got = {n: p.grad.numpy().ravel() for n, p in zip(names, dtnh.parameters)}
        if granularity == "layer":
            a = _np_direction(_flat(TASK, names[:2]), _flat(REG, names[:2]))
            b = _np_direction(_flat(TASK, names[2:]), _flat(REG, names[2:]))
            want = np.concatenate([a, b])
            assert _flat(got, names[:2]) @ _flat(TASK, names[:2]) > 0  # layer a no longer pushed backwards
        else:
            want = _flat(TASK, names) + _flat(REG, names)  # <g_L, g_R> = -2 + 8 > 0: nothing removed
        np.testing.assert_allclose(_flat(got, names), want, rtol=1e-6)


def test_statistics_count_conflicting_layers_and_cosines():
    names = ["a.weight", "a.bias", "b.weight"]
    net = _with_grads(TASK)
    dtnh = DTNH(net.named_parameters(), "global")  # statistics are per layer whatever the granularity
    dtnh.apply([_t(np.asarray(REG[n]).reshape(p.shape)) for n, p in zip(names, dtnh.parameters)])
    stats = dtnh.summary()
    cos = lambda u, v: u @ v / np.linalg.norm(u) / np.linalg.norm(v)  # noqa: E731
    cos_a = cos(_flat(TASK, names[:2]), _flat(REG, names[:2]))
    cos_b = cos(_flat(TASK, names[2:]), _flat(REG, names[2:]))
    assert stats["conflict_fraction"] == 0.5 and stats["layers"] == 2 and stats["steps"] == 1
    assert stats["mean_cosine"] == pytest.approx((cos_a + cos_b) / 2, rel=1e-5)
    assert stats["global_cosine"] == pytest.approx(cos(_flat(TASK, names), _flat(REG, names)), rel=1e-5)
    assert stats["global_conflict_fraction"] == 0.0
    assert dtnh.summary() == {}  # reset by the previous call


def test_layers_without_a_regularizer_gradient_are_left_alone_and_not_counted():
    net = _with_grads(TASK)
    dtnh = DTNH(net.named_parameters())
    dtnh.apply([None, None, _t(np.full([2, 2], -1.0))])  # only layer b is regularized, against the task
    np.testing.assert_allclose(net.a.weight.grad.numpy().ravel(), TASK["a.weight"])
    np.testing.assert_allclose(net.b.weight.grad.numpy(), np.ones([2, 2]))  # g_R entirely along -g_L: removed
    assert dtnh.summary()["layers"] == 1


def test_direction_is_positively_homogeneous_so_loss_scaled_gradients_decompose_exactly():
    names = ["a.weight", "a.bias", "b.weight"]
    results = []
    for scale in (1.0, 1024.0):
        net = _with_grads({n: np.asarray(v, "float32") * scale for n, v in TASK.items()})
        dtnh = DTNH(net.named_parameters())
        dtnh.apply([_t(np.asarray(REG[n]).reshape(p.shape) * scale) for n, p in zip(names, dtnh.parameters)])
        results.append(np.concatenate([p.grad.numpy().ravel() for p in dtnh.parameters]))
    np.testing.assert_allclose(results[1], 1024.0 * results[0], rtol=1e-6)


def test_groups_follow_layers_and_bad_arguments_are_rejected():
    assert layer_of("layer1.0.conv1.weight") == "layer1.0.conv1" and layer_of("scale") == "scale"
    net = TwoLayers()
    assert DTNH(net.named_parameters()).layers == ["a", "b"]
    with pytest.raises(ValueError, match="granularity"):
        DTNH(net.named_parameters(), "tensor")
    with pytest.raises(ValueError, match="expected 3"):
        DTNH(net.named_parameters()).apply([None])


# ------------------------------------------------------------------------------------------- the engine's step
@pytest.mark.parametrize("kind", ["l2sp", "kd"])
def test_step_with_dtnh_combines_separately_computed_gradients(kind):
    paddle.seed(0)
    net = Tiny()
    reg = (L2SP(alpha=3.0, beta=0.5) if kind == "l2sp" else
           FeatureDistillation(alpha=2.0, beta=0.5, layers=["body"])).attach(net)
    rng = np.random.default_rng(1)
    with paddle.no_grad():
        for p in net.parameters():
            p.set_value(p.numpy() + rng.normal(0, 0.5, p.shape).astype("float32"))
    x, y = rng.normal(size=(6, 4)).astype("float32"), np.array([0, 1, 1, 0, 1, 0], "int64")
    params = net.parameters()
    # expected: g_L and g_R by autograd, combined per layer in numpy
    xt = paddle.to_tensor(x)
    with reg.observe():
        logits = net(xt)
    g_l = paddle.grad(F.cross_entropy(logits, paddle.to_tensor(y)), params, retain_graph=True)
    penalty = reg.penalty([xt])
    g_r = paddle.grad(penalty, params, allow_unused=True) if penalty is not None else [None] * len(params)
    g_r = [np.zeros(p.shape, "float32") if g is None else g.numpy() for p, g in zip(params, g_r)]
    index = {id(p): i for i, p in enumerate(params)}
    for p, g in reg.closed_form()[1]:
        g_r[index[id(p)]] = g_r[index[id(p)]] + g.numpy()
    expected = {}
    for layer in ("body", "fc"):
        idx = [i for i, (n, _) in enumerate(net.named_parameters()) if n.startswith(layer)]
        gl = np.concatenate([g_l[i].numpy().ravel() for i in idx])
        d = _np_direction(gl.astype("float64"), np.concatenate([g_r[i].ravel() for i in idx]).astype("float64"))
        for i, part in zip(idx, np.split(d, np.cumsum([g_l[i].numpy().size for i in idx])[:-1])):
            expected[i] = part.reshape(params[i].shape)

    step = RegularizedStep(reg, DTNH(net.named_parameters()))
    model = TransferModel(net, train_step=step)
    model.prepare(paddle.optimizer.SGD(0.1, parameters=params), nn.CrossEntropyLoss())
    model.train_batch([x], [y], update=False)
    for i, p in enumerate(params):
        np.testing.assert_allclose(p.grad.numpy(), expected[i], rtol=1e-4, atol=1e-6)
    assert step.dtnh.summary()["steps"] == 1


# ------------------------------------------------------------------------------------------- short training runs
def _log(result) -> str:
    return open(os.path.join(result["run_dir"], "train.log")).read()


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_rifle_l2sp_dtnh_run_logs_the_conflict_statistics_everywhere(tiny_config):
    cfg = tiny_config("regularizer.name=l2sp", "dtnh.enabled=true", "rifle.enabled=true", "rifle.num_reinits=1",
                      "rifle.min_tail_epochs=1", "train.grad_clip=1.0")
    result = train(cfg)
    records = result["regularization"]
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert 0 <= r["conflict_fraction"] <= 1 and -1 <= r["mean_cosine"] <= 1 and r["steps"] == 3
    assert records[1]["layers"] > 1  # after a step the backbone has moved: L2-SP's gradient reaches it
    assert [e["epoch"] for e in result["rifle_events"]] == [2]
    assert "DTNH: g_L and g_R conflicted in" in _log(result)
    with open(os.path.join(result["run_dir"], "metrics.json")) as f:
        assert json.load(f)["regularization"] == records
    from visualdl import LogReader
    vdl_dir = os.path.join(result["run_dir"], "vdl")
    reader = LogReader(file_path=os.path.join(vdl_dir, os.listdir(vdl_dir)[0]))
    assert "dtnh/conflict_fraction" in reader.get_tags()["scalar"]


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
@pytest.mark.parametrize("overrides", [
    ["regularizer.name=kd", "dtnh.granularity=global"],
    ["regularizer.name=delta", "regularizer.delta_attention=uniform"],
])
def test_feature_regularizers_with_dtnh_train_through_the_engine(tiny_config, overrides):
    result = train(tiny_config("train.epochs=1", "dtnh.enabled=true", *overrides))
    record = result["regularization"][0]
    assert record["steps"] == 3 and record["layers"] > 10 and np.isfinite(result["epochs"][0]["train_loss"])
    assert "granularity" not in record and "DTNH (" in _log(result)


class ConstantScaler:
    """Stands in for an enabled GradScaler (disabled on the CPU): multiplies what it scales by 4."""

    def scale(self, x):
        return x * 4.0


@pytest.mark.parametrize("kind", ["l2sp", "kd"])
@pytest.mark.parametrize("with_dtnh", [False, True])
def test_with_a_loss_scale_every_gradient_part_is_scaled_alike(kind, with_dtnh):
    grads = []
    for scaler in (None, ConstantScaler()):
        paddle.seed(0)
        net = Tiny()
        reg = (L2SP(alpha=3.0, beta=0.5) if kind == "l2sp" else
               FeatureDistillation(alpha=2.0, beta=0.5, layers=["body"])).attach(net)
        with paddle.no_grad():
            for p in net.parameters():
                p.set_value(p.numpy() + 0.5)
        step = RegularizedStep(reg, DTNH(net.named_parameters()) if with_dtnh else None)
        model = TransferModel(net, train_step=step)
        model.prepare(paddle.optimizer.SGD(0.1, parameters=net.parameters()), nn.CrossEntropyLoss())
        x, y = np.linspace(-1, 1, 24, dtype="float32").reshape(6, 4), np.array([0, 1, 1, 0, 1, 0], "int64")
        losses = step(model, [paddle.to_tensor(x)], [paddle.to_tensor(y)], scaler)
        grads.append(([p.grad.numpy() for p in net.parameters()], [float(v) for v in losses]))
    for unscaled, scaled in zip(grads[0][0], grads[1][0]):
        np.testing.assert_allclose(scaled, 4.0 * unscaled, rtol=1e-5, atol=1e-7)
    assert grads[0][1] == pytest.approx(grads[1][1])  # logged values are not scaled
