"""A one-minute check to run on one's own machine before a long job: ``rifle-selftest`` or
``python -m rifle_paddle.app.selftest``.

Everything GPU-specific in the engine (mixed precision, several cards) can only be exercised where there is a GPU,
so this module runs each such path once, on generated 32 px images with a ResNet-18, through the same code a real
run uses (``train``, ``build_model``, ``evaluate``, ``paddle.distributed.launch``):

- AMP O1 and O2: a step whose scaled gradients overflow must be skipped and halve the loss scale, the next one
  must apply;
- a short training run (AMP O2 on a GPU) whose checkpoints ``eval.py`` loads into an fp32 network: its best one
  scores as the run did, and the last one gives, image by image, the outputs of the trained network at the end of
  the run (its test cross-entropy; an untrained network, a zeroed head or reset batch-norm statistics fail);
- the same run crashed at the start of its second epoch and resumed: same steps, same weights;
- L2-SP with DTNH (two gradients, the closed-form one from the fp32 master weights under O2): every step finite
  and the weights moved (a run whose steps were all skipped fails);
- two processes under ``paddle.distributed.launch`` (two cards when there are two, else two CPU processes over
  gloo) with RIFLE, L2-SP and DTNH (and AMP O2 on cards): both ranks must draw identical heads and end with the
  same weights (fp32 master weights under O2), batch-norm statistics and loss scale, the weights moved.

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


#: the script each rank of a launched check runs: ``train`` with ``RankRecord``, into ``<out dir>/rank<r>.json``
ENTRY_SCRIPT = ("import sys\nfrom rifle_paddle.app.selftest import train_and_record\n"
                "sys.exit(train_and_record(sys.argv[1], sys.argv[2:]))\n")


def rank_record(model) -> dict:
    """What every rank of a data-parallel run must hold identically at the end: per tensor of the network (fp32
    master weights under O2) the float64 sum and sum of squares, and the loss scale."""
    import numpy as np

    from ..core.precision import fp32_state_dict
    state = fp32_state_dict(model.network, paddle_compat.model_optimizer(model))
    sums = {}
    for key, value in state.items():
        array = value.numpy().astype(np.float64)
        sums[key] = [float(array.sum()), float((array * array).sum())]
    scaler = model.grad_scaler()
    return {"tensors": sums, "loss_scale": scaler.loss_scale if scaler is not None else None}


def train_and_record(out_dir: str, overrides: list[str]) -> int:
    """``train`` with ``overrides``, then this rank's ``rank_record`` into ``<out_dir>/rank<r>.json``."""
    import paddle

    from ..config import load_config
    from ..engine import train
    record = {}

    class RankRecord(paddle.callbacks.Callback):
        def on_train_end(self, logs=None):
            record.update(rank_record(self.model))

    train(load_config(None, overrides), callbacks=[RankRecord()])
    with open(os.path.join(out_dir, f"rank{paddle.distributed.get_rank()}.json"), "w", encoding="utf-8") as f:
        json.dump(record, f)
    return 0


def ranks_differ(records: list[dict]) -> list[str]:
    """What differs between the ranks' ``rank_record``: tensor names, or ``loss scale``."""
    first = records[0]
    differ = [key for key in first["tensors"] if any(r["tensors"].get(key) != first["tensors"][key] for r in records)]
    return differ + (["loss scale"] if any(r["loss_scale"] != first["loss_scale"] for r in records) else [])


def weights_moved(run_dir: str, pretrained: str) -> float:
    """The largest change of a backbone parameter between the pretrained file and the run's ``last.pdparams``
    (batch-norm statistics and the new head left out); a run whose every step was skipped gives 0."""
    import numpy as np
    import paddle
    start, last = paddle.load(pretrained), paddle.load(os.path.join(run_dir, "last.pdparams"))
    changes = [float(np.abs(last[k].numpy().astype(np.float64) - start[k].numpy().astype(np.float64)).max())
               for k in last if k in start and list(last[k].shape) == list(start[k].shape)
               and not k.endswith(("_mean", "_variance")) and not k.startswith("fc.")]
    if not changes:
        raise CheckFailed("the run's last.pdparams shares no backbone tensor with the pretrained file")
    if not all(np.isfinite(changes)):
        raise CheckFailed("non-finite weights in last.pdparams")
    return max(changes)


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
        """The uninterrupted run (trained once, shared by the checks that compare with it), with ``test_logits``:
        the trained network's outputs on the test images at the end of the run, image by image."""
        if self._reference is None:
            import paddle

            from ..engine import train
            from ..engine.evaluation import predict_logits
            outputs = {}

            class TestOutputs(paddle.callbacks.Callback):
                def on_train_end(self, logs=None):
                    self.model.network.eval()
                    outputs["logits"], outputs["labels"] = predict_logits(self.model, paddle_compat.test_loader(self.model))

            self._reference = train(self.config("reference"), callbacks=[TestOutputs()])
            self._reference["test_logits"], self._reference["test_labels"] = outputs["logits"], outputs["labels"]
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
        # image by image: eval.py's cross-entropy of last.pdparams is the one of the trained network's own outputs
        # (an untrained network, a zeroed head, reset batch-norm statistics or a broken O2 conversion differ)
        import numpy as np

        from ..engine.evaluation import cross_entropy
        last = evaluate(self.config("reference", f"model.checkpoint={os.path.join(result['run_dir'], 'last.pdparams')}",
                                    amp=False))
        logits, labels = result["test_logits"], result["test_labels"]
        _require(float(np.ptp(logits, axis=0).max()) > 0, "the trained network gives every test image the same "
                                                          "outputs")
        run_loss = cross_entropy(logits, labels)
        _require(abs(last["loss"] - run_loss) <= (1e-2 * max(1.0, run_loss) if self.gpu else 1e-5),
                 f"eval.py's test loss of last.pdparams is {last['loss']:.6f}, the trained network's {run_loss:.6f}")
        return (f"{EPOCHS} epochs, best top-1 {expected:.3f}; eval.py {scored['acc_top1']:.3f} from fp32 "
                f"best.pdparams; last.pdparams test loss {last['loss']:.4f} = the run's {run_loss:.4f}")

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
        _require(result["nonfinite_batches"] == 0, f"{result['nonfinite_batches']} non-finite batches")
        record = result.get("regularization") or []
        _require(bool(record) and all(r.get("steps", 0) > 0 for r in record),
                 f"no DTNH statistics of a clean step in metrics.json: {record}")
        moved = weights_moved(result["run_dir"], self.pretrained)
        _require(moved > 0, "the weights did not move: every step was skipped")
        return f"train loss {losses[0]:.3f} -> {losses[-1]:.3f}, weights moved up to {moved:.2g}"

    def check_two_processes(self) -> str:
        """``paddle.distributed.launch`` with two ranks: RIFLE, L2-SP, DTNH (AMP O2 on cards); both ranks must
        draw the same head at the re-initialization and end with the same weights (master weights under O2),
        batch-norm statistics and loss scale, and the weights must have moved."""
        if not self.launch:
            raise Skip("--no-launch")
        if self.gpu and self.cards < 2:
            raise Skip(f"needs 2 cards, {self.cards} visible")
        overrides = self.overrides("two_processes", "rifle.enabled=true", "rifle.num_reinits=1",
                                   "rifle.min_tail_epochs=1", "regularizer.name=l2sp", "dtnh.enabled=true")
        records, logs = self.launch_run("two_processes", overrides, nproc=2)
        heads = [re.findall(r"re-initialized the classifier before epoch 2 \((.*)\)", text) for text in logs]
        _require(bool(heads[0]) and heads[0] == heads[1], f"the ranks drew different heads: {heads}")
        differ = ranks_differ(records)
        _require(not differ, f"the ranks ended with different {', '.join(differ[:3])}")
        metrics = json.load(open(os.path.join(self.run_dir("two_processes"), "metrics.json"), encoding="utf-8"))
        _require(len(metrics["epochs"]) == EPOCHS, f"{len(metrics['epochs'])} epochs recorded")
        moved = weights_moved(self.run_dir("two_processes"), self.pretrained)
        _require(moved > 0, "the weights did not move: every step was skipped")
        where = "2 cards" if self.gpu else "2 CPU processes (gloo)"
        return (f"{where}: trained {EPOCHS} epochs; identical RIFLE heads, weights, batch-norm statistics and loss "
                f"scale on both ranks")

    def launch_run(self, name: str, overrides: list[str], nproc: int) -> tuple[list[dict], list[str]]:
        """``train`` with ``overrides`` as ``nproc`` ranks under ``paddle.distributed.launch`` (cards on a GPU
        machine); every rank's ``rank_record`` and worker log. A failed launch fails the check."""
        script = os.path.join(self.workdir, "train_entry.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(ENTRY_SCRIPT)
        log_dir, out_dir = os.path.join(self.workdir, "launch", name), os.path.join(self.workdir, "ranks", name)
        shutil.rmtree(out_dir, ignore_errors=True)
        os.makedirs(out_dir)
        cmd = launch_command([out_dir, *overrides], ",".join(str(card) for card in range(nproc)) if self.gpu else None,
                             None if self.gpu else nproc, log_dir, script=script)
        import rifle_paddle
        # the folder holding this rifle_paddle, installed or not, so the ranks import the same code
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(rifle_paddle.__file__)))
        env = {**os.environ, "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        proc = subprocess.run(cmd, cwd=self.workdir, env=env, capture_output=True, text=True, timeout=600)
        logs = []
        for rank in range(nproc):
            path = os.path.join(log_dir, f"workerlog.{rank}")
            logs.append(open(path, encoding="utf-8", errors="replace").read() if os.path.isfile(path) else "")
        tail = (logs[0] or proc.stdout or proc.stderr)[-800:].strip().splitlines()[-3:]
        _require(proc.returncode == 0, f"the launch exited with {proc.returncode}: {' | '.join(tail)} "
                                       f"(logs: {log_dir})")
        records = []
        for rank in range(nproc):
            with open(os.path.join(out_dir, f"rank{rank}.json"), encoding="utf-8") as f:
                records.append(json.load(f))
        return records, logs

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
