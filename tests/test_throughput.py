"""Throughput a user can act on: images/s, time per step and the loader's share of it at every log line (train.log
and VisualDL) and per epoch (metrics.json), and one warning when the loader is the bottleneck."""
import json
import logging
import os
import re
import time

import numpy as np
import paddle
import pytest

from conftest import TINY_RUN_EPOCHS as EPOCHS
from conftest import TINY_RUN_STEPS as STEPS

from rifle_paddle.records.throughput import Throughput
from rifle_paddle.core.throughput import Window, workers_needed

LINE = re.compile(r"throughput, step (\d+)/(\d+) of epoch (\d+): ([\d.]+) images/s, ([\d.]+) ms/step, "
                  r"loader (\d+) % of step")


@pytest.fixture
def tiny_run(tiny_rifle_run):
    """3 epochs of 3 steps (36 images in batches of 12), a log line every step (``tests/conftest.py``, shared with
    ``test_run_logs``): (metrics, scalars, train.log)."""
    return tiny_rifle_run


def test_every_log_line_shows_images_per_second_and_the_loader_share(tiny_run):
    _, _, text = tiny_run
    lines = [m.groups() for m in LINE.finditer(text)]
    assert [(int(s), int(n), int(e)) for s, n, e, *_ in lines] == [(s, STEPS, e) for e in range(1, EPOCHS + 1)
                                                                    for s in range(1, STEPS + 1)]
    for *_, rate, ms, share in lines:
        # one step trains one batch of 12: images/s x seconds/step is the batch (within the printed rounding)
        assert float(rate) * float(ms) / 1000 == pytest.approx(12, abs=0.05 * float(ms) / 1000 + 0.01)
        assert 0 <= int(share) <= 100
    assert len(re.findall(rf"throughput, epoch [1-{EPOCHS}]/{EPOCHS}: [\d.]+ images/s", text)) == EPOCHS
    tests = re.findall(r"throughput, test: (\d+) images in ([\d.]+) s, ([\d.]+) images/s", text)
    assert [int(n) for n, _, _ in tests] == [12] * EPOCHS  # the 12 test images after each epoch


def test_visualdl_has_the_throughput_scalars_at_each_logged_step(tiny_run):
    _, scalars, _ = tiny_run
    for tag in ("throughput/images_per_s", "throughput/step_s", "throughput/loader_share"):
        assert [step for step, _ in scalars[tag]] == list(range(1, EPOCHS * STEPS + 1)), tag
    rates = dict(scalars["throughput/images_per_s"])
    for step, seconds in scalars["throughput/step_s"]:
        assert rates[step] * seconds == pytest.approx(12, rel=1e-3)
    assert all(0 <= v <= 1 for _, v in scalars["throughput/loader_share"])


def test_metrics_json_records_the_throughput_of_each_epoch(tiny_run):
    metrics, _, _ = tiny_run
    with open(os.path.join(metrics["run_dir"], "metrics.json"), encoding="utf-8") as f:
        epochs = json.load(f)["epochs"]
    assert len(epochs) == EPOCHS
    for e in epochs:
        assert e["throughput_images_per_s"] * e["throughput_step_s"] == pytest.approx(12, rel=1e-6)  # 3 steps of 12
        assert 0 <= e["throughput_loader_share"] <= 1


class SlowImages(paddle.io.Dataset):
    """4-number samples whose reading takes ``delay`` seconds each: a loader too slow for the model."""

    def __init__(self, n: int, delay: float):
        self.n, self.delay = n, delay
        self.x = np.random.RandomState(0).rand(n, 4).astype("float32")

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        time.sleep(self.delay)
        return self.x[i], np.int64(i % 2)


class SlowNet(paddle.nn.Layer):
    """A 4->2 linear model whose forward takes ``COMPUTE_S`` more: a step of known length."""

    def __init__(self):
        super().__init__()
        self.fc = paddle.nn.Linear(4, 2)

    def forward(self, x):
        time.sleep(COMPUTE_S)
        return self.fc(x)


COMPUTE_S = 0.1


def _fit(delay: float, caplog) -> Throughput:
    paddle.seed(0)
    net = SlowNet()
    model = paddle.Model(net)
    model.prepare(paddle.optimizer.SGD(0.01, parameters=net.parameters()), paddle.nn.CrossEntropyLoss())
    loader = paddle.io.DataLoader(SlowImages(16, delay), batch_size=2, num_workers=0)
    throughput = Throughput(log_freq=2, num_workers=0)
    logger = logging.getLogger("rifle_paddle")
    handler = None if logger.propagate else caplog.handler  # train() (an earlier test) stops its propagation
    if handler:
        logger.addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="rifle_paddle"):
            model.fit(loader, epochs=1, verbose=0, callbacks=[throughput])
    finally:
        if handler:
            logger.removeHandler(handler)
    return throughput


def test_a_slow_loader_is_warned_about_once_naming_num_workers(caplog):
    throughput = _fit(delay=4 * COMPUTE_S / 2, caplog=caplog)  # a batch of 2 takes 4x the step to read
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings  # 3 windows above the threshold after the first: one warning
    assert "data.num_workers" in warnings[0] and "waited for data" in warnings[0]
    share = int(re.search(r"waited for data (\d+) %", warnings[0]).group(1))
    # hapi's loader reads the next batch in a thread while the step runs: it waits 4 - 1 of every 4 step-lengths
    assert 60 <= share <= 85
    assert throughput.epoch_record["loader_share"] > 0.6


def test_a_fast_loader_gives_no_warning(caplog):
    _fit(delay=0.0, caplog=caplog)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_window_arithmetic():
    w = Window()
    w.add(32, wait_s=0.1, compute_s=0.3)
    w.add(32, wait_s=0.1, compute_s=0.3)
    assert (w.images_per_s, w.step_s, w.loader_share, w.compute_images_per_s) == \
        pytest.approx((64 / 0.8, 0.4, 0.25, 64 / 0.6))
    assert workers_needed(2711, 150) == 19  # 2711 / 150 = 18.07: 19 workers
    assert workers_needed(100, 150) == 1


@pytest.mark.slow  # other processes (docs/development.md: Tests)
def test_on_two_ranks_every_rank_reports_the_slowest_one(tmp_path):
    from multicard import failure, launch
    out = tmp_path / "out"
    out.mkdir()
    code, logs, stdout = launch(tmp_path, os.path.join(os.path.dirname(__file__), "throughput_probe.py"), str(out))
    assert code == 0, failure(code, logs, stdout)
    ranks = [json.loads((out / f"throughput.{rank}.json").read_text()) for rank in (0, 1)]
    # rank 1: 8 steps in 3 s, 1.5 s of them waiting; both ranks trained 32 images in that time
    want = {"images_per_s": 2 * 32 / 3.0, "step_s": 3.0 / 8, "loader_share": 1.5 / 3.0}
    assert ranks[0] == pytest.approx(want) and ranks[1] == pytest.approx(want)


def test_eval_reports_images_per_second(tiny_run, caplog):
    from rifle_paddle.config import load_config
    from rifle_paddle.engine.evaluation import evaluate
    metrics, _, _ = tiny_run
    cfg = load_config(os.path.join(metrics["run_dir"], "config.yaml"), [f"model.checkpoint={metrics['run_dir']}"])
    logger = logging.getLogger("rifle_paddle")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="rifle_paddle"):
            result = evaluate(cfg)
    finally:
        logger.removeHandler(caplog.handler)
    line = next(m for m in (re.search(r"(\d+) test images in ([\d.]+) s: ([\d.]+) images/s", r.getMessage())
                            for r in caplog.records) if m)
    images, seconds, rate = int(line.group(1)), float(line.group(2)), float(line.group(3))
    assert images == result["num_test"] == 12
    assert rate * seconds == pytest.approx(images, abs=0.05 * rate + 0.01)  # the printed seconds are rounded to 0.1
    assert result["images_per_s"] == pytest.approx(rate, abs=0.06)
