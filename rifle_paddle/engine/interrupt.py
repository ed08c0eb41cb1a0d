"""Ctrl-C as a request to stop at the next safe point, not an exception thrown wherever Python happens to be.

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


class InterruptRequest:
    """Context manager that turns the first SIGINT into ``self.requested = True`` (main thread only; elsewhere,
    where Python cannot install handlers, Ctrl-C keeps its default behaviour)."""

    def __init__(self):
        self.requested = False
        self._previous = None
        self._pid = None

    def __enter__(self) -> "InterruptRequest":
        self.requested = False
        if threading.current_thread() is threading.main_thread():
            self._pid = os.getpid()
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum, frame) -> None:
        if os.getpid() != self._pid:
            # a DataLoader worker forked with this handler: the terminal's Ctrl-C reaches the whole process group,
            # and a worker that died of it would leave the main process waiting for its batches; it keeps serving
            # until the main process stops it
            return
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C aborts immediately
        log.warning("Ctrl-C: saving a checkpoint after the current batch, then stopping (Ctrl-C again to abort "
                    "without saving)")

    def requested_on_any_rank(self) -> bool:
        if paddle.distributed.get_world_size() <= 1:
            return self.requested
        flag = paddle.to_tensor([int(self.requested)], dtype="int32")
        paddle.distributed.all_reduce(flag, op=paddle.distributed.ReduceOp.MAX)
        self.requested = bool(flag.item())
        return self.requested
