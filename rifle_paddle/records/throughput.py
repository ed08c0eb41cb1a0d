"""Images per second and the time the model waits for data, in the training log, VisualDL and ``metrics.json``.

On a GPU the first question is whether the input pipeline keeps up. hapi's ``fit`` fetches a batch from the loader,
then calls ``on_train_batch_begin``, trains on it, then calls ``on_train_batch_end``; so the time from one step's
end to the next step's begin is the **wait for the loader** (in a worker-fed loader: the batch was not ready yet;
with ``data.num_workers=0``: the images being prepared in the training process), and the time from begin to end is
the **compute** (``core.throughput``). ``Throughput`` adds them up and, every ``log_freq`` optimizer steps and at the
end of each epoch, writes one line: images/s, mean time per step, and the loader's share of it. On several ranks
each rank measures its own and rank 0 reports the slowest rank's (one small ``all_reduce`` per line, not per step).

The first window of a run holds the start of the loader's workers and the first batches' fill of their queue; after
it, a window whose loader share exceeds ``LOADER_SHARE_WARNING`` gives one warning per run, naming
``data.num_workers``, the figures and the workers that would keep up.
"""
from __future__ import annotations

import logging
import os
import time

import paddle

from ..core.throughput import LOADER_SHARE_WARNING, Window, workers_needed
from ..core.epoch_numbers import shown

log = logging.getLogger(__name__)

#: the VisualDL tags, per log line (x axis: the 1-based global optimizer step)
TAGS = {"images_per_s": "throughput/images_per_s", "step_s": "throughput/step_s",
        "loader_share": "throughput/loader_share"}


def _slowest_rank(window: Window) -> tuple[float, float]:
    """``(elapsed_s, loader_share)`` of the slowest rank (the largest of each over the ranks)."""
    figures = [window.elapsed_s, window.loader_share]
    if paddle.distributed.get_world_size() > 1:
        tensor = paddle.to_tensor(figures, dtype="float64")
        paddle.distributed.all_reduce(tensor, op=paddle.distributed.ReduceOp.MAX)
        figures = [float(v) for v in tensor.numpy()]
    return figures[0], figures[1]


def summarize(window: Window) -> dict:
    """The window's figures as logged and recorded: images/s of all ranks together (each rank trains its share of
    every step; the slowest one sets the pace), seconds per step and the loader's share, of the slowest rank."""
    elapsed, share = _slowest_rank(window)
    ranks = paddle.distributed.get_world_size()
    return {"images_per_s": ranks * window.images / elapsed if elapsed > 0 else 0.0,
            "step_s": elapsed / window.steps if window.steps else 0.0, "loader_share": share}


def describe(figures: dict) -> str:
    ranks = paddle.distributed.get_world_size()
    return (f"{figures['images_per_s']:.1f} images/s, {1000 * figures['step_s']:.1f} ms/step, "
            f"loader {100 * figures['loader_share']:.0f} % of step"
            + (f" (slowest of {ranks} ranks)" if ranks > 1 else ""))


class Throughput(paddle.callbacks.Callback):
    """``model.fit(..., callbacks=[Throughput(log_freq, num_workers, writer)])``; ``epoch_record`` holds the last
    finished epoch's figures (``RunRecorder`` puts them into ``metrics.json`` as ``throughput_*``)."""

    def __init__(self, log_freq: int = 10, num_workers: int = 0, writer=None,
                 warn_share: float = LOADER_SHARE_WARNING, clock=time.perf_counter):
        super().__init__()
        self.log_freq, self.num_workers, self.writer = max(1, log_freq), num_workers, writer
        self.warn_share, self.clock = warn_share, clock
        self.epoch, self.global_step = 0, 0
        self.window, self.epoch_window = Window(), Window()
        self.windows_reported = 0
        self.warning: str | None = None
        self.epoch_record: dict = {}
        self._windows_this_epoch = 0
        self._ready = self._began = None
        self._test_images, self._test_start = 0, 0.0

    def _rank0(self) -> bool:
        return paddle.distributed.get_rank() == 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.epoch_window, self.window = Window(), Window()  # a log window does not span the test between epochs
        self.epoch_record = {}
        self._windows_this_epoch = 0
        self._ready = self.clock()  # the first batch's wait includes starting the loader's iterator (its workers)

    def on_train_batch_begin(self, step, logs=None):
        self._began = self.clock()

    def on_train_batch_end(self, step, logs=None):
        now = self.clock()
        if self._ready is None or self._began is None:
            return
        images = int((logs or {}).get("batch_size", 0) or 0)
        wait, compute = max(0.0, self._began - self._ready), max(0.0, now - self._began)
        self.window.add(images, wait, compute)
        self.epoch_window.add(images, wait, compute)
        self.global_step = self.epoch * (self.params.get("steps") or 0) + step + 1
        if self.global_step % self.log_freq == 0:
            self._report_window(step)
        self._ready = self.clock()  # the report (a collective on several ranks) is not the loader's time

    def _report_window(self, step: int) -> None:
        figures = summarize(self.window)
        self.windows_reported += 1
        self._windows_this_epoch += 1
        if self._rank0():
            steps = self.params.get("steps")
            log.info("throughput, step %d%s of epoch %d: %s", step + 1, f"/{steps}" if steps else "",
                     shown(self.epoch), describe(figures))
            if self.writer is not None:
                for key, tag in TAGS.items():
                    self.writer.add_scalar(tag, float(figures[key]), self.global_step)
        if self.windows_reported > 1 and self.warning is None and figures["loader_share"] > self.warn_share:
            self.warning = self.advice(figures, self.window)
            if self._rank0():
                log.warning(self.warning)
        self.window = Window()

    def advice(self, figures: dict, window: Window) -> str:
        """The warning: the measured figures and the workers that would keep the model busy."""
        compute_rate = window.compute_images_per_s
        per_worker = window.images_per_s / max(1, self.num_workers)  # the loader sets the pace when it is this slow
        need = workers_needed(compute_rate, per_worker) if per_worker > 0 and compute_rate > 0 else None
        cores = os.cpu_count() or 1
        advice = (f"raise data.num_workers (now {self.num_workers}; this machine has {cores} cores)"
                  + (f": about {need} workers would keep up with the {compute_rate:.0f} images/s the model trains "
                     f"when batches are ready" if need and self.num_workers else ""))
        return (f"the model waited for data {100 * figures['loader_share']:.0f} % of each step "
                f"(over {window.steps} steps: {figures['images_per_s']:.1f} images/s, "
                f"{1000 * figures['step_s']:.1f} ms/step, of which "
                f"{1000 * figures['step_s'] * figures['loader_share']:.1f} ms waiting for the loader): "
                f"the input pipeline is the bottleneck; {advice}. "
                f"Shares above {100 * self.warn_share:.0f} % are warned about once per run (docs/performance.md)")

    def on_eval_begin(self, logs=None):
        self._test_images, self._test_start = 0, self.clock()

    def on_eval_batch_end(self, step, logs=None):
        self._test_images += int((logs or {}).get("batch_size", 0) or 0)

    def on_eval_end(self, logs=None):
        seconds = self.clock() - self._test_start
        if self._rank0() and self._test_images and seconds > 0:
            log.info("throughput, test: %d images in %.1f s, %.1f images/s", self._test_images, seconds,
                     self._test_images / seconds)

    def on_epoch_end(self, epoch, logs=None):
        if not self.epoch_window.steps:
            return
        self.epoch_record = summarize(self.epoch_window)
        whole_epoch_logged = self._windows_this_epoch == 1 and not self.window.steps  # e.g. log_freq = its steps
        if self._rank0() and not whole_epoch_logged:
            log.info("throughput, epoch %d/%d: %s", shown(epoch), self.params.get("epochs") or 0,
                     describe(self.epoch_record))
