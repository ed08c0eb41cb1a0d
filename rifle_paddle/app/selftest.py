"""A one-minute check to run on one's own machine before a long job: ``rifle-selftest`` or
``python -m rifle_paddle.app.selftest``.

Everything GPU-specific in the engine (mixed precision, several cards) can only be exercised where there is a GPU,
so this module runs each such path once, on generated 32 px images with a ResNet-18, through the same code a real
run uses (``train``, ``build_model``, ``evaluate``, ``paddle.distributed.launch``):

- AMP O1 and O2: a step whose scaled gradients overflow must be skipped and halve the loss scale, the next one
  must apply;
- a short training run (AMP O2 on a GPU) whose best checkpoint ``eval.py`` loads into an fp32 network and scores
  as the run did;
- the same run crashed at the start of its second epoch and resumed: same steps, same weights;
- L2-SP with DTNH (two gradients, the closed-form one from the fp32 master weights under O2);
- two processes under ``paddle.distributed.launch`` (two cards when there are two, else two CPU processes over
  gloo) with RIFLE, L2-SP and DTNH (and AMP O2 on cards): both ranks must draw identical heads.

It prints one line per check and a verdict, and exits 1 if a check failed. A check the machine cannot run (AMP
without a GPU, two cards with one) is reported as skipped, with the reason. Each check's output goes to
``<workdir>/<check>.log`` (``--keep`` keeps the directory).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass

from ..console import module_parser
from ..core import paddle_compat
from .launch import launch_command

PASS, SKIP, FAIL = "ok", "skip", "FAIL"
EPOCHS = 2


class Skip(Exception):
    """A check this machine cannot run; the message says why."""


class SimulatedCrash(Exception):
    """Raised inside a training run to test resuming it."""


class CheckFailed(AssertionError):
    """A check ran and found something wrong; the message says what."""


@dataclass
class Result:
    name: str
    status: str
    detail: str
    seconds: float


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


class SelfTest:
    """The checks, sharing one work directory, one generated data set and one stand-in for pretrained weights."""

    def __init__(self, workdir: str, launch: bool = True):
        import paddle

        from ..config.checks import gpu_available
        from ..data.synthetic import make_image_folder
        from ..models import create_model
        self.workdir, self.launch = workdir, launch
        self.gpu = gpu_available()
        self.cards = paddle.device.cuda.device_count() if self.gpu else 0
        self.device = "gpu" if self.gpu else "cpu"
        self.data = make_image_folder(os.path.join(workdir, "data"), num_classes=3, train_per_class=8,
                                      test_per_class=4, size=32, seed=0)
        paddle.seed(0)
        self.pretrained = os.path.join(workdir, "pretrained_resnet18.pdparams")
        paddle.save(create_model("resnet18", num_classes=10).state_dict(), self.pretrained)
        self._reference: dict | None = None

    # -- helpers -------------------------------------------------------------------------------------------------
    def overrides(self, name: str, *extra: str, amp: bool = True) -> list[str]:
        """A seconds-long run on the generated images; AMP O2 on a GPU (the most demanding setting) unless not
        ``amp``."""
        base = ["model.arch=resnet18", f"model.pretrained={self.pretrained}", "data.name=folder",
                f"data.root={self.data}", "data.image_size=32", "data.resize_size=32", "data.batch_size=6",
                "data.eval_batch_size=12", "data.num_workers=0", f"train.epochs={EPOCHS}", "train.log_freq=100",
                f"run.device={self.device}", f"run.output_dir={os.path.join(self.workdir, 'runs')}",
                f"run.name={name}", "run.overwrite=true", "log.visualdl=false"]
        if amp and self.gpu:
            base += ["train.amp=true", "train.amp_level=O2"]
        return base + list(extra)

    def config(self, name: str, *extra: str, amp: bool = True) -> dict:
        from ..config import load_config
        return load_config(None, self.overrides(name, *extra, amp=amp))

    def run_dir(self, name: str) -> str:
        return os.path.join(self.workdir, "runs", name)

    def reference(self) -> dict:
        """The uninterrupted run (trained once, shared by the checks that compare with it)."""
        if self._reference is None:
            from ..engine import train
            self._reference = train(self.config("reference"))
        return self._reference

    # -- the checks ----------------------------------------------------------------------------------------------
    def check_environment(self) -> str:
        import numpy as np
        import paddle
        cuda = f"CUDA {paddle.version.cuda()}, {self.cards} card(s)" if self.gpu else "no GPU visible"
        return f"Paddle {paddle.__version__} ({cuda}), NumPy {np.__version__}, Python {sys.version.split()[0]}"

    def check_amp_overflow(self, level: str) -> str:
        """A step whose scaled gradients overflow (loss scale 2^40) is skipped and halves the scale; the next
        step (scale 2^10) applies. Paddle's own GradScaler raised TypeError at this point with NumPy 2."""
        if not self.gpu:
            raise Skip("needs a GPU (Paddle's AMP does nothing on the CPU)")
        import numpy as np
        import paddle

        from ..engine.amp import fp32_state_dict
        from ..engine.trainer import build_model, select_device
        from ..models import create_model
        select_device("gpu")
        cfg = self.config(f"amp_{level}", f"train.amp_level={level}")
        paddle.seed(0)
        model = build_model(cfg, create_model("resnet18", num_classes=3), 1, "gpu")
        images, labels = paddle.randn([6, 3, 32, 32]), paddle.to_tensor([0, 1, 2, 0, 1, 2])
        scaler = model.grad_scaler()
        _require(scaler is not None and scaler.is_enable(), f"AMP {level} is not enabled on the GPU")

        def weights():
            state = fp32_state_dict(model.network, paddle_compat.model_optimizer(model))
            return {k: v.numpy().copy() for k, v in state.items()
                    if not k.endswith(("_mean", "_variance"))}

        before = weights()
        paddle_compat.set_loss_scale(scaler, 2.0 ** 40)
        model.train_batch([images], [labels])
        _require(scaler.loss_scale == 2.0 ** 39, f"after an overflow the loss scale is {scaler.loss_scale:g}, "
                                                 f"expected 2^39")
        changed = [k for k, v in weights().items() if not np.array_equal(v, before[k])]
        _require(not changed, f"the overflowing step changed {changed[:3]}")
        paddle_compat.set_loss_scale(scaler, 2.0 ** 10)
        model.train_batch([images], [labels])
        after = weights()
        _require(all(np.isfinite(v).all() for v in after.values()), "non-finite weights after a normal step")
        _require(any(not np.array_equal(v, before[k]) for k, v in after.items()), "a normal step changed nothing")
        return f"overflow: step skipped, loss scale 2^40 -> 2^39; next step applied ({level})"

    def check_eval_round_trip(self) -> str:
        """A short run; ``eval.py``'s ``evaluate`` loads its best checkpoint into an fp32 network and scores it
        as the run did (under O2, within two test images: the run evaluated in fp16)."""
        import paddle

        from ..engine import evaluate
        result = self.reference()
        best = os.path.join(result["run_dir"], "best.pdparams")
        dtypes = {str(v.dtype) for v in paddle.load(best).values()}
        _require(dtypes <= {"paddle.float32", "paddle.int64"}, f"best.pdparams holds {sorted(dtypes)}, not fp32")
        scored = evaluate(self.config("reference", f"model.checkpoint={result['run_dir']}", amp=False))
        expected = result["best"]["test_acc_top1"]
        tolerance = (2.0 / scored["num_test"] if self.gpu else 0.0) + 1e-6
        _require(abs(scored["acc_top1"] - expected) <= tolerance,
                 f"eval.py scores {scored['acc_top1']:.4f}, the run {expected:.4f}")
        return f"{EPOCHS} epochs, best top-1 {expected:.3f}; eval.py {scored['acc_top1']:.3f} from fp32 best.pdparams"

    def check_resume(self) -> str:
        """The reference run crashed at its second epoch's second batch, then resumed: the same number of steps
        and the same final weights (bit for bit on the CPU; GPU kernels may round differently run to run)."""
        import numpy as np
        import paddle

        from ..engine import train
        reference = self.reference()

        class CrashAt(paddle.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.epoch = None

            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_begin(self, step, logs=None):
                if (self.epoch, step) == (1, 1):
                    raise SimulatedCrash()

        with contextlib.suppress(SimulatedCrash):
            train(self.config("resumed"), callbacks=[CrashAt()])
        resumed = train(self.config("resumed", f"train.resume={self.run_dir('resumed')}"))
        _require(resumed["steps"] == reference["steps"], f"{resumed['steps']} steps, the uninterrupted run "
                                                          f"{reference['steps']}")
        mine = paddle.load(os.path.join(self.run_dir("resumed"), "last.pdparams"))
        theirs = paddle.load(os.path.join(self.run_dir("reference"), "last.pdparams"))
        diff = max(float(np.abs(mine[k].numpy() - theirs[k].numpy()).max()) for k in theirs)
        _require(diff <= (1e-2 if self.gpu else 0.0), f"final weights differ by up to {diff:g}")
        return f"crashed in epoch 2, resumed: {resumed['steps']} steps, final weights within {diff:.1e}"

    def check_dtnh(self) -> str:
        """L2-SP with DTNH trains to finite losses and logs its regularizer."""
        import math

        from ..engine import train
        result = train(self.config("dtnh", "regularizer.name=l2sp", "dtnh.enabled=true", "train.weight_decay=0"))
        losses = [e["train_loss"] for e in result["epochs"]]
        _require(all(math.isfinite(x) for x in losses), f"train losses {losses}")
        _require(bool(result.get("regularization")), "no regularization record in metrics.json")
        return f"train loss {losses[0]:.3f} -> {losses[-1]:.3f}"

    def check_two_processes(self) -> str:
        """``paddle.distributed.launch`` with two ranks: RIFLE, L2-SP, DTNH (AMP O2 on cards); both ranks must
        draw the same head at the re-initialization."""
        if not self.launch:
            raise Skip("--no-launch")
        if self.gpu and self.cards < 2:
            raise Skip(f"needs 2 cards, {self.cards} visible")
        log_dir = os.path.join(self.workdir, "launch")
        overrides = self.overrides("two_processes", "rifle.enabled=true", "rifle.num_reinits=1",
                                   "rifle.min_tail_epochs=1", "regularizer.name=l2sp", "dtnh.enabled=true")
        # what rifle-train --gpus 0,1 (--processes 2) runs: the launch on the package's own __main__.py
        cmd = launch_command([arg for o in overrides for arg in ("-o", o)], "0,1" if self.gpu else None,
                             None if self.gpu else 2, log_dir)
        import rifle_paddle
        # the folder holding this rifle_paddle, installed or not, so the ranks import the same code
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(rifle_paddle.__file__)))
        env = {**os.environ, "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        proc = subprocess.run(cmd, cwd=self.workdir, env=env, capture_output=True, text=True, timeout=600)
        logs = []
        for rank in (0, 1):
            path = os.path.join(log_dir, f"workerlog.{rank}")
            logs.append(open(path, encoding="utf-8", errors="replace").read() if os.path.isfile(path) else "")
        tail = (logs[0] or proc.stdout)[-800:].strip().splitlines()[-3:]
        _require(proc.returncode == 0, f"the launch exited with {proc.returncode}: {' | '.join(tail)} "
                                       f"(logs: {log_dir})")
        heads = [re.findall(r"re-initialized the classifier before epoch 2 \((.*)\)", text) for text in logs]
        _require(bool(heads[0]) and heads[0] == heads[1], f"the ranks drew different heads: {heads}")
        metrics = json.load(open(os.path.join(self.run_dir("two_processes"), "metrics.json"), encoding="utf-8"))
        _require(len(metrics["epochs"]) == EPOCHS, f"{len(metrics['epochs'])} epochs recorded")
        where = "2 cards" if self.gpu else "2 CPU processes (gloo)"
        return f"{where}: trained {EPOCHS} epochs, identical RIFLE heads on both ranks"

    def checks(self) -> list[tuple[str, object]]:
        return [("environment", self.check_environment),
                ("AMP O1 overflow step", lambda: self.check_amp_overflow("O1")),
                ("AMP O2 overflow step", lambda: self.check_amp_overflow("O2")),
                ("train + eval.py round trip", self.check_eval_round_trip),
                ("crash + resume", self.check_resume),
                ("L2-SP + DTNH", self.check_dtnh),
                ("two processes", self.check_two_processes)]


def _run(name: str, check, log_path: str) -> Result:
    """One check, its output captured into ``log_path``."""
    rifle_log = logging.getLogger("rifle_paddle")
    for handler in [h for h in rifle_log.handlers if getattr(h, "_rifle_console", False)]:
        rifle_log.removeHandler(handler)  # bound to the previous check's capture
    buffer, start = io.StringIO(), time.time()
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            detail = check()
        status = PASS
    except Skip as e:
        status, detail = SKIP, str(e)
    except CheckFailed as e:
        status, detail = FAIL, str(e)
    except Exception as e:  # a crash is a failure of the check, reported with its type
        status, detail = FAIL, f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        buffer.write(traceback.format_exc())
    with open(log_path, "w", encoding="utf-8") as f:
        f.write(buffer.getvalue())
    return Result(name, status, detail, time.time() - start)


def verdict(results: list[Result]) -> str:
    failed = [r.name for r in results if r.status == FAIL]
    skipped = [r.name for r in results if r.status == SKIP]
    passed = sum(r.status == PASS for r in results)
    if failed:
        return f"NOT READY: {len(failed)} check(s) failed ({', '.join(failed)}); see the logs above"
    note = f", {len(skipped)} skipped ({', '.join(skipped)})" if skipped else ""
    return f"READY: {passed} check(s) passed{note}"


def main(argv=None) -> int:
    parser = module_parser("rifle-selftest", __doc__)
    parser.add_argument("--workdir", help="where runs and logs go (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--no-launch", action="store_true", help="skip the two-process check")
    args = parser.parse_args(argv)
    workdir = args.workdir or tempfile.mkdtemp(prefix="rifle-selftest-")
    os.makedirs(workdir, exist_ok=True)
    print(f"rifle-paddle self-test in {workdir}", flush=True)
    results = []
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            suite = SelfTest(workdir, launch=not args.no_launch)
        for name, check in suite.checks():
            log_name = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") + ".log"
            result = _run(name, check, os.path.join(workdir, log_name))
            results.append(result)
            print(f"[{result.status:^4}] {name:<28} {result.detail} ({result.seconds:.1f} s)"
                  + (f"  log: {os.path.join(workdir, log_name)}" if result.status == FAIL else ""), flush=True)
    finally:
        failed = any(r.status == FAIL for r in results)
        if not args.keep and not args.workdir and not failed:
            shutil.rmtree(workdir, ignore_errors=True)
    print(verdict(results))
    return 1 if any(r.status == FAIL for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
