"""RIFLE's contract: when it re-draws, what it re-draws, what it leaves alone, and reproducibility."""

import numpy as np
import paddle
import pytest
from paddle import nn

from rifle_paddle.callbacks import RIFLE, RifleController, reinitialize_layer, rifle_schedule
from rifle_paddle.callbacks.rifle import SHORT_TAIL_STEPS, short_tail_warning


class TinyNet(nn.Layer):
    def __init__(self, classes=3):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        return self.fc(self.body(x))


class TensorSet(paddle.io.Dataset):
    def __init__(self, n=32, seed=0):
        rng = np.random.default_rng(seed)
        self.x = rng.normal(size=(n, 8)).astype("float32")
        self.y = (self.x[:, 0] > 0).astype("int64") + (self.x[:, 1] > 1).astype("int64")

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _snapshot(layer):
    return {k: v.numpy().copy() for k, v in layer.state_dict().items()}


# --- schedule -------------------------------------------------------------------------------------------------

def authors_reinit_starts(num_epoch: int, cyclic_num: int) -> list[int]:
    """A literal transcription of the authors' rule (haozhe-an/RIFLE-Paddle-Implementation, fine_tuning/run.py):
    after 0-based epoch ``e_id`` the fc is re-drawn, i.e. the next epoch ``e_id + 1`` starts with a new head."""
    starts = []
    for e_id in range(num_epoch):
        if (e_id + 1) % (num_epoch // cyclic_num) == 0:
            if e_id > num_epoch - 5:
                continue
            starts.append(e_id + 1)
    return starts


def test_schedule_matches_the_authors_cyclic_num():
    assert rifle_schedule(40, num_reinits=3) == [10, 20, 30]  # cyclic_num=4 (the Cars setting)
    assert rifle_schedule(40, num_reinits=2) == [13, 26]      # cyclic_num=3 (the CUB setting)
    assert rifle_schedule(40, num_reinits=0) == []
    assert rifle_schedule(12, num_reinits=3) == [3, 6]        # the third falls in the authors' 4-epoch tail


def test_schedule_is_the_authors_rule_for_every_run_length():
    for epochs in range(1, 201):
        for cyclic_num in range(1, 11):
            if epochs // cyclic_num == 0:  # the authors' code divides by zero; we refuse
                with pytest.raises(ValueError, match="need at least"):
                    rifle_schedule(epochs, cyclic_num - 1)
                continue
            assert rifle_schedule(epochs, cyclic_num - 1) == authors_reinit_starts(epochs, cyclic_num), \
                (epochs, cyclic_num)


def test_a_schedule_that_differs_from_num_reinits_is_announced(caplog):
    import logging
    logger = logging.getLogger("rifle_paddle.callbacks.rifle")
    logger.addHandler(caplog.handler)  # directly: whether "rifle_paddle" propagates depends on earlier runs
    try:
        RifleController(TinyNet().fc, None, epochs=12, num_reinits=3)
        assert "gives 2 re-initialization(s) [3, 6]" in caplog.text
        caplog.clear()
        RifleController(TinyNet().fc, None, epochs=40, num_reinits=3)
        assert "re-initialization(s)" not in caplog.text
    finally:
        logger.removeHandler(caplog.handler)


def test_explicit_schedule_is_validated():
    assert rifle_schedule(40, explicit=[30, 10, 20]) == [10, 20, 30]
    assert rifle_schedule(40, explicit=[36]) == [36]  # E - 4: the authors' rule allows it
    with pytest.raises(ValueError, match="last 4 epochs"):
        rifle_schedule(40, explicit=[10, 37])
    with pytest.raises(ValueError, match="outside"):
        rifle_schedule(40, explicit=[0])


# --- one re-initialization ------------------------------------------------------------------------------------

def _trained_net_and_optimizer():
    paddle.seed(0)
    net = TinyNet()
    opt = paddle.optimizer.Momentum(0.1, momentum=0.9, parameters=net.parameters())
    x = paddle.randn([16, 8])
    y = paddle.randint(0, 3, [16])
    for _ in range(3):
        paddle.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        opt.clear_grad()
    return net, opt


def test_reinit_redraws_weight_and_bias_and_leaves_the_backbone():
    net, opt = _trained_net_and_optimizer()
    before = _snapshot(net)
    reinitialize_layer(net.fc, np.random.default_rng(0), "authors", opt)
    after = _snapshot(net)
    for k in before:
        changed = not np.array_equal(before[k], after[k])
        assert changed == k.startswith("fc."), k
    # same Parameter objects: the optimizer keeps updating the new head
    assert any(p is net.fc.weight for p in opt._parameter_list)


def _redraw_stats(init: str, fan_in: int = 1024, classes: int = 8000):
    layer = nn.Linear(fan_in, classes)
    bias_before = layer.bias.numpy().copy()
    reinitialize_layer(layer, np.random.default_rng(1), init)
    return layer.weight.numpy(), layer.bias.numpy(), bias_before


def test_authors_redraw_uses_each_parameters_own_first_dimension():
    """run.py: ``np.random.normal(0, np.sqrt(2 / var.shape[0]), var.shape)`` for every fc variable: the weight
    [in, out] gets sqrt(2/in), the bias [C] gets sqrt(2/C)."""
    w, b, _ = _redraw_stats("authors")
    assert w.std() == pytest.approx(np.sqrt(2 / 1024), rel=0.05) and abs(w.mean()) < 1e-3
    assert b.std() == pytest.approx(np.sqrt(2 / 8000), rel=0.05) and abs(b.mean()) < 1e-3


def test_he_normal_draws_the_bias_on_the_weights_fan_in():
    w, b, _ = _redraw_stats("he_normal")
    assert w.std() == pytest.approx(np.sqrt(2 / 1024), rel=0.05)
    assert b.std() == pytest.approx(np.sqrt(2 / 1024), rel=0.05)


def test_uniform_draws_weight_and_bias_within_one_over_sqrt_fan_in():
    bound = 1 / np.sqrt(1024)
    for values in _redraw_stats("uniform")[:2]:
        assert values.max() <= bound and values.min() >= -bound
        assert values.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)


def test_paddletransfer_redraws_the_weight_only_on_the_number_of_classes():
    """paddletransfer/finetuning/img_cls/rifle.py: uniform(-1/sqrt(weight.shape[1]), +) on the weight only."""
    w, b, bias_before = _redraw_stats("paddletransfer")
    bound = 1 / np.sqrt(8000)
    assert w.max() <= bound and w.min() >= -bound and w.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)
    np.testing.assert_array_equal(b, bias_before)


def test_momentum_is_reset_only_for_the_head_and_only_when_asked():
    for reset in (True, False):
        net, opt = _trained_net_and_optimizer()
        velocity = opt._accumulators["velocity"]
        body_before = velocity[net.body[0].weight.name].numpy().copy()
        head_before = velocity[net.fc.weight.name].numpy().copy()
        assert np.abs(head_before).sum() > 0
        reinitialize_layer(net.fc, np.random.default_rng(0), "he_normal", opt, reset_state=reset)
        head_after = velocity[net.fc.weight.name].numpy()
        bias_after = velocity[net.fc.bias.name].numpy()
        if reset:
            assert not head_after.any() and not bias_after.any()
        else:
            np.testing.assert_array_equal(head_after, head_before)
        np.testing.assert_array_equal(velocity[net.body[0].weight.name].numpy(), body_before)


def test_adam_bias_correction_restarts_at_beta():
    paddle.seed(0)
    net = TinyNet()
    opt = paddle.optimizer.Adam(0.01, parameters=net.parameters())
    paddle.nn.functional.cross_entropy(net(paddle.randn([4, 8])), paddle.to_tensor([0, 1, 2, 0])).backward()
    opt.step()
    reinitialize_layer(net.fc, np.random.default_rng(0), "he_normal", opt, reset_state=True)
    for acc_name, per_param in opt._accumulators.items():
        value = per_param[net.fc.weight.name].numpy()
        if "beta1_pow" in acc_name:
            np.testing.assert_allclose(value, 0.9, rtol=1e-6)
        elif "beta2_pow" in acc_name:
            np.testing.assert_allclose(value, 0.999, rtol=1e-6)
        else:
            assert not value.any(), acc_name


def test_same_seed_same_epoch_gives_the_same_head_on_every_rank():
    heads = []
    for _ in range(2):  # two "ranks" (or a run and its resumption) with the same seed
        paddle.seed(np.random.randint(1000))  # Paddle's global RNG must not matter
        net = TinyNet()
        RifleController(net.fc, None, epochs=20, num_reinits=1, seed=7).on_epoch_begin(10)
        heads.append(_snapshot(net.fc))
    for k in heads[0]:
        np.testing.assert_array_equal(heads[0][k], heads[1][k])
    other = TinyNet()
    RifleController(other.fc, None, epochs=20, num_reinits=1, seed=8).on_epoch_begin(10)
    assert not np.array_equal(_snapshot(other.fc)["weight"], heads[0]["weight"])


# --- the hapi callback in a real fit ---------------------------------------------------------------------------

class HeadProbe(paddle.callbacks.Callback):
    """Records the head weights at every epoch's start (after RIFLE ran) and end."""

    def __init__(self):
        super().__init__()
        self.begin, self.end = {}, {}

    def on_epoch_begin(self, epoch, logs=None):
        self.begin[epoch] = _snapshot(self.model.network)

    def on_epoch_end(self, epoch, logs=None):
        self.end[epoch] = _snapshot(self.model.network)


def test_fit_reinitializes_exactly_at_the_scheduled_epochs():
    paddle.seed(0)
    net = TinyNet()
    model = paddle.Model(net)
    model.prepare(paddle.optimizer.Momentum(0.05, momentum=0.9, parameters=net.parameters()),
                  nn.CrossEntropyLoss())
    rifle = RIFLE(num_reinits=2, min_tail_epochs=2, seed=3)
    probe = HeadProbe()  # after RIFLE in the list, so it sees the re-drawn head
    model.fit(TensorSet(), batch_size=8, epochs=9, verbose=0, callbacks=[rifle, probe])
    assert [e["epoch"] for e in rifle.history] == [3, 6]
    for epoch in range(1, 9):
        jumped = {k for k in probe.begin[epoch] if not np.array_equal(probe.begin[epoch][k], probe.end[epoch - 1][k])}
        if epoch in (3, 6):
            assert jumped == {"fc.weight", "fc.bias"}, epoch
            expected = np.random.default_rng([3, epoch]).normal(0, np.sqrt(2 / 16), size=(16, 3))
            np.testing.assert_allclose(probe.begin[epoch]["fc.weight"], expected, rtol=1e-5, atol=1e-6)
        else:
            assert not jumped, (epoch, jumped)


def test_callback_rejects_an_unknown_initializer():
    with pytest.raises(ValueError, match="authors, he_normal, uniform, paddletransfer"):
        RIFLE(init="glorot")


# --- AMP O2: the optimizer state lives under the fp32 master weights ------------------------------------------

def test_momentum_reset_reaches_the_master_keyed_velocity_of_amp_o2():
    """With ``multi_precision`` Paddle keys the velocity by ``<param>_fp32_master_0``. The CPU build has no
    float16 momentum kernel, but it creates the master weights and their velocity before failing: that is the
    real O2 state, which the reset must find."""
    paddle.seed(0)
    head = nn.Linear(8, 3)
    head.to(dtype="float16")
    opt = paddle.optimizer.Momentum(0.1, momentum=0.9, parameters=head.parameters(), multi_precision=True)
    sum((p.astype("float32") * 2).sum() for p in head.parameters()).backward()
    try:
        opt.step()
    except RuntimeError:  # no float16 momentum kernel on CPU
        pass
    velocity = opt._accumulators["velocity"]
    master_names = {opt._master_weights[p.name].name for p in head.parameters()}
    assert master_names == set(velocity) and not {p.name for p in head.parameters()} & set(velocity)
    for acc in velocity.values():
        acc.set_value(paddle.ones_like(acc))
    report = reinitialize_layer(head, np.random.default_rng(0), "authors", opt, reset_state=True)
    assert sorted(report["reset_accumulators"]) == sorted(f"velocity[{n}]" for n in master_names)
    for acc in velocity.values():
        assert not acc.numpy().any()
    for p in head.parameters():  # the master copy holds the new head too, or the next step would restore the old
        np.testing.assert_allclose(opt._master_weights[p.name].numpy(), p.astype("float32").numpy(), atol=1e-3)


# --- a RIFLE that says when it cannot pay off -------------------------------------------------------------------

def test_a_short_tail_is_warned_about_and_a_long_one_is_not():
    paddle.seed(0)
    short = RifleController(TinyNet().fc, None, epochs=40, num_reinits=3, steps_per_epoch=5)
    assert short.schedule == [10, 20, 30]
    assert "only 50 optimizer steps (10 epochs of 5 steps)" in short.warning
    enough = -(-SHORT_TAIL_STEPS // 10)  # steps an epoch that give the 10-epoch tail SHORT_TAIL_STEPS or more
    long = RifleController(TinyNet().fc, None, epochs=40, num_reinits=3, steps_per_epoch=enough)
    assert long.warning is None
    assert RifleController(TinyNet().fc, None, epochs=40, num_reinits=3, steps_per_epoch=enough - 1).warning
    assert RifleController(TinyNet().fc, None, epochs=40, num_reinits=3).warning is None  # steps unknown


def test_the_warning_cites_the_evidence_and_its_threshold():
    args = ([10, 20, 30], 40, 5)  # a 50-step tail
    assert short_tail_warning(*args, threshold=50) is None
    text = short_tail_warning(*args, threshold=1450)
    assert "fewer than 1450" in text and "min_tail_steps=1450" in text and "tails of 1450 steps or more" in text
    assert "(docs/evidence.md)" in text


def test_min_tail_steps_moves_the_last_reinitialization_earlier():
    # 5 steps an epoch: 100 steps are 20 epochs, so only re-initializations at or before epoch 20 remain
    assert rifle_schedule(40, 3, steps_per_epoch=5, min_tail_steps=100) == [10, 20]
    assert rifle_schedule(40, 3, steps_per_epoch=100, min_tail_steps=100) == [10, 20, 30]  # already 1,000
    with pytest.raises(ValueError, match="last 20 epochs"):
        rifle_schedule(40, explicit=[25], steps_per_epoch=5, min_tail_steps=100)
    controller = RifleController(TinyNet().fc, None, epochs=40, num_reinits=3, steps_per_epoch=5,
                                 min_tail_steps=500)
    assert controller.schedule == [] and controller.warning is None  # no re-initialization leaves 500 steps


@pytest.mark.slow  # over 3 s on 2 idle cores (docs/development.md: Tests)
def test_the_engine_records_the_warning_in_metrics_and_the_log(tiny_config):
    from rifle_paddle.engine import train
    # 36 images / batch 12 = 3 steps an epoch; the authors' rule on 3 epochs re-draws before epochs 1 and 2
    result = train(tiny_config("train.epochs=3", "rifle.enabled=true", "rifle.num_reinits=1",
                               "rifle.min_tail_epochs=1", "log.visualdl=false"))
    assert "only 3 optimizer steps" in result["rifle_warning"]
    with open(f"{result['run_dir']}/train.log") as f:
        assert "only 3 optimizer steps" in f.read()
    spared = train(tiny_config("train.epochs=3", "rifle.enabled=true", "rifle.num_reinits=1",
                               "rifle.min_tail_steps=500", "log.visualdl=false", "run.name=spared"))
    assert spared["rifle_warning"] is None and spared["rifle_events"] == []  # no re-draw could leave 500 steps
