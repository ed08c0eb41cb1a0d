"""The authors' protocol, rule by rule (docs/fidelity.md), each against a transcription of their code.

RIFLE authors: haozhe-an/RIFLE-Paddle-Implementation (fine_tuning/run.py, as_models/resnet.py,
as_data_reader/readers.py). DELTA authors: lixingjian/DELTA (train.py, channel_eval.py). The RIFLE schedule, re-draw
and O2 momentum reset are in test_rifle.py.
"""
import math

import cv2
import numpy as np
import paddle
import pytest
from paddle import nn

from rifle_paddle.config import load_config
from rifle_paddle.data.sampler import SeededBatchSampler
from rifle_paddle.data.transforms import authors_train_transform, eval_transform
from rifle_paddle.engine.optim import build_lr_scheduler
from rifle_paddle.engine.trainer import lr_stair
from rifle_paddle.models import create_model, initialize_classifier, reset_batchnorm_statistics
from rifle_paddle.regularizers import DELTA
from rifle_paddle.regularizers.delta import attention_from_importance, last_convolutions


# ------------------------------------------------------------------------------------------ learning rate
def fluid_cosine_decay(learning_rate: float, step: int, step_each_epoch: int, epochs: int) -> float:
    """fluid.layers.cosine_decay: ``cur_epoch = floor(global_step / step_each_epoch)``,
    ``lr * (cos(cur_epoch * pi / epochs) + 1) / 2``."""
    cur_epoch = math.floor(step / step_each_epoch)
    return learning_rate * (math.cos(cur_epoch * (math.pi / epochs)) + 1) / 2


def test_cosine_epoch_is_the_authors_staircase_at_every_step():
    cfg = load_config(None, ["train.lr_schedule=cosine_epoch", "train.epochs=40", "train.lr=0.01"])
    # CUB-200-2011: 5,994 training images, batch 32: 187 steps an epoch (drop_last), stairs of ceil = 188 steps
    assert lr_stair(5994, 32) == 188
    schedule = build_lr_scheduler(cfg["train"], steps_per_epoch=187, epoch_stair=188)
    for step in range(40 * 187):
        assert schedule.get_lr() == pytest.approx(fluid_cosine_decay(0.01, step, 188, 40), rel=1e-12, abs=1e-15), step
        schedule.step()


# ------------------------------------------------------------------------------------------ data
def _photo(height=300, width=400) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def test_authors_training_transform_resizes_the_short_side_then_crops_and_flips():
    """readers.py: resize_short(img, 256) (cv2.resize, rounded sides), crop_image(img, 224, center=False) (w_start,
    then h_start, each np.random.randint(0, side - 224 + 1)), then a horizontal mirror half of the time."""
    img = _photo()
    transform = authors_train_transform(224, 256, antialias=False)
    for seed in range(6):
        np.random.seed(seed)
        got = transform(img)
        np.random.seed(seed)
        resized = cv2.resize(img, (int(round(400 * 256 / 300)), 256))  # 341 x 256
        left, top = np.random.randint(0, 341 - 224 + 1), np.random.randint(0, 256 - 224 + 1)
        want = resized[top:top + 224, left:left + 224]
        if np.random.random() < 0.5:
            want = want[:, ::-1]
        assert got.shape == (3, 224, 224)
        np.testing.assert_array_equal(got, want.transpose(2, 0, 1))


def test_authors_test_transform_is_a_center_crop_of_the_resized_image():
    img = _photo()
    got = eval_transform(224, 256, antialias=False)(img)
    resized = cv2.resize(img, (341, 256))
    want = resized[(256 - 224) // 2:(256 - 224) // 2 + 224, (341 - 224) // 2:(341 - 224) // 2 + 224]
    np.testing.assert_array_equal(got, want.transpose(2, 0, 1))


class _Indices(paddle.io.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i


def _epochs(sampler, count):
    out = []
    for epoch in range(count):
        sampler.set_epoch(epoch)
        out.append(list(sampler))
    return out


def test_fixed_order_has_the_same_batches_every_epoch_and_drops_the_last():
    """The authors' reader: one permutation, a shuffle buffer of one batch, drop_last=True."""
    sampler = SeededBatchSampler(_Indices(70), batch_size=32, seed=5, shuffle=True, drop_last=True, reshuffle=False)
    epochs = _epochs(sampler, 3)
    assert all(len(batches) == 2 and all(len(b) == 32 for b in batches) for batches in epochs)
    as_sets = [[frozenset(b) for b in batches] for batches in epochs]
    assert as_sets[0] == as_sets[1] == as_sets[2]  # same batches, same order
    assert epochs[0] != epochs[1]  # only the order inside a batch moves
    reshuffled = _epochs(SeededBatchSampler(_Indices(70), batch_size=32, seed=5, shuffle=True, drop_last=True), 2)
    assert [frozenset(b) for b in reshuffled[0]] != [frozenset(b) for b in reshuffled[1]]


# ------------------------------------------------------------------------------------------ model
def test_authors_initial_head_is_uniform_on_fan_in_with_a_zero_bias():
    """as_models/resnet.py: fc param_attr Uniform(-stdv, stdv), stdv = 1/sqrt(2048); fluid's default bias is 0."""
    paddle.seed(0)
    head = nn.Linear(2048, 1000)
    initialize_classifier(head, "authors")
    w, bound = head.weight.numpy(), 1 / math.sqrt(2048)
    assert w.max() <= bound and w.min() >= -bound and w.std() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert not head.bias.numpy().any()
    paddle.seed(0)
    xavier = nn.Linear(2048, 1000)
    before = xavier.weight.numpy().copy()
    initialize_classifier(xavier, "paddle")  # Paddle's own Xavier-uniform, left alone
    np.testing.assert_array_equal(xavier.weight.numpy(), before)
    assert before.std() == pytest.approx(math.sqrt(6 / 3048) / math.sqrt(3), rel=0.05)


def test_batchnorm_statistics_restart_from_zero_mean_unit_variance():
    """run.py loads trainable variables only; fluid's moving mean/variance start at 0 and 1."""
    net = create_model("resnet18", num_classes=3)
    for layer in net.sublayers():
        if isinstance(layer, nn.BatchNorm2D):
            layer._mean.set_value(paddle.full_like(layer._mean, 0.3))
            layer._variance.set_value(paddle.full_like(layer._variance, 2.0))
    assert reset_batchnorm_statistics(net) == 20
    for layer in net.sublayers():
        if isinstance(layer, nn.BatchNorm2D):
            assert not layer._mean.numpy().any() and (layer._variance.numpy() == 1).all()


def test_the_teacher_keeps_the_pretrained_statistics(tiny_config):
    """model.pretrained_bn_stats=false applies to the fine-tuned network only (the DELTA authors' source model is
    the full pretrained state)."""
    from rifle_paddle.engine import train
    result = train(tiny_config("train.epochs=1", "model.pretrained_bn_stats=false", "regularizer.name=kd",
                               "log.visualdl=false"))
    log_text = open(f"{result['run_dir']}/train.log").read()
    assert "running statistics of 20 layers reset to 0/1" in log_text
    assert log_text.index("regularizer: feature distillation") < log_text.index("running statistics")


# ------------------------------------------------------------------------------------------ DELTA
def test_delta_regularizes_the_authors_conv3_layers():
    """train.py: hook_layers for resnet50."""
    assert last_convolutions(create_model("resnet50", num_classes=2)) == \
        ["layer1.2.conv3", "layer2.3.conv3", "layer3.5.conv3", "layer4.2.conv3"]
    assert last_convolutions(create_model("resnet18", num_classes=2)) == \
        ["layer1.1.conv2", "layer2.1.conv2", "layer3.1.conv2", "layer4.1.conv2"]


class _Conv(nn.Layer):
    def __init__(self):
        super().__init__()
        self.feat = nn.Conv2D(2, 3, 3, padding=1)
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(self.feat(x).mean(axis=[2, 3]))


def authors_att_fea_map(fm_src: np.ndarray, fm_tgt: np.ndarray, js: np.ndarray) -> float:
    """train.py, reg_att_fea_map for one layer, with the channel weights of its loading code:
    ``js = (js - mean) / std``, ``cw = softmax(js / 5)``; ``distance = norm(fm_tgt - fm_src, 2, 2)`` over the
    flattened positions, ``c * cw * distance**2 / (h * w)``, ``0.5 * sum`` over batch and channels."""
    b, c, h, w = fm_src.shape
    z = (js - js.mean()) / js.std()
    cw = np.exp(z / 5) / np.exp(z / 5).sum()
    distance = np.linalg.norm((fm_tgt - fm_src).reshape(b, c, h * w), 2, axis=2)
    return 0.5 * float((c * cw * distance ** 2 / (h * w)).sum())


def test_delta_value_equals_the_authors_formula_on_a_fixed_tensor():
    paddle.seed(0)
    net = _Conv()
    alpha = 0.01
    reg = DELTA(alpha=alpha, beta=0.0, layers=["feat"]).attach(net)
    importance = np.array([0.02, -0.01, 0.3])
    reg.set_attention({"feat": attention_from_importance(paddle.to_tensor(importance, dtype="float32")).numpy()})
    with paddle.no_grad():
        net.feat.weight.set_value(net.feat.weight + 0.1)
    x = paddle.to_tensor(np.random.default_rng(3).normal(size=(5, 2, 4, 6)).astype("float32"))
    with reg.observe():
        net(x)
    value = float(reg.penalty([x]))
    with paddle.no_grad():
        target, source = net.feat(x).numpy(), reg.teacher.feat(x).numpy()
    assert value == pytest.approx(alpha * authors_att_fea_map(source, target, importance), rel=1e-5)
    reg.reduction = "mean"  # our variant: the same divided by the batch size
    with reg.observe():
        net(x)
    assert float(reg.penalty([x])) == pytest.approx(value / 5, rel=1e-5)


def test_delta_authors_discriminator_trains_on_a_copy_and_leaves_the_teacher_alone():
    """channel_eval.py trains its fc with model.train() (batch norm statistics move) on its own model; the DELTA
    teacher (train.py's model_source) stays the pretrained network."""
    paddle.seed(0)
    net = create_model("resnet18", num_classes=3)
    reg = DELTA(layers=["layer1.1.conv2"], attention_batches=1, probe="authors").attach(net)
    before = {k: v.numpy().copy() for k, v in reg.teacher.state_dict().items()}
    rng = np.random.default_rng(0)
    batches = [(paddle.to_tensor(rng.normal(size=(4, 3, 32, 32)).astype("float32")),
                paddle.to_tensor(np.array([0, 1, 2, 0]))) for _ in range(2)]
    reg.prepare(batches)
    weights = reg.channel_weights("layer1.1.conv2")
    assert int(weights.shape[0]) == 64 and float(weights.mean()) == pytest.approx(1.0, rel=1e-5)
    for k, v in reg.teacher.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)
    assert not reg.teacher.training
