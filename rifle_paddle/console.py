"""What a user sees: console and file logging for the ``rifle_paddle`` logger namespace, and Paddle's own
warnings that nobody can act on kept out of it."""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import warnings

log = logging.getLogger("rifle_paddle")


def setup_logging(log_file: str | None = None) -> None:
    """A console handler on the ``rifle_paddle`` logger (once per process) and, given ``log_file``, a file
    handler for the current run, replacing the previous run's (a process may train several runs in turn)."""
    log.setLevel(logging.INFO)
    log.propagate = False  # Paddle configures the root logger; propagating would print every line twice
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    if not any(getattr(h, "_rifle_console", False) for h in log.handlers):
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(fmt)
        console._rifle_console = True
        log.addHandler(console)
    if log_file is None:
        return
    for old in [h for h in log.handlers if isinstance(h, logging.FileHandler)]:
        if old.baseFilename != os.path.abspath(log_file):
            log.removeHandler(old)
            old.close()
    if not any(isinstance(h, logging.FileHandler) for h in log.handlers):
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(fmt)
        log.addHandler(handler)


def log_to_file(error: BaseException) -> BaseException:
    """Write a fatal ``error`` into the run's ``train.log`` only (the command line prints it on the console as its
    ``error:`` line); returns it, for ``raise log_to_file(e)``."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "stopped: %s", (error,), None)
    for handler in log.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    return error


def close_log_file() -> None:
    """Detach and close the run's ``train.log`` handler (before its directory is removed)."""
    for handler in [h for h in log.handlers if isinstance(h, logging.FileHandler)]:
        log.removeHandler(handler)
        handler.close()


def module_parser(prog: str, doc: str, epilog: str | None = None):
    """The one parser style of every command (console scripts and ``python -m`` modules): the description is the
    first line of the command module's docstring, the epilog the rest (its usage examples) or ``epilog``, both
    kept as written."""
    import argparse
    return argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog=epilog or (doc.split("\n\n", 1)[1] if "\n\n" in doc else None))


#: Paddle 3.3 warnings that say nothing a user can act on: hapi's ``eval_batch`` passes the labels, already
#: tensors, to ``paddle.to_tensor``; ``BatchNorm`` announces on every training forward that it tracks global
#: statistics (which it always did).
PADDLE_NOISE = ("To copy construct from a tensor", "When training, we now always track global mean and variance")


@contextlib.contextmanager
def paddle_noise_silenced():
    """Within the block, ``PADDLE_NOISE`` is not shown; every other warning is, as before."""
    with warnings.catch_warnings():
        for text in PADDLE_NOISE:
            warnings.filterwarnings("ignore", message=re.escape(text), category=UserWarning)
        yield
