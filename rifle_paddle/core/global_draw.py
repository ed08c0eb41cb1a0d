"""Random draws per image on several cards: this rank's rows of one draw over the global batch.

Every rank seeds Paddle's generator with ``run.seed`` (what is drawn before DataParallel synchronizes the weights
must be identical), so a draw shaped like the rank's own batch gives every rank the *same* numbers: the i-th image
of every card got the same dropout mask and the same DisturbLabel decision and label, noise correlated across the
cards that one card with the global batch never has. ``rows_of_global_draw`` draws for the whole global batch
(every rank the same, so the generators stay in step) and keeps the rank's rows: on N ranks of B images, what one
card draws for the N B images of the global batch, rank r's share being rows r B .. (r + 1) B - 1, the rows of
its images in the global batch (``data.sampler.SeededBatchSampler``). Per-step draws (stochastic depth's choice of
blocks, DropConnect's weight mask) are one draw for the whole global batch and stay as they are. One process: the
plain draw.
"""
from __future__ import annotations

from typing import Callable

import paddle


def rows_of_global_draw(draw: Callable[[list[int]], paddle.Tensor], shape: list[int]) -> paddle.Tensor:
    """``draw(shape)`` on one process; on N ranks, rows ``rank * B`` to ``(rank + 1) * B`` of
    ``draw([N * B, *shape[1:]])`` (``B = shape[0]``, the same on every rank)."""
    world = paddle.distributed.get_world_size()
    shape = list(shape)
    if world <= 1:
        return draw(shape)
    rank, rows = paddle.distributed.get_rank(), shape[0]
    return draw([world * rows, *shape[1:]])[rank * rows:(rank + 1) * rows]
