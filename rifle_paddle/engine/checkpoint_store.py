"""Resumable checkpoints on disk: one directory per checkpoint, committed by a single atomic rename, each file
listed with its size and SHA-256 so that a damaged one is found before it is trusted.

A checkpoint is several files (network, optimizer, everything else) that are only meaningful together, so the
unit of atomicity is the directory: files are written into ``checkpoints/<name>.partial/``, flushed to disk
(``fsync``), listed in ``manifest.json`` (size and SHA-256 of each, read back from the disk), and the directory is
renamed to ``checkpoints/<name>/``. A run killed at any instant (SIGKILL, power loss) therefore leaves either the
previous complete checkpoint or the new one, never a mix; a ``.partial`` directory is an aborted write and is
ignored (and removed by the next save).

What the rename cannot protect against happens later: a copy of the run folder interrupted halfway, a file
truncated or edited by hand, a disk that returns other bytes. ``verify`` checks every file against the manifest
and names the first that differs; a resume then falls back to the previous checkpoint, which is why the newest
TWO are kept (the older one is removed only once the next is complete). A checkpoint written before manifests
existed is checked for its files only.

Names order checkpoints by training progress: ``epoch_0003`` is the state at the start of (0-based) epoch 3, i.e.
after 3 complete epochs; ``epoch_0003_step_000120`` is the state after 120 batches of epoch 3 (written on Ctrl-C).
The newest one's network and optimizer files are also copied to ``<run>/last.pdparams`` and ``<run>/last.pdopt``,
the files ``eval.py`` and users read: copies, not hard links, so that what a user does to them (edit, overwrite,
truncate) can never change the checkpoint a resume continues from.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from typing import NamedTuple

import paddle

from ..core.files import atomic_write_text, file_digest, fsync_path

CHECKPOINT_DIR = "checkpoints"
NETWORK_FILE, OPTIMIZER_FILE, STATE_FILE = "network.pdparams", "optimizer.pdopt", "state.pdstate"
MANIFEST_FILE = "manifest.json"
#: a key of the state file saying that its checkpoint was written with a manifest (whose absence is then damage)
MANIFESTED = "manifested"
REQUIRED = (NETWORK_FILE, OPTIMIZER_FILE, STATE_FILE)  #: the files of a checkpoint from before manifests
PUBLISHED = {NETWORK_FILE: "last.pdparams", OPTIMIZER_FILE: "last.pdopt"}
KEEP = 2  #: complete checkpoints kept: the newest and the one a resume falls back to when the newest is damaged
_PARTIAL = ".partial"
_DAMAGED = ".damaged"
_NAME = re.compile(r"^epoch_(?P<epoch>\d{4,})(?:_step_(?P<step>\d{6,}))?$")


class DamagedCheckpoint(Exception):
    """A checkpoint whose files do not match its manifest (or cannot be read); the message names the file."""


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
    """Atomically make ``target`` a copy of ``source``: a file of its own (a hard link would share its bytes with
    the checkpoint, and a user's edit of ``last.pdparams`` would silently change what a resume continues from)."""
    tmp = f"{target}.tmp{os.getpid()}"
    try:
        shutil.copyfile(source, tmp)
        fsync_path(tmp)
        os.replace(tmp, target)
    except BaseException:
        if os.path.lexists(tmp):
            os.remove(tmp)
        raise


class CheckpointStore:
    """The ``checkpoints/`` directory of one run (see the module docstring for the layout and guarantees)."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.root = os.path.join(run_dir, CHECKPOINT_DIR)

    def path(self, position: Position) -> str:
        return os.path.join(self.root, position.name)

    def complete(self) -> list[tuple[Position, str]]:
        """Every committed checkpoint as ``(position, path)``, oldest first (committed: renamed from ``.partial``;
        whether its files are intact is ``verify``'s question)."""
        if not os.path.isdir(self.root):
            return []
        found = [(Position.parse(name), os.path.join(self.root, name)) for name in os.listdir(self.root)]
        return sorted((pos, path) for pos, path in found
                      if pos is not None and (os.path.isfile(os.path.join(path, MANIFEST_FILE))
                                              or os.path.isfile(os.path.join(path, STATE_FILE))))

    def latest(self) -> tuple[Position, str] | None:
        found = self.complete()
        return found[-1] if found else None

    def save(self, position: Position, files: dict[str, object]) -> str:
        """Write ``{file name: object}`` (``paddle.save``-able) as the checkpoint at ``position``; return its path.

        ``manifest.json`` is written last, after every file is on the disk, and the directory is renamed only then;
        the previous checkpoints are pruned to ``KEEP`` only after that rename."""
        final = self.path(position)
        if os.path.isfile(os.path.join(final, MANIFEST_FILE)):  # positions only grow: this is the same state
            return final
        partial = final + _PARTIAL
        shutil.rmtree(partial, ignore_errors=True)
        try:
            os.makedirs(partial)
            manifest = {}
            for name in sorted(files, key=lambda n: n == STATE_FILE):
                path = os.path.join(partial, name)
                paddle.save(files[name], path)
                fsync_path(path)
                manifest[name] = {"bytes": os.path.getsize(path), "sha256": file_digest(path)}
            atomic_write_text(json.dumps({"files": manifest}, indent=2), os.path.join(partial, MANIFEST_FILE))
            fsync_path(partial)
        except BaseException:  # a full disk: leave no half-written checkpoint to fill it further
            shutil.rmtree(partial, ignore_errors=True)
            raise
        shutil.rmtree(final, ignore_errors=True)  # a directory without a manifest: an aborted earlier write
        os.rename(partial, final)
        fsync_path(self.root)
        for name, published in PUBLISHED.items():
            if name in files:
                _publish(os.path.join(final, name), os.path.join(self.run_dir, published))
        self._prune()
        return final

    def verify(self, path: str) -> list[str]:
        """The names of the checkpoint's files; raises ``DamagedCheckpoint`` naming the first file of the checkpoint
        at ``path`` that is missing or whose size or SHA-256 differs from its manifest."""
        manifest_path = os.path.join(path, MANIFEST_FILE)
        if not os.path.isfile(manifest_path):  # written before manifests: its files must at least be there
            listed = {name: None for name in REQUIRED}
        else:
            try:
                with open(manifest_path, encoding="utf-8") as f:
                    listed = json.load(f)["files"]
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise DamagedCheckpoint(f"{manifest_path} is unreadable ({type(e).__name__}: {e})") from None
        if STATE_FILE not in listed:
            raise DamagedCheckpoint(f"{manifest_path} lists no {STATE_FILE}")
        for name, expected in listed.items():
            file = os.path.join(path, name)
            if not os.path.isfile(file):
                raise DamagedCheckpoint(f"{file} is missing")
            if expected is None:
                continue
            if not isinstance(expected, dict) or not {"bytes", "sha256"} <= set(expected):
                raise DamagedCheckpoint(f"{manifest_path} is unreadable (no size and SHA-256 for {name})")
            size = os.path.getsize(file)
            if size != expected["bytes"]:
                raise DamagedCheckpoint(f"{file} has {size} bytes, {expected['bytes']} were written")
            if file_digest(file) != expected["sha256"]:
                raise DamagedCheckpoint(f"{file} has other bytes than were written (SHA-256 differs)")
        return sorted(listed)

    def load(self, path: str) -> dict[str, object]:
        """The files of the checkpoint at ``path`` as ``{file name: object}``, verified first (``verify``)."""
        files = {}
        for name in self.verify(path):
            try:
                files[name] = paddle.load(os.path.join(path, name))
            except Exception as e:  # a legacy checkpoint (no manifest) with a damaged file
                raise DamagedCheckpoint(f"{os.path.join(path, name)} cannot be read "
                                        f"({type(e).__name__}: {e})") from None
        state = files[STATE_FILE]
        if isinstance(state, dict) and state.get(MANIFESTED) and not os.path.isfile(os.path.join(path, MANIFEST_FILE)):
            raise DamagedCheckpoint(f"{os.path.join(path, MANIFEST_FILE)} is missing (an interrupted copy?)")
        return files

    def set_aside(self, path: str) -> str:
        """Rename a damaged checkpoint to ``<name>.damaged`` (kept for inspection until the next save), so that the
        run resumed from an older one never takes it for its newest again."""
        target = path + _DAMAGED
        shutil.rmtree(target, ignore_errors=True)
        os.rename(path, target)
        return target

    def clear(self) -> None:
        """Remove every checkpoint (a run started over in its directory must not resume an older run later)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def _prune(self) -> None:
        """Keep the newest ``KEEP`` committed checkpoints; remove older ones, aborted writes and set-aside ones."""
        keep = {path for _, path in self.complete()[-KEEP:]}
        for name in os.listdir(self.root):
            path = os.path.join(self.root, name)
            if path not in keep and (Position.parse(name) is not None or name.endswith((_PARTIAL, _DAMAGED))):
                shutil.rmtree(path, ignore_errors=True)
