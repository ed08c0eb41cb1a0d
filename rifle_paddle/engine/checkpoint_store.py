"""Resumable checkpoints on disk: one directory per checkpoint, committed by a single atomic rename.

A checkpoint is several files (network, optimizer, everything else) that are only meaningful together, so the
unit of atomicity is the directory: files are written into ``checkpoints/<name>.partial/``, flushed to disk
(``fsync``), and the directory is renamed to ``checkpoints/<name>/``. A run killed at any instant (SIGKILL, power
loss) therefore leaves either the previous complete checkpoint or the new one, never a mix; a ``.partial``
directory is an aborted write and is ignored (and removed by the next save).

Names order checkpoints by training progress: ``epoch_0003`` is the state at the start of (0-based) epoch 3, i.e.
after 3 complete epochs; ``epoch_0003_step_000120`` is the state after 120 batches of epoch 3 (written on Ctrl-C).
Only the newest is kept. Its network and optimizer files are also published as ``<run>/last.pdparams`` and
``<run>/last.pdopt`` (hard links where the file system allows, so publishing costs no second write), the files
``eval.py`` and users read.
"""
from __future__ import annotations

import os
import re
import shutil
from typing import NamedTuple

import paddle

from ..core.files import fsync_path

CHECKPOINT_DIR = "checkpoints"
NETWORK_FILE, OPTIMIZER_FILE, STATE_FILE = "network.pdparams", "optimizer.pdopt", "state.pdstate"
PUBLISHED = {NETWORK_FILE: "last.pdparams", OPTIMIZER_FILE: "last.pdopt"}
_PARTIAL = ".partial"
_NAME = re.compile(r"^epoch_(?P<epoch>\d{4,})(?:_step_(?P<step>\d{6,}))?$")


class Position(NamedTuple):
    """Where training stands: ``step`` batches of 0-based ``epoch`` are done (``step == 0``: at its start).

    The checkpoint's directory name counts what is finished (``epoch_0003``: three epochs; ``epoch_0003_step_000010``:
    three epochs and ten batches of the fourth); ``str()`` says it in the console's 1-based epoch numbers."""

    epoch: int
    step: int = 0

    @property
    def name(self) -> str:
        return f"epoch_{self.epoch:04d}" + (f"_step_{self.step:06d}" if self.step else "")

    @classmethod
    def parse(cls, name: str) -> "Position | None":
        match = _NAME.match(name)
        return cls(int(match["epoch"]), int(match["step"] or 0)) if match else None

    def __str__(self) -> str:
        if not self.step:
            return f"the start of epoch {self.epoch + 1}"
        return f"epoch {self.epoch + 1} after {self.step} batch{'es' if self.step > 1 else ''}"


def _publish(source: str, target: str) -> None:
    """Atomically make ``target`` a copy of ``source`` (a hard link when possible)."""
    tmp = f"{target}.tmp{os.getpid()}"
    if os.path.lexists(tmp):
        os.remove(tmp)
    try:
        os.link(source, tmp)
    except OSError:  # file systems without hard links, or across devices
        shutil.copyfile(source, tmp)
        fsync_path(tmp)
    os.replace(tmp, target)


class CheckpointStore:
    """The ``checkpoints/`` directory of one run (see the module docstring for the layout and guarantees)."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.root = os.path.join(run_dir, CHECKPOINT_DIR)

    def path(self, position: Position) -> str:
        return os.path.join(self.root, position.name)

    def complete(self) -> list[tuple[Position, str]]:
        """Every complete checkpoint as ``(position, path)``, oldest first."""
        if not os.path.isdir(self.root):
            return []
        found = [(Position.parse(name), os.path.join(self.root, name)) for name in os.listdir(self.root)]
        return sorted((pos, path) for pos, path in found
                      if pos is not None and os.path.isfile(os.path.join(path, STATE_FILE)))

    def latest(self) -> tuple[Position, str] | None:
        found = self.complete()
        return found[-1] if found else None

    def save(self, position: Position, files: dict[str, object]) -> str:
        """Write ``{file name: object}`` (``paddle.save``-able) as the checkpoint at ``position``; return its path.

        ``STATE_FILE`` is written last, and a directory without it is never taken for a checkpoint, so even a
        rename that some file system does not make atomic cannot expose a half-written checkpoint.
        """
        final = self.path(position)
        if os.path.isfile(os.path.join(final, STATE_FILE)):  # positions only grow: this is the same state
            return final
        partial = final + _PARTIAL
        shutil.rmtree(partial, ignore_errors=True)
        try:
            os.makedirs(partial)
            for name in sorted(files, key=lambda n: n == STATE_FILE):
                path = os.path.join(partial, name)
                paddle.save(files[name], path)
                fsync_path(path)
            fsync_path(partial)
        except BaseException:  # a full disk: leave no half-written checkpoint to fill it further
            shutil.rmtree(partial, ignore_errors=True)
            raise
        shutil.rmtree(final, ignore_errors=True)  # a directory without STATE_FILE: an aborted earlier write
        os.rename(partial, final)
        fsync_path(self.root)
        for name, published in PUBLISHED.items():
            if name in files:
                _publish(os.path.join(final, name), os.path.join(self.run_dir, published))
        self._prune(keep=final)
        return final

    def load(self, path: str) -> dict[str, object]:
        """The files of the checkpoint at ``path`` as ``{file name: object}``."""
        return {name: paddle.load(os.path.join(path, name))
                for name in (NETWORK_FILE, OPTIMIZER_FILE, STATE_FILE) if os.path.isfile(os.path.join(path, name))}

    def clear(self) -> None:
        """Remove every checkpoint (a run started over in its directory must not resume an older run later)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def _prune(self, keep: str) -> None:
        for name in os.listdir(self.root):
            path = os.path.join(self.root, name)
            if path != keep and (Position.parse(name) is not None or name.endswith(_PARTIAL)):
                shutil.rmtree(path, ignore_errors=True)
