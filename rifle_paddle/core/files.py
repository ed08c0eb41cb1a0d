"""Durable file writes: a file is written under a temporary name, flushed to the disk and renamed, so a run killed
(or a machine losing power, or a full disk) while saving never leaves a truncated file, only the previous version;
a failed write removes its temporary file."""
from __future__ import annotations

import hashlib
import os

import paddle


def fsync_path(path: str) -> None:
    """Flush a file's data (or a directory's entries) to the disk. Directories cannot be opened on some platforms
    (Windows); there a rename is as durable as the OS makes it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _commit(tmp: str, path: str) -> None:
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(os.path.dirname(os.path.abspath(path)))


def _written(tmp: str, path: str, write) -> None:
    """``write(tmp)``, then the rename; on any failure (a full disk) the temporary file is removed, not left."""
    try:
        write(tmp)
        _commit(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def atomic_save(obj, path: str) -> None:
    """``paddle.save`` that leaves either the old or the new file at ``path``, never a partial one."""
    _written(f"{path}.tmp{os.getpid()}", path, lambda tmp: paddle.save(obj, tmp))


def atomic_write_text(text: str, path: str) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    _written(f"{path}.tmp{os.getpid()}", path, write)


def file_digest(path: str, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (``hashlib`` algorithm), read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
