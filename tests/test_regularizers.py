"""Regularizers: value and gradient against hand computations (numpy) on tiny networks, the engine's step, the
config, and short training runs through ``train(cfg)``."""
import json
import os

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
from paddle import nn

from rifle_paddle.config import ConfigError, load_config
from rifle_paddle.engine import train
from rifle_paddle.engine.model import TransferModel
from rifle_paddle.regularizers import (DELTA, L2SP, REGULARIZERS, BatchSpectralShrinkage, FeatureDistillation,
                                       RegularizedStep, build_regularizer)
from rifle_paddle.regularizers.bss import smallest_squared_singular_values
from rifle_paddle.regularizers.delta import attention_from_importance, channel_importance
from rifle_paddle.regularizers.feature_distillation import feature_map_distance
from tiny_net import Tiny

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def _tiny(seed=0):
    paddle.seed(seed)
    return Tiny()


def _perturb(layer, seed=1):
    rng = np.random.default_rng(seed)
    with paddle.no_grad():
        for p in layer.parameters():
            p.set_value(p.numpy() + rng.normal(0, 0.3, p.shape).astype("float32"))


def _grads(loss, params):
    return [g.numpy() for g in paddle.grad(loss, params)]


# ---------------------------------------------------------------------------------------------------------- L2-SP
def test_l2sp_value_and_gradient_match_the_formula():
    net = _tiny()
    reg = L2SP(alpha=0.3, beta=0.2).attach(net)
    w0 = {n: p.numpy().copy() for n, p in net.named_parameters() if n.startswith("body")}
    _perturb(net)
    value, grads = reg.closed_form()
    body = {n: p.numpy() for n, p in net.named_parameters() if n.startswith("body")}
    head = {n: p.numpy() for n, p in net.named_parameters() if n.startswith("fc")}
    expected = (0.15 * sum(((body[n] - w0[n]) ** 2).sum() for n in body)
                + 0.1 * sum((h ** 2).sum() for h in head.values()))
    assert float(value) == pytest.approx(expected, rel=1e-5)
    by_name = {p.name: g.numpy() for p, g in grads}
    for n, p in net.named_parameters():
        want = 0.3 * (body[n] - w0[n]) if n in body else 0.2 * head[n]
        np.testing.assert_allclose(by_name[p.name], want, rtol=1e-5, atol=1e-7)
    # the loss scale of AMP multiplies the gradients, not the value
    scaled_value, scaled = reg.closed_form(paddle.to_tensor(8.0))
    assert float(scaled_value) == pytest.approx(float(value), rel=1e-6)
    np.testing.assert_allclose(scaled[0][1].numpy(), 8 * grads[0][1].numpy(), rtol=1e-6)


def test_l2sp_gradient_equals_autograd_of_its_value():
    net = _tiny()
    reg = L2SP(alpha=0.05, beta=0.01).attach(net)
    _perturb(net)
    ref = {n: paddle.to_tensor(t.numpy()) for n, t in reg.reference.items()}
    omega = 0.025 * paddle.add_n([((p - ref[n]) ** 2).sum() for n, p in reg.body_params]) + \
        0.005 * paddle.add_n([(p ** 2).sum() for _, p in reg.head_params])
    auto = dict(zip([p.name for p in net.parameters()], _grads(omega, net.parameters())))
    for p, g in reg.closed_form()[1]:
        np.testing.assert_allclose(g.numpy(), auto[p.name], rtol=1e-5, atol=1e-8)


def test_l2sp_reference_is_a_frozen_copy_and_round_trips_through_state_dict():
    net = _tiny()
    reg = L2SP().attach(net)
    before = net.body.weight.numpy().copy()
    _perturb(net)
    np.testing.assert_array_equal(reg.reference["body.weight"].numpy(), before)  # not the live weight
    state = {k: v.numpy() for k, v in reg.state_dict().items()}
    assert sorted(state) == ["reference.body.bias", "reference.body.weight"]
    other = L2SP().attach(net)  # built later, from the moved weights: a resumed run must load the reference
    assert not np.array_equal(other.reference["body.weight"].numpy(), before)
    other.set_state_dict(state)
    np.testing.assert_array_equal(other.reference["body.weight"].numpy(), before)
    with pytest.raises(ValueError, match="does not fit"):
        other.set_state_dict({"reference.body.weight": np.zeros([2, 2], "float32")})


def test_a_regularizer_attaches_once_and_says_so_when_not_attached():
    net = _tiny()
    with pytest.raises(RuntimeError, match="not attached"):
        L2SP().closed_form()
    reg = L2SP().attach(net)
    with pytest.raises(RuntimeError, match="already attached"):
        reg.attach(net)


# ------------------------------------------------------------------------------------- feature distillation, DELTA
def test_feature_distillation_value_and_gradient_match_the_formula():
    net = _tiny()
    reg = FeatureDistillation(alpha=0.5, layers=["body"]).attach(net)
    w0, b0 = net.body.weight.numpy().copy(), net.body.bias.numpy().copy()
    _perturb(net)
    x = np.random.default_rng(2).normal(size=(5, 4)).astype("float32")
    with reg.observe():
        net(paddle.to_tensor(x))
    value = reg.penalty([paddle.to_tensor(x)])
    w, b = net.body.weight.numpy(), net.body.bias.numpy()
    delta = (x @ w + b) - (x @ w0 + b0)  # [B, D]: a 2-D feature, one "position" per channel
    assert float(value) == pytest.approx(0.25 * (delta ** 2).sum(), rel=1e-5)  # summed over the batch
    grad_w, grad_b = _grads(value, [net.body.weight, net.body.bias])
    np.testing.assert_allclose(grad_w, 0.5 * x.T @ delta, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grad_b, 0.5 * delta.sum(axis=0), rtol=1e-4, atol=1e-6)
    assert net.fc.weight.grad is None  # the teacher forward left the student's head alone


def test_feature_map_distance_of_4d_maps_with_channel_weights():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(2, 3, 4, 5)).astype("float32"), rng.normal(size=(2, 3, 4, 5)).astype("float32")
    a = np.array([0.5, 1.0, 1.5], "float32")
    per_image = (((s - t) ** 2).mean(axis=(2, 3)) * a).sum(axis=1)
    got = feature_map_distance(paddle.to_tensor(s), paddle.to_tensor(t), paddle.to_tensor(a))
    assert float(got) == pytest.approx(per_image.sum(), rel=1e-5)
    got = feature_map_distance(paddle.to_tensor(s), paddle.to_tensor(t), paddle.to_tensor(a), reduction="mean")
    assert float(got) == pytest.approx(per_image.mean(), rel=1e-5)
    summed = (((s - t) ** 2).sum(axis=(2, 3)) * a).sum()  # the DELTA authors' reg_fea_map: positions summed
    got = feature_map_distance(paddle.to_tensor(s), paddle.to_tensor(t), paddle.to_tensor(a), positions="sum")
    assert float(got) == pytest.approx(summed, rel=1e-5) and summed == pytest.approx(20 * per_image.sum(), rel=1e-5)
    with pytest.raises(ValueError, match="differ in shape"):
        feature_map_distance(paddle.to_tensor(s), paddle.to_tensor(t[:, :2]))


def test_teacher_is_frozen_in_eval_mode_and_round_trips():
    net = _tiny()
    reg = FeatureDistillation(layers=["body"]).attach(net)
    assert not reg.teacher.training and all(p.stop_gradient for p in reg.teacher.parameters())
    assert len(net.parameters()) == 4  # the teacher is not a sub-layer: invisible to the optimizer and checkpoints
    state = {k: v.numpy().copy() for k, v in reg.state_dict().items()}
    with paddle.no_grad():
        reg.teacher.body.weight.set_value(np.zeros([4, 3], "float32"))
    reg.set_state_dict(state)
    np.testing.assert_array_equal(reg.teacher.body.weight.numpy(), state["teacher.body.weight"])


def test_unknown_feature_layer_is_a_clear_error():
    with pytest.raises(ValueError, match="no sub-layer named 'layer9'.*body"):
        FeatureDistillation(layers=["layer9"]).attach(_tiny())
    with pytest.raises(ValueError, match="regularizer.layers"):
        FeatureDistillation().attach(_tiny())  # no ResNet stages: the default does not apply


def test_delta_attention_is_positive_averages_one_and_follows_importance():
    a = attention_from_importance(paddle.to_tensor([0.0, 1.0, 4.0, 2.0]))
    assert float(a.mean()) == pytest.approx(1.0, rel=1e-6) and float(a.min()) > 0
    assert list(np.argsort(a.numpy())) == [0, 1, 3, 2]
    np.testing.assert_allclose(attention_from_importance(paddle.ones([3])).numpy(), 1.0, rtol=1e-6)


class TwoChannels(nn.Layer):
    """feat: a 1x1 conv with two output channels; channel 0 copies the image, channel 1 is dead (all zero)."""

    def __init__(self):
        super().__init__()
        self.feat = nn.Conv2D(1, 2, 1)
        self.fc = nn.Linear(2, 2)
        with paddle.no_grad():
            self.feat.weight.set_value(np.array([1.0, 0.0], "float32").reshape([2, 1, 1, 1]))
            self.feat.bias.set_value(np.zeros([2], "float32"))

    def forward(self, x):
        return self.fc(paddle.flatten(F.adaptive_avg_pool2d(F.relu(self.feat(x)), 1), 1))


def _two_class_batch(seed=0, n=16):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = (y[:, None, None, None] * 2.0 + rng.normal(0, 0.2, (n, 1, 3, 3))).astype("float32")
    return paddle.to_tensor(x), paddle.to_tensor(y.astype("int64"))


class TwoStages(nn.Layer):
    """Two convolutions in a row (2 then 3 channels) under a 3-input classifier: two layers to score."""

    def __init__(self):
        super().__init__()
        self.feat, self.mix, self.fc = nn.Conv2D(1, 2, 1), nn.Conv2D(2, 3, 1), nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(paddle.flatten(F.adaptive_avg_pool2d(F.relu(self.mix(F.relu(self.feat(x)))), 1), 1))


def test_delta_scores_each_layer_as_if_alone_and_logs_its_progress():
    import logging
    paddle.seed(1)
    net, probe = TwoStages(), nn.Linear(3, 2)
    batches = [_two_class_batch(0), _two_class_batch(1)]
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("rifle_paddle.regularizers.delta")
    logger.addHandler(handler)
    old_level, logger.level = logger.level, logging.INFO
    try:  # a batch of 16 and 16 images a forward: one channel a forward, 5 forwards, a line after each but the last
        both = channel_importance(net, "fc", ["feat", "mix"], batches, 2, images_per_forward=16, probe=probe,
                                  progress_every_s=0)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert [line.split(":")[1].strip() for line in lines] == [f"{k}/5 channels scored" for k in range(1, 5)]
    assert all(" left (ends near " in line for line in lines)
    for name in ("feat", "mix"):  # the other layer's hook passes its output through untouched
        alone = channel_importance(net, "fc", [name], batches, 2, images_per_forward=16, probe=probe)[name]
        np.testing.assert_allclose(both[name].numpy(), alone.numpy(), rtol=1e-6, atol=1e-7)
    assert [both["feat"].shape, both["mix"].shape] == [[2], [3]]


def test_delta_supervised_attention_scores_the_informative_channel():
    paddle.seed(0)
    net = TwoChannels()
    importance = channel_importance(net, "fc", ["feat"], [_two_class_batch(0), _two_class_batch(1)], 2)["feat"]
    assert importance.shape == [2]
    assert float(importance[0]) > 0.1 and abs(float(importance[1])) < 1e-6  # zeroing a dead channel costs nothing
    reg = DELTA(layers=["feat"], attention_batches=2, probe="fast").attach(net)
    with pytest.raises(RuntimeError, match="prepare"):
        reg.channel_weights("feat")
    reg.prepare([_two_class_batch(0), _two_class_batch(1), _two_class_batch(2)])
    weights = reg.channel_weights("feat").numpy()
    assert weights[0] > weights[1] and weights.mean() == pytest.approx(1.0, rel=1e-5)
    state = reg.state_dict()
    assert "attention.feat" in state and any(k.startswith("teacher.") for k in state)
    again = DELTA(layers=["feat"]).attach(TwoChannels())
    again.set_state_dict(state)
    again.prepare(None)  # loaded: nothing to compute, no data needed
    np.testing.assert_allclose(again.channel_weights("feat").numpy(), weights)


def test_delta_penalty_weights_channels_by_attention():
    paddle.seed(0)
    net = TwoChannels()
    reg = DELTA(alpha=2.0, layers=["feat"]).attach(net)
    reg.set_attention({"feat": [1.5, 0.5]})
    _perturb(net.feat)
    x, _ = _two_class_batch()
    with reg.observe():
        net(x)
    value = float(reg.penalty([x]))
    with paddle.no_grad():
        s, t = net.feat(x).numpy(), reg.teacher.feat(x).numpy()
    assert value == pytest.approx((((s - t) ** 2).mean(axis=(2, 3)) * [1.5, 0.5]).sum(1).sum(), rel=1e-5)


# ---------------------------------------------------------------------------------------------------------- BSS
@pytest.mark.parametrize("shape", [(4, 6), (6, 4)])
def test_bss_value_and_gradient_match_the_svd(shape):
    f = np.random.default_rng(0).normal(size=shape).astype("float32")
    t = paddle.to_tensor(f, stop_gradient=False)
    value = smallest_squared_singular_values(t, k=1)
    u, s, vt = np.linalg.svd(f.astype("float64"))
    assert float(value) == pytest.approx(s[-1] ** 2, rel=1e-4)
    # d sigma_min^2 / dF = 2 sigma_min u_min v_min^T
    want = 2 * s[-1] * np.outer(u[:, len(s) - 1], vt[len(s) - 1])
    np.testing.assert_allclose(paddle.grad(value, t)[0].numpy(), want, rtol=1e-3, atol=1e-4)
    assert float(smallest_squared_singular_values(t, k=2)) == pytest.approx((s[-2:] ** 2).sum(), rel=1e-4)
    assert float(smallest_squared_singular_values(t, k=99)) == pytest.approx((s ** 2).sum(), rel=1e-4)


def test_bss_reads_the_classifier_input_of_the_task_forward():
    net = _tiny()
    reg = BatchSpectralShrinkage(alpha=0.1, k=1).attach(net)
    x = paddle.randn([3, 4])
    with reg.observe():
        net(x)
    features = F.relu(net.body(x)).numpy()
    smallest = np.linalg.svd(features.astype("float64"), compute_uv=False)[-1]
    assert float(reg.penalty([x])) == pytest.approx(0.1 * smallest ** 2, rel=1e-3, abs=1e-6)
    assert reg.state_dict() == {} and not reg.uses_reference


# ---------------------------------------------------------------------------------------------- the engine's step
def _prepared(net, step):
    model = TransferModel(net, train_step=step)
    model.prepare(paddle.optimizer.SGD(0.1, parameters=net.parameters()), nn.CrossEntropyLoss())
    return model


@pytest.mark.parametrize("kind", ["l2sp", "kd", "bss"])
def test_step_without_dtnh_gives_the_gradient_of_task_plus_regularizer(kind):
    net = _tiny()
    reg = {"l2sp": lambda: L2SP(alpha=0.2, beta=0.1), "kd": lambda: FeatureDistillation(alpha=0.3, beta=0.1,
                                                                                           layers=["body"]),
           "bss": lambda: BatchSpectralShrinkage(alpha=0.5)}[kind]().attach(net)
    _perturb(net)
    x = np.random.default_rng(3).normal(size=(4, 4)).astype("float32")
    y = np.array([0, 1, 1, 0], "int64")
    losses = _prepared(net, RegularizedStep(reg)).train_batch([x], [y], update=False)
    got = {p.name: p.grad.numpy() for p in net.parameters()}
    # expected: autograd of CE + Omega written out independently
    xt = paddle.to_tensor(x)
    with reg.observe():
        logits = net(xt)
    total = F.cross_entropy(logits, paddle.to_tensor(y)) + (reg.penalty([xt]) if kind != "l2sp" else 0.0)
    value, closed = reg.closed_form()
    expected = dict(zip([p.name for p in net.parameters()], _grads(total, net.parameters())))
    for p, g in closed:
        expected[p.name] = expected[p.name] + g.numpy()
    for name, g in got.items():
        np.testing.assert_allclose(g, expected[name], rtol=1e-4, atol=1e-6)
    assert len(losses) == 2  # [task loss, regularizer value]


def test_training_moves_the_student_and_never_the_teacher():
    net = _tiny()
    reg = FeatureDistillation(alpha=1.0, layers=["body"]).attach(net)
    teacher_before = [p.numpy().copy() for p in reg.teacher.parameters()]
    student_before = net.body.weight.numpy().copy()
    model = _prepared(net, RegularizedStep(reg))
    for _ in range(3):
        model.train_batch([np.ones([4, 4], "float32")], [np.array([0, 1, 0, 1], "int64")])
    assert not np.allclose(net.body.weight.numpy(), student_before)
    for before, p in zip(teacher_before, reg.teacher.parameters()):
        np.testing.assert_array_equal(p.numpy(), before)


# ---------------------------------------------------------------------------------------------------------- config
def test_config_builds_each_regularizer_with_the_papers_defaults():
    assert build_regularizer(load_config(None)["regularizer"]) is None
    expected = {"l2sp": (L2SP, 0.01, 0.01), "delta": (DELTA, 0.01, 0.01), "kd": (FeatureDistillation, 0.01, 0.0),
                "bss": (BatchSpectralShrinkage, 0.001, 0.0)}
    for name, (cls, alpha, beta) in expected.items():
        reg = build_regularizer(load_config(None, [f"regularizer.name={name}"])["regularizer"])
        assert type(reg) is cls and reg.alpha == alpha and reg.beta == beta
    reg = build_regularizer(load_config(None, ["regularizer.name=delta", "regularizer.alpha=0.1",
                                               "regularizer.layers=[layer3]"])["regularizer"])
    assert reg.alpha == 0.1 and reg.layers == ["layer3"]
    # every other key of the section reaches its constructor argument (the mapping, not an if-chain, routes them)
    reg = build_regularizer(load_config(None, ["regularizer.name=delta", "regularizer.delta_attention=uniform",
                                               "regularizer.attention_probe=fast", "regularizer.attention_batches=2",
                                               "regularizer.feature_reduction=mean",
                                               "regularizer.feature_positions=sum"])["regularizer"])
    assert (reg.attention_kind, reg.probe, reg.attention_batches, reg.reduction, reg.positions) == \
        ("uniform", "fast", 2, "mean", "sum")
    assert build_regularizer(load_config(None, ["regularizer.name=bss", "regularizer.bss_k=3"])["regularizer"]).k == 3
    # L2-SP, DELTA and KD pull towards the pretrained network (their papers); BSS does not
    assert {n for n, c in REGULARIZERS.items() if c.uses_reference} == {"l2sp", "delta", "kd"}


@pytest.mark.parametrize("overrides, message", [
    (["dtnh.enabled=true"], "needs|regularizer.name=none"),
    (["regularizer.name=l2sp", "model.pretrained=none"], "random initialization"),
    (["regularizer.name=bss", "regularizer.layers=[layer4]"], "applies to delta and kd only"),
    (["regularizer.beta=0.1"], "regularizer.name=none"),
    (["regularizer.name=kd", "regularizer.alpha=0", "regularizer.beta=0"], "no effect"),
    (["regularizer.name=l2sp", "regularizer.alpha=-1"], "must be >= 0"),
    (["regularizer.name=delta", "regularizer.layers=[]"], "non-empty list"),
    (["dtnh.granularity=tensor", "regularizer.name=l2sp"], "layer, global"),
])
def test_bad_regularization_settings_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


@pytest.mark.parametrize("fragment, name, dtnh", [
    ("l2sp", "l2sp", False), ("delta", "delta", False), ("kd", "kd", False), ("bss", "bss", False),
    ("l2sp_dtnh", "l2sp", True), ("delta_dtnh", "delta", True), ("kd_dtnh", "kd", True)])
def test_method_fragments_load_and_combine_with_rifle(tmp_path, fragment, name, dtnh):
    path = tmp_path / "run.yaml"
    path.write_text(f"_base_: [{CONFIGS}/base.yaml, {CONFIGS}/methods/{fragment}.yaml, "
                    f"{CONFIGS}/methods/rifle.yaml]\n")
    cfg = load_config(str(path))
    assert cfg["regularizer"]["name"] == name and cfg["dtnh"]["enabled"] is dtnh and cfg["rifle"]["enabled"]
    assert build_regularizer(cfg["regularizer"]).alpha == cfg["regularizer"]["alpha"]


# ------------------------------------------------------------------------------------------- short training runs
def _backbone_distance(weights_path: str, pretrained_path: str) -> float:
    w, w0 = paddle.load(weights_path), paddle.load(pretrained_path)
    return float(sum(((w[k].numpy() - w0[k].numpy()) ** 2).sum() for k in w0
                     if not k.startswith("fc.") and not k.endswith(("_mean", "_variance"))))


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_l2sp_run_stays_closer_to_the_pretrained_weights_than_plain_fine_tuning(tiny_config, tiny_pretrained):
    plain = train(tiny_config("run.name=plain", "train.lr=0.05"))
    l2sp = train(tiny_config("run.name=l2sp", "train.lr=0.05", "regularizer.name=l2sp", "regularizer.alpha=5"))
    d_plain = _backbone_distance(os.path.join(plain["run_dir"], "last.pdparams"), tiny_pretrained)
    d_l2sp = _backbone_distance(os.path.join(l2sp["run_dir"], "last.pdparams"), tiny_pretrained)
    assert 0 < d_l2sp < 0.8 * d_plain
    records = l2sp["regularization"]
    assert [r["epoch"] for r in records] == [1, 2] and records[-1]["regularizer"] > 0
    assert "conflict_fraction" not in records[-1]  # no DTNH: no decomposition statistics
    log_text = open(os.path.join(l2sp["run_dir"], "train.log")).read()
    assert "regularizer: L2-SP alpha=5" in log_text and "epoch 1: l2sp" in log_text


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
@pytest.mark.parametrize("overrides", [
    ["regularizer.name=kd"],
    ["regularizer.name=delta", "regularizer.layers=[layer1]", "regularizer.attention_batches=1"],
    ["regularizer.name=bss"],
])
def test_feature_regularizers_train_through_the_engine(tiny_config, overrides):
    result = train(tiny_config("train.epochs=1", *overrides))
    record = result["regularization"][0]
    assert record["regularizer"] > 0 and np.isfinite(result["epochs"][0]["train_loss"])
    with open(os.path.join(result["run_dir"], "metrics.json")) as f:
        assert json.load(f)["regularization"] == result["regularization"]
