"""Ctrl-C and SIGTERM as a request to stop at the next safe point, not an exception thrown wherever Python happens
to be.

SIGTERM is how a cluster preempts a job (Slurm before its KILL, Kubernetes when a pod is evicted,
``paddle.distributed.launch`` when it tears the ranks down): it is treated as Ctrl-C, so the run saves a checkpoint
after the current batch, prints the resume command and exits with 143 (128 + SIGTERM; Ctrl-C: 130). Slurm's
default grace period is 30 s (``KillWait``) and Kubernetes' 30 s (``terminationGracePeriodSeconds``): enough for a
batch and a checkpoint of a ResNet-50.

Python turns SIGINT into ``KeyboardInterrupt`` at an arbitrary bytecode: inside an optimizer step (half the
parameters updated), inside a DataLoader worker hand-off, inside a checkpoint write. While training, SIGINT only
sets a flag instead; the checkpointer reads it between batches, saves a consistent checkpoint and stops the run.
A second Ctrl-C means "now": the default handler is back and the next one raises ``KeyboardInterrupt`` at once
(checkpoints are written atomically, so even that cannot corrupt the last one).

On several cards the decision must be collective: the ranks would otherwise stop at different batches and the
ones still training would wait forever in the next gradient all-reduce. ``requested_on_any_rank`` all-reduces
the flag (one scalar per batch; only when more than one process trains).
"""
from __future__ import annotations

import logging
import os
import signal
import threading

import paddle

log = logging.getLogger(__name__)


#: the signals that request a checkpoint and a stop, and what each one's second arrival does instead
SIGNALS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}


class InterruptRequest:
    """Context manager that turns the first SIGINT or SIGTERM into ``self.requested = True`` and remembers which
    (``signum``; main thread only; elsewhere, where Python cannot install handlers, they keep their default
    behaviour)."""

    def __init__(self):
        self.requested = False
        self.signum: int | None = None
        self._previous: dict = {}
        self._pid = None

    @property
    def exit_code(self) -> int:
        """The shell's status for a process ended by the signal received: 130 for Ctrl-C, 143 for SIGTERM."""
        return 128 + int(self.signum or signal.SIGINT)

    def __enter__(self) -> "InterruptRequest":
        self.requested, self.signum = False, None
        if threading.current_thread() is threading.main_thread():
            self._pid = os.getpid()
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if os.getpid() != self._pid:
            # a DataLoader worker forked with this handler: the terminal's Ctrl-C reaches the whole process group,
            # and a worker that died of it would leave the main process waiting for its batches; it keeps serving
            # until the main process stops it
            return
        self.requested, self.signum = True, self.signum or signum
        signal.signal(signum, SIGNALS[signum])  # the same signal again aborts immediately
        if signum == signal.SIGTERM:
            log.warning("SIGTERM (preemption or shutdown): saving a checkpoint after the current batch, then "
                        "stopping (a second SIGTERM ends the process without saving)")
        else:
            log.warning("Ctrl-C: saving a checkpoint after the current batch, then stopping (Ctrl-C again to abort "
                        "without saving)")

    def requested_on_any_rank(self) -> bool:
        if paddle.distributed.get_world_size() <= 1:
            return self.requested
        flag = paddle.to_tensor([int(self.requested)], dtype="int32")
        paddle.distributed.all_reduce(flag, op=paddle.distributed.ReduceOp.MAX)
        self.requested = bool(flag.item())
        return self.requested
