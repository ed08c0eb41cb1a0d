"""Several cards (``python -m paddle.distributed.launch ... train.py``): what every rank must do, or agree on, together.

hapi handles the data-parallel step itself (DataParallel averages ``.grad``); everything else a rank decides alone
must either be identical on every rank by construction or be decided collectively, else the ranks drift apart
(different weights, different loss scales) or wait forever for each other in the next collective.
"""
from __future__ import annotations

import numpy as np
import paddle


def world_size() -> int:
    return paddle.distributed.get_world_size()


def init_process_group() -> None:
    """Create the process group of a multi-process launch now, before anything that communicates.

    hapi creates it only in ``paddle.Model``'s constructor, but the run communicates earlier: DELTA's supervised
    attention is broadcast from rank 0 while the training step is built ("The global group is not initialized").
    ``init_parallel_env`` returns the existing group when called again, so hapi's later call is harmless.
    """
    if world_size() > 1:
        paddle.distributed.init_parallel_env()


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on at least one rank (every rank must call it; one card: ``flag``)."""
    if world_size() <= 1:
        return flag
    value = paddle.to_tensor([int(flag)], dtype="int32")
    paddle.distributed.all_reduce(value, op=paddle.distributed.ReduceOp.MAX)
    return bool(value.item())


def rank_seed(seed: int, rank: int) -> int:
    """The seed of ``rank``'s data streams: ``seed`` itself on rank 0 (a one-card run is unchanged), a draw from
    ``(seed, rank)`` on the others, so that no two ranks share a stream."""
    return seed if rank == 0 else int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def gather(obj) -> list:
    """``obj`` of every rank, in rank order, on every rank (every rank must call it; one card: ``[obj]``)."""
    if world_size() <= 1:
        return [obj]
    objects: list = []
    paddle.distributed.all_gather_object(objects, obj)
    return objects


def resumed_step(step: int, saved_world: int, world: int) -> int:
    """Batches of an epoch done by ``saved_world`` ranks as batches of ``world`` ranks: the same number of images
    (rounded down), so a run resumed on another number of cards continues its epoch at about the same point."""
    return step * saved_world // world
