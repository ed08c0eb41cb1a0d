"""``train`` whose training loss turns NaN on one rank only, for runs launched as several ranks by the tests.

Usage: ``poisoned_run.py <rank> <global step> <override>...``: the loss of that (1-based) step is NaN on ``rank``.
Exits 0 when the run stopped with the non-finite-loss message, 1 when it did not stop, else with the error.
"""
from __future__ import annotations

import sys

import paddle
from test_nan import PoisonLosses

from rifle_paddle.config import load_config
from rifle_paddle.engine.errors import RunError
from rifle_paddle.engine.trainer import train

if __name__ == "__main__":
    rank, step, overrides = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    callbacks = [PoisonLosses({step})] if paddle.distributed.get_rank() == rank else []
    try:
        train(load_config(None, overrides), callbacks=callbacks)
    except RunError as e:
        if "non-finite training loss" not in str(e):
            raise
        print(f"stopped: {e}", flush=True)
        sys.exit(0)
    sys.exit("the run did not stop")
