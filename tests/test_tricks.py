"""The RIFLE paper's baseline tricks: each one's defining behaviour, and that RIFLE still works on top of them."""
import math
import os

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
from paddle import nn
from paddle.vision.models.resnet import BasicBlock

from rifle_paddle.callbacks import RifleController
from rifle_paddle.config import ConfigError, load_config
from rifle_paddle.engine import TransferModel, train
from rifle_paddle.engine.optim import build_lr_scheduler
from rifle_paddle.models import create_model, find_classifier
from rifle_paddle.tricks import (DisturbLabel, DropConnectLinear, ResidualDrop, disturb_labels, install_dropconnect,
                                 install_dropout, install_stochastic_depth, install_tricks, linear_drop_rates)


def _within(observed: float, p: float, n: int, sigmas: float = 4.0) -> bool:
    """``observed`` frequency is within ``sigmas`` binomial standard deviations of ``p``."""
    return abs(observed - p) <= sigmas * math.sqrt(p * (1 - p) / n)


def _identity_linear(width: int) -> nn.Linear:
    layer = nn.Linear(width, width)
    layer.weight.set_value(paddle.eye(width))
    layer.bias.set_value(paddle.zeros([width]))
    return layer


# --- dropout on the classifier input ---------------------------------------------------------------------------

def test_dropout_drops_classifier_inputs_at_the_rate_only_in_training():
    paddle.seed(0)
    head = _identity_linear(4000)  # output == (dropped) input
    install_dropout(head, 0.3)
    x = paddle.ones([1, 4000])
    head.eval()
    np.testing.assert_array_equal(head(x).numpy(), x.numpy())
    head.train()
    out = head(x).numpy()
    dropped = float((out == 0).mean())
    assert _within(dropped, 0.3, 4000)
    np.testing.assert_allclose(out[out != 0], 1 / 0.7, rtol=1e-6)  # kept inputs scaled: expectation unchanged


# --- DropConnect on the classifier weights ---------------------------------------------------------------------

def test_dropconnect_masks_weights_only_in_training_and_keeps_the_expectation():
    paddle.seed(0)
    plain = nn.Linear(50, 40)
    layer = DropConnectLinear.from_linear(plain, rate=0.5)
    assert layer.weight is plain.weight and layer.bias is plain.bias  # adopted, not copied
    x = paddle.randn([3, 50])
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), plain(x).numpy())

    layer.train()
    one_hot = paddle.eye(50)  # row i of the output is row i of the masked weight matrix (+ bias)
    masked = (layer(one_hot) - layer.bias).numpy()
    dropped = float((np.abs(masked) < 1e-12).mean())
    assert _within(dropped, 0.5, masked.size)
    kept = np.abs(masked) >= 1e-12
    np.testing.assert_allclose(masked[kept], 2 * plain.weight.numpy()[kept], rtol=1e-5)

    n = 2000
    mean = np.mean([layer(x).numpy() for _ in range(n)], axis=0)
    # E[masked layer] == plain layer; each output's variance is sum_i x_i^2 W_ij^2 (1/keep - 1)
    std = np.sqrt((x.numpy() ** 2) @ (plain.weight.numpy() ** 2) * (1 / 0.5 - 1) / n)
    assert np.all(np.abs(mean - plain(x).numpy()) <= 5 * std + 1e-6)


def test_dropconnect_keeps_the_classifier_and_its_checkpoint_keys():
    net = create_model("resnet18", num_classes=5)
    keys = list(net.state_dict())
    weight = net.fc.weight
    head = install_dropconnect(net, "fc", 0.5)
    assert list(net.state_dict()) == keys  # checkpoints stay plain ResNet checkpoints
    assert find_classifier(net) == ("fc", head) and net.get_classifier() is head
    assert head.weight is weight
    with pytest.raises(ValueError, match="already installed"):
        install_dropconnect(net, "fc", 0.5)


def test_rifle_redraws_the_real_classifier_under_dropconnect():
    paddle.seed(0)
    net = create_model("resnet18", num_classes=5)
    opt = paddle.optimizer.Momentum(0.01, parameters=net.parameters())
    install_tricks(net, load_config(None, ["tricks.dropconnect=true", "tricks.dropout=true"])["tricks"])
    name, head = find_classifier(net)  # what the RIFLE callback does at on_train_begin
    assert name == "fc" and isinstance(head, DropConnectLinear)
    before = head.weight.numpy().copy()
    RifleController(head, opt, epochs=4, num_reinits=1, min_tail_epochs=1, seed=3).on_epoch_begin(2)
    expected = np.random.default_rng([3, 2]).normal(0, np.sqrt(2 / 512), size=(512, 5))
    np.testing.assert_allclose(net.fc.weight.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(net.fc.weight.numpy(), before)
    assert any(p is net.fc.weight for p in opt._parameter_list)  # the optimizer trains the re-drawn weight
    net.eval()  # and the network computes with it
    features = paddle.randn([2, 512])
    np.testing.assert_allclose(net.forward_head(features).numpy(),
                               (features @ net.fc.weight + net.fc.bias).numpy(), rtol=1e-5, atol=1e-5)


# --- stochastic depth --------------------------------------------------------------------------------------------

def test_stochastic_depth_rates_grow_linearly_to_the_configured_rate():
    net = create_model("resnet18", num_classes=3)
    hooks = install_stochastic_depth(net, 0.5)
    assert [name for name, _ in hooks] == [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    assert [h.rate for _, h in hooks] == pytest.approx([0.5 * l / 8 for l in range(1, 9)])
    assert linear_drop_rates(16, 0.5)[-1] == 0.5  # ResNet-50: the deepest of 16 blocks drops with p_L


def test_stochastic_depth_is_the_plain_network_in_eval():
    paddle.seed(0)
    plain = create_model("resnet18", num_classes=3)
    tricked = create_model("resnet18", num_classes=3)
    tricked.set_state_dict(plain.state_dict())
    install_stochastic_depth(tricked, 0.9)
    plain.eval()
    tricked.eval()
    x = paddle.randn([2, 3, 32, 32])
    np.testing.assert_array_equal(tricked(x).numpy(), plain(x).numpy())


def test_stochastic_depth_drops_a_block_at_its_rate_in_training():
    paddle.seed(0)
    block = BasicBlock(8, 8)
    block.train()
    x = paddle.randn([4, 8, 6, 6])
    branch = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))  # batch statistics: deterministic
    kept_output = F.relu(x + branch / 0.7).numpy()
    dropped_output = F.relu(x).numpy()
    block.bn2.register_forward_post_hook(ResidualDrop(0.3))
    outcomes = []
    for _ in range(400):
        out = block(x).numpy()
        is_dropped = np.allclose(out, dropped_output, atol=1e-6)
        assert is_dropped or np.allclose(out, kept_output, atol=1e-5)  # whole block dropped or kept, scaled
        outcomes.append(is_dropped)
    assert _within(float(np.mean(outcomes)), 0.3, 400)


def test_stochastic_depth_needs_residual_blocks():
    with pytest.raises(ValueError, match="residual blocks"):
        install_stochastic_depth(nn.Sequential(nn.Linear(2, 2)), 0.5)


# --- DisturbLabel ----------------------------------------------------------------------------------------------

def test_disturb_label_changes_about_alpha_times_one_minus_one_over_k_of_the_labels():
    paddle.seed(0)
    labels = paddle.to_tensor(np.random.default_rng(0).integers(0, 10, 20000), dtype="int64")
    noisy = disturb_labels(labels, alpha=0.2, num_classes=10)
    assert noisy.dtype == labels.dtype and noisy.shape == labels.shape
    changed = float((noisy != labels).astype("float32").mean())
    assert _within(changed, 0.2 * (1 - 1 / 10), 20000)  # a re-drawn label may land on the true class
    assert int(noisy.min()) >= 0 and int(noisy.max()) <= 9
    np.testing.assert_array_equal(disturb_labels(labels, 0.0, 10).numpy(), labels.numpy())


class _RecordingStep:
    def __init__(self):
        self.seen = []

    def __call__(self, model, inputs, labels, scaler):
        self.seen.append(labels[0].numpy().copy())
        outputs = model.forward_train(inputs)
        loss = model._loss(outputs, labels[0])
        loss.backward()
        return [loss]


def test_disturb_label_touches_training_batches_only():
    paddle.seed(0)
    net = nn.Linear(4, 10)
    inner = _RecordingStep()
    model = TransferModel(net, train_step=DisturbLabel(0.9, num_classes=10, inner=inner))
    model.prepare(paddle.optimizer.SGD(0.0, parameters=net.parameters()), nn.CrossEntropyLoss())
    x = np.random.default_rng(0).normal(size=(500, 4)).astype("float32")
    y = np.zeros([500], dtype="int64")
    eval_loss = model.eval_batch([x], [y])
    assert not inner.seen  # evaluation never goes through the training step
    expected = F.cross_entropy(net(paddle.to_tensor(x)), paddle.to_tensor(y)).numpy()
    np.testing.assert_allclose(np.ravel(eval_loss[0]), np.ravel(expected), rtol=1e-6)
    model.train_batch([x], [y])
    assert _within(float((inner.seen[0] != 0).mean()), 0.9 * 0.9, 500)


# --- cyclic learning rate --------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["triangular", "triangular2"])
def test_cyclic_lr_follows_smiths_formula(mode):
    cfg = load_config(None, ["train.lr_schedule=cyclic", "train.lr=0.01", "train.cyclic_base_lr_ratio=0.1",
                             "train.cyclic_step_epochs=2", f"train.cyclic_mode={mode}", "train.epochs=12"])
    sched = build_lr_scheduler(cfg["train"], steps_per_epoch=3)
    base, peak, step = 0.001, 0.01, 6  # step size: 2 epochs x 3 iterations
    for it in range(36):
        cycle = math.floor(1 + it / (2 * step))
        x = abs(it / step - 2 * cycle + 1)
        scale = 1.0 if mode == "triangular" else 1 / 2 ** (cycle - 1)
        assert sched.get_lr() == pytest.approx(base + (peak - base) * max(0.0, 1 - x) * scale, abs=1e-12), it
        sched.step()


# --- configuration ---------------------------------------------------------------------------------------------

def test_trick_switches_default_off_with_the_papers_rates():
    tricks = load_config(None)["tricks"]
    assert not any(tricks[k] for k in ("dropout", "dropconnect", "stochastic_depth", "disturb_label"))
    assert (tricks["dropout_rate"], tricks["dropconnect_rate"], tricks["stochastic_depth_rate"],
            tricks["disturb_label_alpha"]) == (0.5, 0.5, 0.5, 0.1)


def test_trick_rates_are_range_checked():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["tricks.dropout_rate=1.0", "tricks.disturb_label_alpha=-0.1",
                           "tricks.stochastic_depth=true", "tricks.stochastic_depth_rate=0"])
    text = str(e.value)
    assert "tricks.dropout_rate: must be in [0, 1)" in text and "tricks.disturb_label_alpha" in text
    with pytest.raises(ConfigError, match="no effect"):
        load_config(None, ["tricks.stochastic_depth=true", "tricks.stochastic_depth_rate=0"])


# --- all of them at once, through the engine -------------------------------------------------------------------

@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_every_trick_trains_together_with_rifle(tiny_config):
    cfg = tiny_config("train.epochs=2", "rifle.enabled=true", "rifle.num_reinits=1", "rifle.min_tail_epochs=1",
                      "rifle.reset_optimizer_state=true", "tricks.dropout=true", "tricks.dropconnect=true", "tricks.stochastic_depth=true",
                      "tricks.disturb_label=true", "train.lr_schedule=cyclic", "train.cyclic_step_epochs=1",
                      "log.visualdl=false")
    result = train(cfg)
    assert [e["epoch"] for e in result["rifle_events"]] == [2]
    assert set(result["rifle_events"][0]) >= {"epoch", "reset_accumulators"}
    assert np.isfinite(result["epochs"][-1]["train_loss"])
    saved = paddle.load(os.path.join(result["run_dir"], "last.pdparams"))
    assert list(saved) == list(create_model("resnet18", num_classes=3).state_dict())  # a plain checkpoint
    log_text = open(os.path.join(result["run_dir"], "train.log")).read()
    for line in ("trick: DropConnect", "trick: dropout", "trick: stochastic depth on 8 residual blocks"):
        assert line in log_text
