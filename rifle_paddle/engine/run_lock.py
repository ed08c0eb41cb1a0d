"""One writer per run folder: ``<run>/run.lock`` names the process that writes the run, and a second one is
refused.

Two trainings started into one run name (a double-clicked job script, a scheduler that requeues a job still
running, two sweeps sharing an output folder) otherwise interleave their ``config.yaml``, ``metrics.json``,
``train.log`` and checkpoints into a folder that belongs to neither. The lock is a file created exclusively
(``O_CREAT | O_EXCL``, atomic on local file systems) that holds the writer's PID, host name, process start time
and command line; it is removed when the command ends, however it ends, short of SIGKILL or a power loss.

A lock left behind by such a crash is recovered: when it names this host and a process that no longer exists (or
a new process that reuses the PID: its start time differs), it is stale, taken over, and the log says so. A lock
held by a live process, or by another host (whose processes cannot be checked from here), is refused with a
message naming the holder and saying how to remove the lock if the holder is known to be gone.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time

from .errors import RunError

log = logging.getLogger(__name__)

LOCK_FILE = "run.lock"
_HELD: set[str] = set()  # the locks this process holds (a second train() in one process is refused too)


def _start_ticks(pid: int) -> str | None:
    """The process' start time in clock ticks since boot (``/proc/<pid>/stat`` field 22), which tells a process
    from a later one given the same PID; None where ``/proc`` is not available."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) sends CTRL_C_EVENT there: never assume a Windows holder is gone
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _describe(holder: dict) -> str:
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    command = str(holder.get("command") or "")
    command = command if len(command) <= 100 else command[:97] + "..."
    return f"PID {holder.get('pid', '?')} on {holder.get('host', '?')}, since {when}" + (f": {command}" if command else "")


def is_stale(holder: dict, path: str) -> bool:
    """Whether the holder of the lock at ``path`` is certainly gone: same host, and its PID is not running the same
    process (this process itself only if it does not hold the lock: a PID reused in a new container)."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    pid = holder["pid"]
    if pid == os.getpid():
        return path not in _HELD
    if not _alive(pid):
        return True
    ticks = holder.get("ticks")
    return ticks is not None and _start_ticks(pid) not in (None, ticks)


class RunLock:
    """``with RunLock(run_dir):`` holds ``<run_dir>/run.lock`` (creating ``run_dir`` if needed) or raises
    ``RunError`` naming the process that holds it."""

    def __init__(self, run_dir: str):
        self.run_dir = os.path.abspath(run_dir)
        self.path = os.path.join(self.run_dir, LOCK_FILE)
        self.held = False

    def acquire(self) -> "RunLock":
        try:
            os.makedirs(self.run_dir, exist_ok=True)
        except OSError as e:
            raise RunError(f"cannot create the run directory {self.run_dir}: {e.strerror or e}"
                           + _where_hint(self.run_dir)) from None
        record = {"pid": os.getpid(), "host": socket.gethostname(), "ticks": _start_ticks(os.getpid()),
                  "started": time.time(), "command": " ".join(sys.argv)}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not os.path.isfile(self.path):
                    raise RunError(f"{self.path} is not a file (a folder?): remove it, it is where a training "
                                   f"records that it writes this run") from None
                holder = self._holder()
                if holder == {}:  # released meanwhile: take it
                    continue
                if holder is not None and not is_stale(holder, self.path):
                    raise RunError(f"{self.run_dir} is being written by another process ({_describe(holder)}); "
                                   f"wait for it to end, or choose another -o run.name=... (if that process is "
                                   f"gone, e.g. its machine was switched off, delete {self.path})") from None
                log.warning("recovering the lock %s of a process that has ended (%s)", self.path,
                            _describe(holder or {}))
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                except OSError as e:  # not a file (a folder someone made), or a folder that cannot be written
                    raise RunError(f"cannot take the lock {self.path}: {e.strerror or e}; remove it, or choose "
                                   f"another -o run.name=...") from None
                continue
            except OSError as e:
                raise RunError(f"cannot write into the run directory {self.run_dir}: {e.strerror or e}"
                               + _where_hint(self.run_dir)) from None
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(record, f)
            self.held = True
            _HELD.add(self.path)
            return self
        raise RunError(f"{self.run_dir}: another process took the lock {self.path} at the same moment; try again")

    def _holder(self) -> dict | None:
        """The lock's record; None for an unreadable one (a writer killed between creating and filling it)."""
        try:
            with open(self.path, encoding="utf-8") as f:
                holder = json.load(f)
            return holder if isinstance(holder, dict) else None
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            age = time.time() - os.path.getmtime(self.path) if os.path.exists(self.path) else 1e9
            return None if age > 5 else {"pid": "?", "host": "?", "command": "(being written)"}

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        _HELD.discard(self.path)
        try:
            os.remove(self.path)
            if not os.listdir(self.run_dir):  # a command refused, or a run that did not start: leave no trace
                os.rmdir(self.run_dir)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _where_hint(run_dir: str) -> str:
    """What is wrong with the place: a path component that is a file, or a folder that cannot be written."""
    parent = run_dir
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        return f" ({parent} is a file, not a folder: choose another run.output_dir)"
    return " (choose a writable -o run.output_dir=...)"
