"""Shared fixtures: a tiny generated image folder and a tiny "pretrained" checkpoint, made once per session."""
from __future__ import annotations

import os
import shutil
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # tests use tiny tensors; threads only add contention

import paddle  # noqa: E402
import pytest  # noqa: E402

from rifle_paddle.config import load_config  # noqa: E402

paddle.set_device("cpu")


#: the quick subset ``.ci/run`` runs on the oldest supported Paddle (``pytest -m oldest_paddle``): every private
#: Paddle access, resume, the AMP stand-ins, a two-process launch and the pip install (which launches two processes
#: too). The whole suite runs on the newest.
OLDEST_PADDLE_SUBSET = ("test_paddle_compat.py", "test_paddle_version.py", "test_resume.py", "test_amp.py",
                        "test_install.py",
                        "test_distributed.py::test_two_process_launch_shards_data_and_agrees_on_rifle")
#: left out of it to keep CI under 15 minutes: the slowest resume tests, whose Paddle parts the others cover (a third
#: of the subset's time on 3.0: 255 s and 60 s of 975 s on a loaded machine)
NOT_ON_OLDEST = ("test_resume.py::test_a_resumed_delta_run_takes_its_channel_attention_from_the_checkpoint",
                 "test_resume.py::test_a_sweep_continues_a_crashed_run_from_its_checkpoint_instead_of_starting_over")


@pytest.fixture(scope="module")
def module_tmp_path(request, tmp_path_factory):
    """A folder for the runs a module's tests share, removed when the module's last test has run unless one of them
    failed: pytest.ini's ``tmp_path_retention_policy = failed``, which pytest applies to ``tmp_path`` alone, for
    module-scoped folders too. Without it a whole run keeps every module's checkpoints until it ends (test_resume's
    alone are 5 GB)."""
    failed_before = request.session.testsfailed
    path = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    yield path
    if request.session.testsfailed == failed_before:
        shutil.rmtree(path, ignore_errors=True)


#: the rule for the ``slow`` marker (docs/development.md: Tests): a test whose own time (its call, and the fixtures set up
#: for it alone) is over this many seconds on an idle 2-core machine is marked ``slow``, as is every test that starts
#: another process. A module- or session-scoped fixture shared by several quick tests may cost more, once.
SLOW_SECONDS = 3.0


def pytest_addoption(parser):
    # A flag and a separate threshold: an optional value would take a test path that follows it for the threshold.
    parser.addoption("--report-slow", action="store_true",
                     help="after the run, list the tests not marked slow whose setup or call took over "
                          "--slow-seconds of CPU time (the rule in docs/development.md); never a failure")
    parser.addoption("--slow-seconds", type=float, default=SLOW_SECONDS, metavar="SECONDS",
                     help=f"the threshold of --report-slow (default {SLOW_SECONDS:g})")


class SlowReport:
    """``--report-slow``: the setup and call phases of tests not marked slow that took over the threshold, listed at
    the end. It counts this process' CPU time, not the clock: the tests run one at a time on one thread
    (``OMP_NUM_THREADS=1``), so a phase's CPU time is what it takes on an idle machine, and other jobs sharing the
    cores do not inflate it. A module-scoped fixture's setup shows up on the first test that uses it."""

    def __init__(self, threshold: float):
        self.threshold, self.over = threshold, []

    def note(self, item, when: str, cpu_s: float, wall_s: float) -> None:
        if "slow" not in item.keywords and cpu_s > self.threshold:
            self.over.append((cpu_s, wall_s, when, item.nodeid))

    def _timed(self, item, when: str):
        cpu, wall = time.process_time(), time.perf_counter()
        yield
        self.note(item, when, time.process_time() - cpu, time.perf_counter() - wall)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item):
        yield from self._timed(item, "setup")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        yield from self._timed(item, "call")

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.section(f"tests not marked slow over {self.threshold:g} s of CPU")
        for cpu_s, wall_s, when, nodeid in sorted(self.over, reverse=True):
            terminalreporter.write_line(f"{cpu_s:6.2f}s CPU {wall_s:6.2f}s wall {when:5} {nodeid}")
        terminalreporter.write_line("mark each @pytest.mark.slow or make it (or its fixture) cheaper; a module or "
                                    "session fixture shared by quick tests may cost more, once" if self.over else "none")


def pytest_configure(config):
    if config.getoption("--report-slow"):
        config.pluginmanager.register(SlowReport(config.getoption("--slow-seconds")), "report-slow")


#: below this much free space where the tests write, a failed run's summary says the disk may be the cause
LOW_DISK_BYTES = 2 * 1024 ** 3


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """A full disk fails dozens of unrelated tests, each with a long traceback, and a CI log may keep only its tail:
    after a failed run with little space left, say so last."""
    if exitstatus == 0:
        return
    folder = config.option.basetemp or tempfile.gettempdir()  # pytest's temporary folders are under the latter
    free = shutil.disk_usage(folder).free if os.path.isdir(folder) else None
    if free is not None and free < LOW_DISK_BYTES:
        terminalreporter.write_line(f"only {free / 1024 ** 3:.1f} GB free where the tests write ({folder}): "
                                    "failures above may be a full disk (a whole run needs about 2 GB; "
                                    "docs/development.md: Disk)", red=True)


def _matches(name: str, entries) -> bool:
    return any(name == entry or name.startswith((entry + "::", entry + "[")) for entry in entries)


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = os.path.basename(item.nodeid.split("::")[0]) + "::" + item.nodeid.split("::", 1)[-1]
        if _matches(name, OLDEST_PADDLE_SUBSET) and not _matches(name, NOT_ON_OLDEST):
            item.add_marker(pytest.mark.oldest_paddle)


@pytest.fixture(autouse=True)
def _fresh_rifle_logger():
    """Undo what ``console.setup_logging`` (called by train, sweep, report ...) does to the ``rifle_paddle`` logger:
    it stops propagation to the root logger, where pytest's ``caplog`` listens, so a later test would see no
    records depending only on test order."""
    import logging
    logger = logging.getLogger("rifle_paddle")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    for handler in [h for h in logger.handlers if h not in handlers]:
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> str:
    """3 classes x 12 train / 4 test generated JPEGs at 32 px, in the ImageFolder layout."""
    from rifle_paddle.data.synthetic import make_image_folder
    return make_image_folder(str(tmp_path_factory.mktemp("tiny_folder")), num_classes=3, train_per_class=12,
                             test_per_class=4, size=32, seed=0)


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory) -> str:
    """A ResNet-18 state dict with a 10-way head, standing in for ImageNet weights (which need the network)."""
    from rifle_paddle.models import create_model
    paddle.seed(123)
    model = create_model("resnet18", num_classes=10)
    path = str(tmp_path_factory.mktemp("weights") / "resnet18_source.pdparams")
    paddle.save(model.state_dict(), path)
    return path


@pytest.fixture
def tiny_config(tmp_path, tiny_folder, tiny_pretrained):
    """A config factory for a seconds-long CPU run on ``tiny_folder``; extra overrides win."""
    def make(*overrides: str) -> dict:
        base = ["model.arch=resnet18", f"model.pretrained={tiny_pretrained}", "data.name=folder",
                f"data.root={tiny_folder}", "data.image_size=32", "data.resize_size=32", "data.batch_size=12",
                "data.eval_batch_size=12", "data.num_workers=0", "train.epochs=2", "train.lr=0.01",
                "train.log_freq=1", "run.device=cpu", f"run.output_dir={tmp_path / 'output'}", "run.name=test"]
        return load_config(None, base + list(overrides))
    return make


#: what ``tiny_rifle_run`` trains: 3 epochs of 3 steps (``tiny_folder``'s 36 training images in batches of 12)
TINY_RUN_EPOCHS, TINY_RUN_STEPS = 3, 3


@pytest.fixture(scope="session")
def tiny_rifle_run(tmp_path_factory, tiny_folder, tiny_pretrained):
    """One finished run with every record on (VisualDL, a log line each step), RIFLE re-drawing the head after the
    first epoch, read by the tests of what a run reports (``test_run_logs``, ``test_throughput``): one training for
    both. Returns (the result of ``train``, VisualDL scalars, train.log)."""
    from rifle_paddle.engine.trainer import train
    from run_records import scalars_and_log
    cfg = load_config(None, [
        "model.arch=resnet18", f"model.pretrained={tiny_pretrained}", "data.name=folder", f"data.root={tiny_folder}",
        "data.image_size=32", "data.resize_size=32", "data.batch_size=12", "data.eval_batch_size=12",
        "data.num_workers=0", f"train.epochs={TINY_RUN_EPOCHS}", "train.lr=0.01", "train.log_freq=1",
        "run.device=cpu", f"run.output_dir={tmp_path_factory.mktemp('tiny_rifle_run')}", "run.name=logs",
        "log.visualdl=true", "rifle.enabled=true", "rifle.epochs=[1]", "rifle.min_tail_epochs=1"])
    metrics = train(cfg)
    return (metrics, *scalars_and_log(metrics["run_dir"]))
