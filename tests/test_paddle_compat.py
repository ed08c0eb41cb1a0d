"""Every accessor of ``core.paddle_compat`` against what Paddle observably does, so that a Paddle release that
renames or changes a private part fails here, by name (``.ci/run`` runs this on the oldest and the newest supported
Paddle); and no other module of the package reaches into a private attribute of Paddle's objects.
"""
from __future__ import annotations

import ast
import os

import numpy as np
import paddle
from paddle import nn

from rifle_paddle.core import paddle_compat as compat

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "rifle_paddle")


def test_the_cpu_generator_state_round_trips():
    """Paddle 3.0's ``paddle.set_rng_state(state, device="cpu")`` raised AttributeError ('str' object has no
    attribute '_convert_to_place'), which broke every resume on 3.0."""
    state = compat.cpu_rng_state()
    first = paddle.rand([4]).numpy()
    compat.set_cpu_rng_state(state)
    np.testing.assert_array_equal(paddle.rand([4]).numpy(), first)
    compat.set_cpu_rng_state(paddle.get_rng_state("cpu"))  # the public list form, as checkpoints hold it
    again = paddle.rand([4]).numpy()
    compat.set_cpu_rng_state([state])
    np.testing.assert_array_equal(paddle.rand([4]).numpy(), first)
    assert not np.array_equal(again, first)


def _linear_and_grad():
    paddle.seed(0)
    net = nn.Linear(2, 1)
    net(paddle.ones([1, 2])).sum().backward()  # d sum(w.x + b)/dw = x = 1, /db = 1
    return net


def test_optimizer_accumulators_are_created_read_and_keyed_by_parameter():
    """Momentum: velocity = mu * velocity + grad (Paddle's documented update), from zeros: the gradient."""
    net = _linear_and_grad()
    schedule = paddle.optimizer.lr.StepDecay(0.1, step_size=1)
    optimizer = paddle.optimizer.Momentum(schedule, momentum=0.9, parameters=net.parameters())
    assert compat.learning_rate(optimizer) is schedule
    assert compat.accumulators(optimizer) == {} or not any(compat.accumulators(optimizer).values())
    compat.create_accumulators(optimizer, net.parameters())
    velocity = compat.accumulators(optimizer)["velocity"]
    assert sorted(velocity) == sorted(p.name for p in net.parameters())
    assert all(not v.numpy().any() for v in velocity.values())
    optimizer.step()
    for p in net.parameters():
        np.testing.assert_allclose(velocity[p.name].numpy(), np.ones(p.shape), rtol=1e-6)
    assert compat.adam_betas(paddle.optimizer.Adam(beta1=0.5, beta2=0.75, parameters=net.parameters())) == (0.5, 0.75)


def test_master_weights_are_seeded_and_read_back():
    net = nn.Linear(2, 2)
    exact = net.weight.detach().clone()
    optimizer = paddle.optimizer.Momentum(0.1, parameters=net.parameters(), multi_precision=True)
    assert compat.master_weights(optimizer) == {}
    compat.cast_for_o2(net, "bfloat16")
    assert net.weight.dtype == paddle.bfloat16
    compat.seed_master_weight(optimizer, net.weight, exact)
    master = compat.master_weights(optimizer)[net.weight.name]
    assert master.dtype == paddle.float32
    np.testing.assert_array_equal(master.numpy(), exact.numpy())


def test_batch_norm_is_recognised_and_its_running_statistics_are_the_ones_it_updates():
    """Paddle's running mean after one training batch from 0: momentum * 0 + (1 - momentum) * batch mean."""
    assert all(compat.is_batch_norm(layer) for layer in (nn.BatchNorm1D(3), nn.BatchNorm2D(3)))
    assert not compat.is_batch_norm(nn.LayerNorm(3)) and not compat.is_batch_norm(nn.Linear(3, 3))
    bn = nn.BatchNorm1D(3, momentum=0.9)
    x = paddle.to_tensor([[1.0, 2.0, 3.0], [3.0, 6.0, 9.0]])
    bn.train()
    bn(x)
    mean, variance = compat.running_statistics(bn)
    np.testing.assert_allclose(mean.numpy(), 0.1 * np.array([2.0, 4.0, 6.0]), rtol=1e-6)
    assert list(variance.shape) == [3]


def test_a_gradient_set_by_hand_is_the_one_the_optimizer_steps_with():
    net = nn.Linear(2, 1)
    before = net.weight.numpy().copy()
    assert net.weight.grad is None
    compat.set_gradient(net.weight, paddle.full(net.weight.shape, 2.0))
    paddle.optimizer.SGD(0.5, parameters=[net.weight]).step()
    np.testing.assert_allclose(net.weight.numpy(), before - 0.5 * 2.0, rtol=1e-6)


def test_the_loss_scale_rule_is_paddles(monkeypatch):
    """``GradScaler.update`` calls the ``_update`` hook; with ``decr_every_n_nan_or_inf=2`` the scale halves at the
    second overflowing step, and doubles after ``incr_every_n_steps=2`` clean ones (Paddle's documented rule)."""
    from rifle_paddle.engine.amp import LossScaler
    from gpu_stand_in import enable_loss_scaler_on_cpu
    enable_loss_scaler_on_cpu(monkeypatch.setattr)
    scaler = LossScaler(init_loss_scaling=64.0, decr_every_n_nan_or_inf=2, incr_every_n_steps=2)
    assert compat.loss_scale(scaler) == 64.0
    scales = []
    for found_inf in (True, True, False, False):
        scaler._cache_found_inf = found_inf  # what GradScaler.step leaves for update(): the test's stand-in
        scaler.update()
        scales.append(compat.loss_scale(scaler))
    assert scales == [64.0, 32.0, 32.0, 64.0]
    compat.set_loss_scale(scaler, 8.0)
    assert compat.loss_scale(scaler) == 8.0 and scaler.state_dict()["scale"].item() == 8.0


def test_hapi_models_internals_are_the_ones_prepare_and_fit_use():
    paddle.seed(0)
    net = nn.Linear(4, 3)
    model = paddle.Model(net)
    optimizer = paddle.optimizer.SGD(0.1, parameters=net.parameters())
    loss = nn.CrossEntropyLoss()
    metric = paddle.metric.Accuracy()
    model.prepare(optimizer, loss, metric)
    assert compat.model_optimizer(model) is optimizer and compat.model_loss(model) is loss
    assert compat.model_metrics(model) == [metric] and compat.metric_names(model) == ["loss", "acc"]
    assert compat.amp_level(model) == "O0" and compat.world_size_of(model) == 1
    assert compat.parallel_network(model) is net and compat.model_grad_scaler(model) is None
    compat.set_model_grad_scaler(model, "scaler")
    assert compat.model_grad_scaler(model) == "scaler"
    compat.set_model_grad_scaler(model, None)
    data = paddle.io.TensorDataset([paddle.randn([10, 4]), paddle.randint(0, 3, [10, 1])])
    loader = paddle.io.DataLoader(data, batch_size=4)

    class Count(paddle.callbacks.Callback):
        batches = 0

        def on_train_batch_end(self, step, logs=None):
            Count.batches += 1
    from paddle.hapi.callbacks import config_callbacks
    callbacks = config_callbacks([Count()], model=model, epochs=1, steps=3, verbose=0,
                                 metrics=compat.metric_names(model))
    before = net.weight.numpy().copy()
    compat.begin_fit(model, None)
    logs = compat.run_one_epoch(model, loader, callbacks, "train")
    compat.end_fit(model)
    assert Count.batches == 3 and "loss" in logs and "acc" in logs
    assert not np.array_equal(net.weight.numpy(), before)  # it trained


def test_the_eval_loader_and_the_padding_counts_are_the_ones_evaluate_uses():
    """``engine.model``'s several-card eval reads hapi's test loader and its per-eval counts of gathered rows."""
    paddle.seed(0)
    net = nn.Linear(4, 3)
    model = paddle.Model(net)
    model.prepare(None, nn.CrossEntropyLoss(), paddle.metric.Accuracy())
    counts = compat.merge_counts(model)
    assert {"eval_total", "eval_batch"} <= set(counts) and counts["eval_total"] == 0
    data = paddle.io.TensorDataset([paddle.randn([10, 4]), paddle.randint(0, 3, [10, 1])])
    loader = paddle.io.DataLoader(data, batch_size=4)
    seen = []

    class During(paddle.callbacks.Callback):
        def on_eval_batch_end(self, step, logs=None):
            seen.append((compat.test_loader(model), compat.merge_counts(model)))

    model.evaluate(loader, verbose=0, callbacks=[During()])
    assert len(seen) == 3 and all(test is loader and merge is counts for test, merge in seen)
    assert compat.test_loader(model) is None  # evaluate lets go of it at the end


def test_amp_settings_of_a_prepared_model():
    net = nn.Linear(2, 2)
    model = paddle.Model(net)
    model.prepare(paddle.optimizer.SGD(0.1, parameters=net.parameters()), nn.CrossEntropyLoss(),
                  amp_configs={"level": "O1", "init_loss_scaling": 128.0, "custom_white_list": ["matmul"]})
    assert compat.amp_level(model) == "O1"
    assert compat.amp_configs(model)["init_loss_scaling"] == 128.0
    assert "matmul" in compat.amp_custom_lists(model)["custom_white_list"]


# ------------------------------------------------------------------------------- nothing else reaches in
def _paddle_private_names() -> set[str]:
    """The private attributes of the Paddle objects the package handles (instances, so that attributes set in
    ``__init__`` count), and of the Paddle modules it imports from."""
    net = nn.Sequential(nn.Conv2D(3, 2, 1), nn.BatchNorm2D(2))
    optimizer = paddle.optimizer.Momentum(0.1, parameters=net.parameters())
    model = paddle.Model(net)
    model.prepare(optimizer, nn.CrossEntropyLoss(), paddle.metric.Accuracy())
    objects = [net, net[1], optimizer, paddle.optimizer.Adam(parameters=net.parameters()), model, model._adapter,
               paddle.amp.GradScaler(), net[0].weight, paddle.framework, paddle.nn.layer.norm, paddle.base.core]
    names = {n for obj in objects for n in list(dir(obj)) + list(getattr(obj, "__dict__", {}))}
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_no_module_but_paddle_compat_touches_a_private_paddle_attribute():
    private = _paddle_private_names()
    offenders = []
    for directory, _, files in os.walk(PACKAGE):
        for name in files:
            path = os.path.join(directory, name)
            if not name.endswith(".py") or path.endswith(os.path.join("core", "paddle_compat.py")):
                continue
            tree = ast.parse(open(path, encoding="utf-8").read())
            own = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
                   and isinstance(n.value, ast.Name) and n.value.id == "self"}  # the module's own attributes
            for node in ast.walk(tree):
                attr = node.attr if isinstance(node, ast.Attribute) else \
                    node.args[1].value if isinstance(node, ast.Call) and getattr(node.func, "id", "") in (
                        "getattr", "hasattr", "setattr") and len(node.args) > 1 and isinstance(
                        node.args[1], ast.Constant) else None
                if isinstance(attr, str) and attr in private and attr not in own:
                    offenders.append(f"{os.path.relpath(path, PACKAGE)}:{node.lineno} {attr}")
    assert not offenders, "private Paddle attributes outside core/paddle_compat.py: " + ", ".join(offenders)


def test_the_cpu_kernel_threads_are_set_through_the_accessor():
    """``run.cpu_threads`` goes through Paddle's private setter; a release that renames it fails here, not in a
    user's run (the setter has no getter to compare with: its absence is the failure this guards)."""
    compat.set_cpu_threads(1)


def test_every_accessor_is_in_the_private_parts_table_of_development_md():
    """docs/development.md ("Paddle's private parts") is where each private access is justified: every public
    function of ``core.paddle_compat`` is a row's accessor, and every accessor a row names exists."""
    import inspect
    import re
    docs = os.path.join(os.path.dirname(PACKAGE), "docs", "development.md")
    text = open(docs, encoding="utf-8").read()
    section = text[text.index("**Paddle's private parts.**"):]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in re.findall(r"`([a-z_0-9]+)`", row.split("|")[1].split("(")[0])}
    accessors = {name for name, f in inspect.getmembers(compat, inspect.isfunction)
                 if f.__module__ == compat.__name__ and not name.startswith("_")}
    assert accessors - named == set(), f"accessors without a row in {docs}"
    assert named - accessors == set(), f"rows naming no accessor in {docs}"
