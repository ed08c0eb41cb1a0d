"""The authors' protocol, rule by rule (docs/fidelity.md), each against a transcription of their code.

RIFLE authors: haozhe-an/RIFLE-Paddle-Implementation (fine_tuning/run.py, as_models/resnet.py,
as_data_reader/readers.py). DELTA authors: lixingjian/DELTA (train.py, channel_eval.py). The RIFLE schedule, re-draw
and O2 momentum reset are in test_rifle.py.
"""
import math
import os

import cv2
import numpy as np
import paddle
import pytest
from paddle import nn

from rifle_paddle.config import CONFIGS_DIR, load_config
from rifle_paddle.data.sampler import SeededBatchSampler
from rifle_paddle.data.transforms import authors_train_transform, eval_transform
from rifle_paddle.engine.optim import build_lr_scheduler
from rifle_paddle.engine.trainer import lr_stair
from rifle_paddle.models import create_model, initialize_classifier, reset_batchnorm_statistics
from rifle_paddle.regularizers import DELTA
from rifle_paddle.regularizers.delta import attention_from_importance, last_convolutions

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------------------ learning rate
# Official split sizes of CUB-200-2011 (train_test_split.txt): 5,994 training and 5,794 test images.
CUB_TRAIN, CUB_TEST = 5994, 5794


def test_the_stair_counts_one_processs_steps_on_several_cards(monkeypatch):
    """Each process reads ceil(N / ranks) images an epoch, so the stair keeps its length in that process's steps
    (the authors' step_each_epoch counts the steps of their one process): CUB's test split on 2 cards."""
    monkeypatch.setattr(paddle.distributed, "get_world_size", lambda: 2)
    assert lr_stair(CUB_TEST, 32) == math.ceil(math.ceil(CUB_TEST / 2) / 32) == 91


def test_the_paper_configs_stair_is_the_test_splits_at_every_step():
    """run.py:89, 117, 120 (tests/authors/rifle.py): stairs of ceil(5,794 / 32) = 182 steps, epochs of
    floor(5,994 / 32) = 187; our packaged CUB-200 config, through the trainer's stair, at all 7,480 steps."""
    from authors import rifle as authors
    from rifle_paddle.engine.trainer import stair_images
    cfg = load_config(f"{CONFIGS_DIR}/cub200/resnet50_rifle.yaml")
    stair = lr_stair(stair_images(cfg["train"], CUB_TRAIN, CUB_TEST), cfg["data"]["batch_size"])
    assert stair == authors.step_each_epoch(CUB_TEST, 32) == 182
    epoch = authors.epoch_steps(CUB_TRAIN, 32)
    schedule = build_lr_scheduler(cfg["train"], steps_per_epoch=epoch, epoch_stair=stair)
    for step in range(40 * epoch):
        want = authors.cosine_decay(0.01, step, authors.step_each_epoch(CUB_TEST, 32), 40)
        assert schedule.get_lr() == pytest.approx(want, rel=1e-12, abs=1e-15), step
        schedule.step()
    # the named option most users want: stairs of the training split, one step longer than a 187-step epoch
    train_side = {**cfg["train"], "lr_stair": "train_split"}
    assert lr_stair(stair_images(train_side, CUB_TRAIN, CUB_TEST), 32) == 188


# ------------------------------------------------------------------------------------------ data
def _photo(height=300, width=400) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def test_the_paper_configs_training_images_are_the_authors_reader_output(tmp_path):
    """readers.py:154-163 (tests/authors/rifle.py ``read``) against our ``build_dataset`` on the packaged CUB-200
    config, from the JPEG files: the same NumPy seed gives the same draws (w_start, h_start, then the flip) and
    the same normalized pixels. Their flip turns the image upside down (readers.py:67, 77)."""
    from authors import rifle as authors
    from rifle_paddle.data import build_dataset
    from rifle_paddle.data.synthetic import make_image_folder
    root = make_image_folder(str(tmp_path), num_classes=2, train_per_class=2, test_per_class=1, size=(300, 400))
    cfg = load_config(f"{CONFIGS_DIR}/cub200/resnet50_rifle.yaml", ["data.name=folder", f"data.root={root}"])
    dataset = build_dataset(cfg["data"], "train")
    class Recording:  # NumPy's global generator, keeping the flip draws
        uniforms = []

        def randint(self, low, high):
            return np.random.randint(low, high)

        def uniform(self, low, high):
            self.uniforms.append(np.random.uniform(low, high))
            return self.uniforms[-1]
    rng = Recording()
    for seed in range(6):
        for index, (path, _) in enumerate(dataset.samples):
            np.random.seed(seed)
            image, _ = dataset[index]
            ours = dataset.batch_transform(image[None])
            np.random.seed(seed)
            theirs = authors.read(path, False, rng)
            np.testing.assert_allclose(ours, theirs, atol=1e-5, err_msg=f"{path}, seed {seed}")
    assert {int(u) for u in rng.uniforms} == {0, 1}  # both outcomes were compared


def test_the_flip_options_flip_the_axis_they_name():
    """data.flip: 'vertical' reverses the rows (the authors), 'horizontal' the columns, 'none' nothing."""
    img = _photo(40, 50)
    for flip, reverse in (("vertical", lambda a: a[:, ::-1]), ("horizontal", lambda a: a[:, :, ::-1]),
                          ("none", None)):
        seen = set()
        for seed in range(8):
            np.random.seed(seed)
            got = authors_train_transform(32, 36, antialias=False, flip=flip)(img)
            np.random.seed(seed)
            plain = authors_train_transform(32, 36, antialias=False, flip="none")(img)
            seen.add("same" if np.array_equal(got, plain) else "flipped")
            if reverse is not None and not np.array_equal(got, plain):
                np.testing.assert_array_equal(got, reverse(plain))
        assert seen == ({"same"} if reverse is None else {"same", "flipped"}), flip


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


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_the_teacher_keeps_the_pretrained_statistics(tiny_config, tmp_path):
    """model.pretrained_bn_stats=false applies to the fine-tuned network only: the regularizer's teacher keeps the
    checkpoint's batch-norm statistics (the DELTA authors' source model is the full pretrained state,
    train.py:79-80, 95-99), while the student's restart at 0/1 (run.py:141-150)."""
    from rifle_paddle.engine import train
    paddle.seed(5)
    source = create_model("resnet18", num_classes=10)
    for layer in source.sublayers():
        if isinstance(layer, nn.BatchNorm2D):
            layer._mean.set_value(paddle.uniform(layer._mean.shape, min=-0.5, max=0.5))
            layer._variance.set_value(paddle.uniform(layer._variance.shape, min=0.5, max=2.0))
    checkpoint = {k: v.numpy().copy() for k, v in source.state_dict().items()}
    paddle.save(source.state_dict(), str(tmp_path / "source.pdparams"))

    class Seen(paddle.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.teacher = {k: v.numpy().copy() for k, v in self.model.train_step.regularizer.teacher.state_dict()
                            .items()}
            self.student = {k: v.numpy().copy() for k, v in self.model.network.state_dict().items()}
    seen = Seen()
    train(tiny_config("train.epochs=1", "model.pretrained_bn_stats=false", "regularizer.name=kd",
                      f"model.pretrained={tmp_path / 'source.pdparams'}", "log.visualdl=false"), callbacks=[seen])
    statistics = [k for k in checkpoint if k.endswith(("_mean", "_variance"))]
    assert len(statistics) == 40
    for k in statistics:
        np.testing.assert_array_equal(seen.teacher[k], checkpoint[k], err_msg=k)
        assert (seen.student[k] == (0 if k.endswith("_mean") else 1)).all(), k


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


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
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


# ------------------------------------------------------------------------------------------ end to end
# The RIFLE authors' pipeline (tests/authors/rifle.py, transcribed from their files) against our engine on the
# packaged CUB-200 RIFLE config scaled down: 3 classes, 15 training images and 6 test images (neither a multiple of
# the batch of 4: 3-step epochs, the authors' 2-step stairs, our training-split stair would be 4), 32 px crops of
# 36 px resizes of 40x50 JPEGs, a ResNet in miniature (tests/tiny_net.py), 6 epochs, cyclic_num 3 (one
# re-initialization, after epoch 1).
# Our engine runs as it always does; its random decisions (file order, crop offsets, flip draws, re-drawn values)
# are recorded and replayed into the oracle, which asks for them in its own order and with its own arguments.

TRACE = {"classes": 3, "train_per_class": 5, "test_per_class": 2, "size": (40, 50), "resize": 36, "crop": 32,
         "batch": 4, "epochs": 6, "cyclic_num": 3}


class _Replay:
    """NumPy's and Python's random calls of the authors' code, answered with our engine's recorded decisions.

    Every answer checks the question first: a crop offset is only given for the same bound (``randint(0, w - 16 +
    1)`` before ``randint(0, h - 16 + 1)``), a flip draw only to ``uniform(0, 2)``, a re-draw only for the same
    scale and shape, a batch only if the shuffle buffer holds the same images."""

    def __init__(self, permutations, draws, shuffles, normals, batch_size):
        self.permutations, self.draws, self.shuffles, self.normals = permutations, draws, shuffles, normals
        self.batch_size = batch_size

    def permutation(self, items):
        order = self.permutations.pop(0)
        assert sorted(order) == list(items)
        return np.array(order)

    def _draw(self, kind, args):
        want_kind, want_args, value = self.draws.pop(0)
        if want_kind is None:  # an image of the dropped last batch: our engine never reads it
            return 0 if kind == "randint" else 0.0
        assert (kind, args) == (want_kind, want_args), f"authors draw {kind}{args}, ours {want_kind}{want_args}"
        return value

    def randint(self, low, high):
        return self._draw("randint", (low, high))

    def uniform(self, low, high):
        return self._draw("uniform", (low, high))

    def normal(self, loc, scale, size):
        want_scale, want_shape, values = self.normals.pop(0)
        assert loc == 0 and scale == pytest.approx(want_scale, rel=1e-12) and tuple(size) == want_shape
        return values

    def shuffle(self, buf):
        if len(buf) < self.batch_size:  # the remainder, which paddle.batch(drop_last=True) drops
            return
        order = self.shuffles.pop(0)
        assert sorted(item[2] for item in buf) == sorted(order), "a batch of other images"
        buf.sort(key=lambda item: order.index(item[2]))


class _EngineRecorder(paddle.callbacks.Callback):
    """Our engine's side: the state before training and after each epoch, the learning rate and input of every
    training step."""

    def __init__(self):
        super().__init__()
        self.init, self.epochs, self.lrs, self.inputs = None, [], [], []

    def _state(self):
        return {k: v.numpy().copy() for k, v in self.model.network.state_dict().items()}

    def on_train_begin(self, logs=None):
        self.init = self._state()
        self.model.network.register_forward_pre_hook(
            lambda layer, args: self.inputs.append(args[0].numpy().copy()) if layer.training else None)

    def on_train_batch_begin(self, step, logs=None):
        self.lrs.append(self.model._optimizer.get_lr())

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(self._state())


def _close(ours, theirs, what):
    scale = max(float(np.abs(theirs).max()), 1e-30)
    assert float(np.abs(ours - theirs).max()) <= 1e-5 * scale, what


def test_the_packaged_paper_config_trains_as_the_authors_pipeline_step_by_step(tmp_path, monkeypatch):
    import threading

    from authors import rifle as authors
    from rifle_paddle.callbacks import rifle as rifle_module
    from rifle_paddle.config import CONFIGS_DIR
    from rifle_paddle.data import base as data_base
    from rifle_paddle.data.synthetic import make_image_folder
    from rifle_paddle.engine import train

    t = TRACE
    root = make_image_folder(str(tmp_path / "data"), t["classes"], t["train_per_class"], t["test_per_class"],
                             size=t["size"], seed=3)
    from rifle_paddle.models import registry
    from tiny_net import TinyResNet
    monkeypatch.setitem(registry._MODELS, "tiny_resnet", TinyResNet)
    paddle.seed(7)
    source = TinyResNet(num_classes=10)
    for layer in source.sublayers():  # pretrained statistics that a faithful run must not load
        if isinstance(layer, nn.BatchNorm2D):
            layer._mean.set_value(paddle.uniform(layer._mean.shape, min=-0.5, max=0.5))
            layer._variance.set_value(paddle.uniform(layer._variance.shape, min=0.5, max=2.0))
    pretrained = {k: v.numpy().copy() for k, v in source.state_dict().items()}
    paddle.save(source.state_dict(), str(tmp_path / "source.pdparams"))

    # ---- our engine, recording its random decisions
    local = threading.local()
    fetched, draws, normals, our_labels = [], {}, [], {}

    def recording(name):
        original = getattr(np.random, name)

        def call(*args):
            value = original(*args)
            if getattr(local, "key", None) is not None:
                draws[local.key].append((name, tuple(args), value))
            return value
        return call

    for name in ("randint", "uniform", "random"):
        monkeypatch.setattr(np.random, name, recording(name))
    getitem = data_base.ImageClassificationDataset.__getitem__

    def recorded_getitem(self, index):
        if not self.name.endswith(":train"):
            return getitem(self, index)
        path, label = self.samples[index]
        epoch = len(fetched) // (len(self) // t["batch"] * t["batch"])
        fetched.append(path)
        our_labels[path] = label
        local.key = (epoch, path)
        draws[local.key] = []
        try:
            return getitem(self, index)
        finally:
            local.key = None
    monkeypatch.setattr(data_base.ImageClassificationDataset, "__getitem__", recorded_getitem)
    draw = rifle_module.draw

    class _NormalRecorder:
        def __init__(self, rng):
            self.rng = rng

        def normal(self, loc, scale, size):
            values = self.rng.normal(loc, scale, size=size)
            normals.append((scale, tuple(size), values.astype(np.float32)))
            return values
    monkeypatch.setattr(rifle_module, "draw", lambda rng, *a: draw(_NormalRecorder(rng), *a))

    cfg = load_config(f"{CONFIGS_DIR}/cub200/resnet50_rifle.yaml", [
        "model.arch=tiny_resnet", f"model.pretrained={tmp_path / 'source.pdparams'}", "data.name=folder",
        f"data.root={root}", f"data.image_size={t['crop']}", f"data.resize_size={t['resize']}",
        f"data.batch_size={t['batch']}", "data.eval_batch_size=4", "data.num_workers=0",
        f"train.epochs={t['epochs']}", f"train.eval_freq={t['epochs']}", "run.device=cpu", "log.visualdl=false",
        f"run.output_dir={tmp_path / 'out'}", "run.name=trace", "train.save_best=false"])
    assert cfg["rifle"]["num_reinits"] + 1 == t["cyclic_num"]
    ours = _EngineRecorder()
    train(cfg, callbacks=[ours])

    # ---- the decisions, in the oracle's order
    per_epoch = len(fetched) // t["epochs"]
    our_batches = [fetched[i:i + t["batch"]] for i in range(0, len(fetched), t["batch"])]
    train_paths = [str(p) for p in authors.get_dataset_info(root, False)[0]]
    test_paths = authors.get_dataset_info(root, True)[0]
    first_epoch = fetched[:per_epoch]
    order = first_epoch + sorted(set(train_paths) - set(first_epoch))  # + the images of the dropped last batch
    replay_draws = []
    for epoch in range(t["epochs"]):
        for path in order:
            replay_draws.extend(draws.get((epoch, path)) or [(None, None, None)] * 3)
    replay = _Replay([[train_paths.index(p) for p in order], list(range(len(test_paths)))], replay_draws,
                     list(our_batches), list(normals), t["batch"])
    fed = []

    def feed(images):
        """Their pixels must equal ours to float32 rounding (theirs ``(x / 255 - mean) / std``, ours ``x * scale +
        shift``); each side trains on its own."""
        step = len(fed)
        np.testing.assert_allclose(ours.inputs[step], images, atol=1e-5, err_msg=f"step {step}: pixels")
        fed.append(step)
        return images
    net = TinyResNet(num_classes=t["classes"])
    oracle = authors.fine_tune(
        net, pretrained, {k: v for k, v in ours.init.items() if k.startswith("fc.")}, root, replay, replay,
        num_epoch=t["epochs"], cyclic_num=t["cyclic_num"], batch_size=t["batch"], target_size=t["resize"],
        crop_size=t["crop"], feed=feed)

    step = 0
    for event in oracle:
        if event[0] == "init":
            for k, v in event[1].items():
                np.testing.assert_array_equal(ours.init[k], v, err_msg=f"before training: {k}")
        elif event[0] == "step":
            _, paths, labels, images, lr = event
            assert [str(p) for p in paths] == our_batches[step], f"step {step}: batch"
            assert list(labels) == [our_labels[str(p)] for p in paths], f"step {step}: labels"
            assert fed[-1] == step  # the pixels, compared by feed
            assert ours.lrs[step] == pytest.approx(lr, rel=1e-9), f"step {step}: learning rate"
            step += 1
        else:
            _, e_id, state = event
            for k, v in state.items():
                _close(ours.epochs[e_id][k], v, f"after epoch {e_id}: {k}")
    assert step == len(our_batches) == t["epochs"] * (t["classes"] * t["train_per_class"] // t["batch"])
    assert not replay.normals and len(normals) == 2  # fc.weight and fc.bias, re-drawn once
    flips = {value for calls in draws.values() for kind, _, value in calls if kind == "uniform"}
    assert {int(v) for v in flips} == {0, 1}  # both flip outcomes were traced
    assert len(set(ours.lrs[:3])) == 2  # a stair ends inside the first epoch


# ------------------------------------------------------------------------------------------ DELTA authors' scripts
# Our data set names and the DELTA authors' folder names in run.sh (line 6, 14); the others are not in run.sh
THEIR_NAMES = {"cub200": "CUB_200_2011", "stanford_dogs": "Stanford_Dogs", "caltech256": "Caltech30"}


def _packaged(method: str) -> list[str]:
    import glob
    return sorted(glob.glob(f"{CONFIGS_DIR}/*/resnet50_{method}.yaml"))


@pytest.mark.parametrize("method", ["delta", "rifle_delta"])
def test_the_paper_configs_delta_weights_are_the_delta_authors_run_sh(method):
    """run.sh:15-18: alpha 0.01, 0.1 on Stanford_Dogs; beta 0.01 (train.py:35); no weight decay (train.py:268-270);
    the positions averaged (train.py:176)."""
    from authors import delta as authors
    paths = _packaged(method)
    assert len(paths) == 9
    for path in paths:
        cfg = load_config(path)
        dataset = cfg["run"]["cell"].split("/")[0]
        reg = cfg["regularizer"]
        assert reg["alpha"] == authors.alpha_for(THEIR_NAMES.get(dataset, dataset)), path
        assert reg["beta"] == authors.BETA and cfg["train"]["weight_decay"] == authors.weight_decay("att_fea_map")
        assert reg.get("feature_positions", "mean") == "mean"


def test_the_paper_configs_kd_is_the_delta_authors_feature_map_term():
    """train.py:156-162 (reg_fea_map) on the conv3 outputs they hook (train.py:128-129), + beta * 0.5 ||fc||^2
    (train.py:142-147, 216-217, 224): our packaged KD config, attached to a ResNet-50, on a fixed batch."""
    from authors import delta as authors
    from rifle_paddle.regularizers import build_regularizer
    cfg = load_config(f"{CONFIGS_DIR}/caltech256/resnet50_kd.yaml")
    paddle.seed(0)
    net = create_model("resnet50", num_classes=3)
    reg = build_regularizer(cfg["regularizer"]).attach(net, "fc")
    with paddle.no_grad():
        for layer in authors.HOOK_LAYERS_RESNET50:
            conv = dict(net.named_sublayers())[layer]
            conv.weight.set_value(conv.weight * 1.05)
    x = paddle.to_tensor(np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype("float32"))
    net.eval()
    with reg.observe():
        net(x)
    head = reg.closed_form()[0]
    value = float(reg.penalty([x])) + (0.0 if head is None else float(head))
    maps = {}
    hooks = [dict(model.named_sublayers())[name].register_forward_post_hook(
        lambda layer, inputs, output, key=(tag, name): maps.__setitem__(key, output.numpy()))
        for tag, model in (("tgt", net), ("src", reg.teacher)) for name in authors.HOOK_LAYERS_RESNET50]
    with paddle.no_grad():
        net(x), reg.teacher(x)
    for hook in hooks:
        hook.remove()
    src = [maps[("src", n)] for n in authors.HOOK_LAYERS_RESNET50]
    tgt = [maps[("tgt", n)] for n in authors.HOOK_LAYERS_RESNET50]
    params = {k: v.numpy() for k, v in net.named_parameters()}
    want = authors.total_loss(0.0, authors.reg_fea_map(src, tgt), authors.reg_classifier(params),
                              alpha=authors.alpha_for("Caltech30"))
    assert value == pytest.approx(want, rel=1e-4)


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """``jpeg`` with an EXIF segment (APP1, big-endian TIFF, one IFD entry: tag 0x0112 Orientation) after its SOI."""
    import struct
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1) + \
        struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    body = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def test_the_paper_configs_decode_turns_a_jpeg_by_its_exif_orientation(tmp_path):
    """readers.py:154: ``cv2.imread`` turns the pixels as the EXIF orientation tag says (a phone photo stored
    sideways comes out upright). Our packaged CUB-200 config on a 300x400 JPEG tagged 6 (turn 90 degrees clockwise),
    through the test split's decode, resize and center crop, against the oracle's ``read``."""
    from authors import rifle as authors
    from rifle_paddle.data import build_dataset
    for split in ("train", "test"):
        folder = tmp_path / split / "bird"
        folder.mkdir(parents=True)
        ok, encoded = cv2.imencode(".jpg", _photo(300, 400)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        (folder / "0.jpg").write_bytes(_with_exif_orientation(encoded.tobytes(), 6))
    path = str(tmp_path / "test" / "bird" / "0.jpg")
    assert cv2.imread(path).shape == (400, 300, 3)  # OpenCV applies the tag
    cfg = load_config(f"{CONFIGS_DIR}/cub200/resnet50_rifle.yaml", ["data.name=folder", f"data.root={tmp_path}"])
    dataset = build_dataset(cfg["data"], "test")
    ours = dataset.batch_transform(dataset[0][0][None])
    np.testing.assert_allclose(ours, authors.read(path, True, None), atol=1e-5)
    from rifle_paddle.deploy.preprocess import Preprocessing  # an exported model preprocesses as its run tested
    deployed = Preprocessing.from_data_config(cfg["data"]).load([path])[0]
    np.testing.assert_allclose(deployed, authors.read(path, True, None), atol=1e-5)
    cfg = load_config(None, ["data.name=folder", f"data.root={tmp_path}"])  # the default: the tag ignored (PIL)
    assert cfg["data"]["exif_orientation"] == "ignore"
    stored = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    dataset = build_dataset({**cfg["data"], "resampling": "bilinear"}, "test")
    np.testing.assert_allclose(dataset.batch_transform(dataset[0][0][None]),
                               authors.read_pixels(stored, True, None), atol=1e-5)


# ------------------------------------------------------------------------------------------ the ledger's stair table
def stair_table() -> str:
    """docs/fidelity.md's per-data-set table, recomputed: the official split sizes under each packaged RIFLE
    config's protocol (the readers' ``expected_counts``), the authors' schedule (tests/authors/rifle.py), and ours
    with ``train.lr_stair: train_split``."""
    import glob
    import os

    from authors import rifle as authors
    from rifle_paddle.data.registry import expected_counts
    rows = ["| Data set | Train / test images | Epoch (steps) | Authors' stair (steps) | Stairs reached | "
            "Last re-init: after epoch (cyclic_num) | LR there: authors / train-split stair | LR at the end: authors / "
            "train-split stair |", "|---|---|---|---|---|---|---|---|"]
    for path in sorted(glob.glob(f"{CONFIGS_DIR}/*/resnet50_rifle.yaml")):
        cfg = load_config(path)
        data, train_cfg = cfg["data"], cfg["train"]
        counts = expected_counts(data["name"], data)
        batch, epochs, lr = data["batch_size"], train_cfg["epochs"], train_cfg["lr"]
        epoch = authors.epoch_steps(counts.train, batch)
        theirs = authors.step_each_epoch(counts.test, batch)
        ours = math.ceil(counts.train / batch)
        cyclic = cfg["rifle"]["num_reinits"] + 1
        last = max(e + 1 for e in range(epochs) if authors.reinit_after(e, epochs, cyclic))
        at, end = last * epoch, epochs * epoch - 1
        rows.append(
            f"| {os.path.basename(os.path.dirname(path))} | {counts.train:,} / {counts.test:,} | {epoch} | "
            f"{int(theirs)} | {end // int(theirs) + 1} of {epochs} | {last} ({cyclic}) | "
            f"{authors.cosine_decay(lr, at, theirs, epochs):.2e} / {authors.cosine_decay(lr, at, ours, epochs):.2e} | "
            f"{authors.cosine_decay(lr, end, theirs, epochs):.2e} / "
            f"{authors.cosine_decay(lr, end, ours, epochs):.2e} |")
    return "\n".join(rows)


def test_the_ledger_gives_each_data_sets_authors_schedule():
    import os
    ledger = open(os.path.join(REPO, "docs", "fidelity.md"), encoding="utf-8").read()
    table = stair_table()
    assert table in ledger, "docs/fidelity.md's stair table is out of date; it should read:\n" + table


# ------------------------------------------------------------------------------------------ protocol rows 13, 14, 21
def _paper_configs() -> dict[str, dict]:
    import glob
    import os
    return {os.path.relpath(p, CONFIGS_DIR): load_config(p)
            for p in sorted(glob.glob(f"{CONFIGS_DIR}/*/resnet50_*.yaml"))}


def test_the_paper_configs_test_after_the_authors_epochs_and_report_the_last():
    """run.py:218-219: tests after epochs e % max(E // 10, 1) == 0 and the last; ours must test at least then (so
    a per-epoch comparison exists) and always after the last, whose number is the one reported."""
    from authors import rifle as authors
    from rifle_paddle.engine.resume import evaluates_after
    configs = _paper_configs()
    assert len(configs) == 120  # the ResNet-50 tables (the ResNet-18 ones are the CPU evidence and demo)
    for name, cfg in configs.items():
        epochs, freq = cfg["train"]["epochs"], cfg["train"]["eval_freq"]
        theirs = {e for e in range(epochs) if authors.tests_after(e, epochs)}
        ours = {e for e in range(epochs) if evaluates_after(e, epochs, freq)}
        assert theirs <= ours and epochs - 1 in ours, name


def test_the_paper_configs_regularizer_rows_take_the_delta_authors_decay_and_state():
    """train.py:265-270 (weight decay 1e-4 for the plain baseline only) and train.py:79-80, 95-99 (the full
    pretrained state, batch-norm statistics included); every other protocol key is the RIFLE authors', shared with
    the plain fine-tuning row of the same data set (row 21)."""
    from authors import delta as authors
    configs = _paper_configs()
    checked = 0
    for name, cfg in configs.items():
        reg = cfg["regularizer"]["name"]
        dataset = name.split("/")[0]
        plain = configs[f"{dataset}/resnet50_finetune.yaml"]
        if reg == "none":
            assert cfg["train"]["weight_decay"] == authors.weight_decay("l2"), name
            continue
        if reg not in ("l2sp", "delta", "kd"):
            continue
        their_type = {"l2sp": "l2_sp", "delta": "att_fea_map", "kd": "fea_map"}[reg]
        assert cfg["train"]["weight_decay"] == authors.weight_decay(their_type), name
        assert cfg["model"]["pretrained_bn_stats"] is True, name
        for section in ("data", "train"):
            for key, value in plain[section].items():
                if f"{section}.{key}" not in ("train.weight_decay",):
                    assert cfg[section][key] == value, f"{name}: {section}.{key}"
        checked += 1
    assert checked == 9 * 4 + 3 * 4  # RIFLE table: l2sp, rifle_l2sp, delta, rifle_delta; DTNH table: 4 per set


# ------------------------------------------------------------------------------------------ rows 15, 18, 19
def test_l2sp_value_is_the_delta_authors_reg_l2sp_and_reg_classifier():
    """train.py:149-154 and 142-147 with alpha = beta = 0.01 (train.py:34-35, 224), on a miniature ResNet moved
    away from its pretrained weights (batch-norm affine included, running statistics excluded)."""
    from authors import delta as authors
    from rifle_paddle.regularizers import build_regularizer
    from tiny_net import TinyResNet
    cfg = load_config(f"{CONFIGS_DIR}/cub200/resnet50_l2sp.yaml")
    paddle.seed(0)
    net = TinyResNet(num_classes=4)
    source = {k: v.numpy().copy() for k, v in net.named_parameters()}
    reg = build_regularizer(cfg["regularizer"]).attach(net, "fc")
    rng = np.random.default_rng(0)
    with paddle.no_grad():
        for name, p in net.named_parameters():
            p.set_value(p.numpy() + rng.normal(0, 0.01, p.shape).astype("float32"))
        for layer in net.sublayers():  # must not count: buffers in PyTorch, outside named_parameters
            if isinstance(layer, nn.BatchNorm2D):
                layer._mean.set_value(layer._mean + 3.0)
    value = float(reg.closed_form()[0])
    params = {k: v.numpy() for k, v in net.named_parameters() if not k.endswith(("_mean", "_variance"))}
    want = authors.total_loss(0.0, authors.reg_l2sp(params, source), authors.reg_classifier(params),
                              alpha=authors.alpha_for("CUB_200_2011"))
    assert value == pytest.approx(want, rel=1e-5)


def test_delta_channel_score_is_the_cross_entropy_increase_when_the_channel_is_zeroed():
    """channel_eval.py:168-208: for each filter j of the hooked conv, zero it, the mean cross-entropy's increase on
    each of the first 4 batches, averaged; in eval mode. Ours zeroes output channels of replicated batches."""
    from authors import delta as authors
    from rifle_paddle.regularizers.delta import channel_importance
    from tiny_net import TinyResNet
    paddle.seed(1)
    net = TinyResNet(num_classes=3)
    net.eval()
    rng = np.random.default_rng(2)
    batches = [(paddle.to_tensor(rng.normal(size=(5, 3, 12, 12)).astype("float32")),
                paddle.to_tensor(rng.integers(0, 3, size=5))) for _ in range(5)]
    layer = "layer2.conv2"
    ours = channel_importance(net, "fc", [layer], batches[:4], 3, probe=net.fc)[layer].numpy()
    conv = dict(net.named_sublayers())[layer]
    original = conv.weight.numpy().copy()

    def loss(weight, batch):
        conv.weight.set_value(weight)
        with paddle.no_grad():
            value = float(nn.functional.cross_entropy(net(batch[0]), batch[1]))
        conv.weight.set_value(original)
        return value
    theirs = authors.channel_scores(loss, original, batches)  # the oracle stops after 4 (channel_eval.py:179)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
    assert np.ptp(theirs) > 0


def test_delta_authors_discriminator_follows_channel_eval(monkeypatch):
    """channel_eval.py:102-119: 10 epochs, lr 0.01 * exp(ln 0.1 / 6)^e, SGD momentum 0.9 with weight decay 1e-4 on
    the new fc only (weight and bias, drawn U(+-1/sqrt(in)) as PyTorch's nn.Linear), the backbone frozen in train
    mode (batch statistics; the running statistics move)."""
    from authors import delta as authors
    from rifle_paddle.regularizers import delta as delta_module
    from tiny_net import TinyResNet
    paddle.seed(3)
    net = TinyResNet(num_classes=3)
    rng = np.random.default_rng(4)
    loader = [(paddle.to_tensor(rng.normal(size=(6, 3, 12, 12)).astype("float32")),
               paddle.to_tensor(rng.integers(0, 3, size=6))) for _ in range(2)]
    made, lrs, modes = [], [], []
    momentum = paddle.optimizer.Momentum

    class Recording(momentum):
        def __init__(self, *args, **kwargs):
            made.append(kwargs)
            super().__init__(*args, **kwargs)

        def set_lr(self, value):
            lrs.append(value)
            super().set_lr(value)
    monkeypatch.setattr(delta_module.paddle.optimizer, "Momentum", Recording)
    net.register_forward_pre_hook(lambda layer, args: modes.append(layer.bn1.training))
    backbone = {k: v.numpy().copy() for k, v in net.state_dict().items() if not k.startswith("fc.")}
    probe = delta_module.train_probe_like_the_authors(net, "fc", loader, 3)
    assert len(lrs) == authors.PROBE_EPOCHS and len(modes) == authors.PROBE_EPOCHS * len(loader)
    assert lrs == pytest.approx([authors.probe_lr(e, authors.PROBE["lr"]) for e in range(authors.PROBE_EPOCHS)])
    (kwargs,) = made
    assert kwargs["momentum"] == authors.PROBE["momentum"]
    assert kwargs["weight_decay"]._coeff == authors.PROBE["weight_decay"]
    assert {id(p) for p in kwargs["parameters"]} == {id(p) for p in probe.parameters()}
    assert all(modes)  # model.train() (channel_eval.py:119)
    moved = [k for k, v in net.state_dict().items() if k in backbone and not np.array_equal(v.numpy(), backbone[k])]
    assert moved and all(k.endswith(("_mean", "_variance")) for k in moved)  # frozen weights, moving statistics
    assert not net.training  # left in eval mode for the scores (channel_eval.py:176)
