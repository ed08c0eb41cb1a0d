"""``rifle-train --gpus 0,1 ...`` / ``--processes 2``: one run on several cards (or CPU processes) from any install.

``paddle.distributed.launch`` needs a script to start on every rank; a pip user has no ``train.py``, so the
installed package's own ``__main__.py`` (``python -m rifle_paddle``) is that script, given the same arguments
minus the launch options. Each rank then trains as ``engine.multicard`` describes; rank ``i``'s output goes to
``<log dir>/workerlog.<i>``.
"""
from __future__ import annotations

import os
import subprocess
import sys

#: the options that start the launch; removed from the arguments each rank gets
LAUNCH_OPTIONS = ("--gpus", "--processes", "--launch-log-dir")


def rank_arguments(argv: list[str]) -> list[str]:
    """``argv`` without the launch options and their values (``--gpus 0,1`` or ``--gpus=0,1``)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in LAUNCH_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in LAUNCH_OPTIONS)):
            kept.append(arg)
    return kept


def launch_command(argv: list[str], gpus: str | None, processes: int | None, log_dir: str | None,
                   script: str | None = None) -> list[str]:
    """The ``paddle.distributed.launch`` command that runs ``python -m rifle_paddle argv`` on every rank (or
    ``script argv``: the self-test's recording entry). Every launcher option comes before the script, each followed
    by its value: ``--gpus`` alone starts one rank per card, ``--nproc_per_node`` that many CPU processes."""
    if script is None:
        import rifle_paddle
        script = os.path.join(os.path.dirname(os.path.abspath(rifle_paddle.__file__)), "__main__.py")
    cmd = [sys.executable, "-m", "paddle.distributed.launch"]
    cmd += ["--gpus", gpus] if gpus else ["--nproc_per_node", str(processes)]
    cmd += ["--log_dir", log_dir] if log_dir else []
    return cmd + [script, *rank_arguments(argv)]


def launch(argv: list[str], gpus: str | None, processes: int | None, log_dir: str | None) -> int:
    """Run the launch and return its exit status (Ctrl-C reaches the ranks through the process group)."""
    if processes is not None and processes < 1:
        sys.exit("error: --processes must be at least 1")
    cmd = launch_command(argv, gpus, processes, log_dir)
    print("launching: " + " ".join(cmd), file=sys.stderr)
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 130
