"""Which images of a dataset could not be read, as one record shared by the DataLoader workers and the main process.

A corrupt file must not end a 40-epoch run at hour 3, but it must not go unnoticed either. The dataset replaces an
unreadable image by another and records it here; the loader reports the record after every pass.

Why shared memory: Paddle's DataLoader calls ``__getitem__`` in worker processes, started afresh for every pass.
A Python counter incremented there dies with the worker, and the main process never sees it. So the record lives in
shared memory allocated when the dataset is built, which worker processes inherit (forked, or handed over when a
spawned worker starts, which ``multiprocessing`` allows for shared ctypes): one byte per sample (1.3 MB for
ImageNet) marks the bad files, so every worker skips a known-bad file without decoding it again, and a locked
counter counts the replacements.

Why not a pre-scan before training: decoding every image up front costs a whole epoch of CPU at every start.
``python -m rifle_paddle.app.check_data`` does that scan once, after a download, and lists every unreadable file.
"""
from __future__ import annotations

import ctypes
import multiprocessing

import numpy as np


class UnreadableImages:
    """Flags of unreadable sample indices and the number of times one was replaced, shared across processes."""

    def __init__(self, num_samples: int):
        self._flags = multiprocessing.RawArray(ctypes.c_uint8, max(1, num_samples))
        self._replaced = multiprocessing.Value(ctypes.c_int64, 0)
        self._exhausted = multiprocessing.Value(ctypes.c_int8, 0)

    def mark(self, index: int) -> bool:
        """Flag sample ``index`` as unreadable; True the first time."""
        first = not self._flags[index]
        self._flags[index] = 1
        return bool(first)

    def count_replacement(self) -> None:
        with self._replaced.get_lock():
            self._replaced.value += 1

    def is_unreadable(self, index: int) -> bool:
        return bool(self._flags[index])

    def mark_exhausted(self) -> None:
        """Every sample a replacement could come from is unreadable: the loader must stop the run."""
        self._exhausted.value = 1

    @property
    def exhausted(self) -> bool:
        return bool(self._exhausted.value)

    @property
    def replaced(self) -> int:
        """Draws of an unreadable sample served by a replacement so far, over all passes and processes."""
        return self._replaced.value

    def indices(self) -> list[int]:
        """Sample indices found unreadable so far."""
        return np.flatnonzero(np.frombuffer(self._flags, dtype=np.uint8)).tolist()
