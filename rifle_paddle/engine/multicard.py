"""Several cards (``python -m paddle.distributed.launch ... train.py``): what every rank must do, or agree on, together.

hapi handles the data-parallel step itself (DataParallel averages ``.grad``); everything else a rank decides alone
must either be identical on every rank by construction or be decided collectively, else the ranks drift apart
(different weights, different loss scales) or wait forever for each other in the next collective.
"""
from __future__ import annotations

import logging

import numpy as np
import paddle

from ..core import paddle_compat
from .errors import RunError

log = logging.getLogger("rifle_paddle")


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


def any_rank_each(flags: list[bool]) -> list[bool]:
    """``any_rank`` of several flags in one all-reduce (every rank must call it; one card: ``flags``)."""
    if world_size() <= 1:
        return list(flags)
    value = paddle.to_tensor([int(f) for f in flags], dtype="int32")
    paddle.distributed.all_reduce(value, op=paddle.distributed.ReduceOp.MAX)
    return [bool(v) for v in value.numpy()]


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


# ------------------------------------------------------------------------------------------------ batch norm
def configure_batch_norm(network: paddle.nn.Layer, sync_bn: bool, device: str, batch_size: int,
                         lr: float) -> paddle.nn.Layer:
    """Several cards: says what the global batch is, and with ``train.sync_bn`` turns every batch norm into
    Paddle's ``SyncBatchNorm`` (statistics over the global batch; same parameter objects, so call it before the
    regularizer takes its references anyway). One process: ``network`` unchanged.

    Each card normalizes its own ``data.batch_size`` images with plain batch norm, and N cards step with the mean
    gradient of N x ``data.batch_size`` images at an unchanged ``train.lr``. The papers trained on one GPU; what
    reproduces them on N cards is ``data.batch_size`` = their batch / N with ``sync_bn`` (same global batch, same
    statistics, same learning rate; docs/gpu.md).
    """
    world = world_size()
    if world <= 1:
        return network
    log.info("%d processes x data.batch_size %d: global batch %d at train.lr %g; batch norm %s", world, batch_size,
             world * batch_size, lr, "synchronized over the global batch (train.sync_bn)" if sync_bn else
             f"per card over {batch_size} images (train.sync_bn=false)")
    if not sync_bn:
        return network
    if device != "gpu":
        raise RunError("train.sync_bn=true needs GPUs: Paddle's SyncBatchNorm has no CPU kernel; set "
                       "-o train.sync_bn=false")
    network = paddle.nn.SyncBatchNorm.convert_sync_batchnorm(network)
    converted = sum(isinstance(layer, paddle.nn.SyncBatchNorm) for layer in network.sublayers(include_self=True))
    left = sum(paddle_compat.is_batch_norm(layer) and not isinstance(layer, paddle.nn.SyncBatchNorm)
               for layer in network.sublayers(include_self=True))
    log.info("batch norm: %d layers converted to SyncBatchNorm, %d left unsynchronized", converted, left)
    return network


@paddle.no_grad()
def average_batch_norm_statistics(network: paddle.nn.Layer) -> None:
    """Replace every rank's batch-norm running statistics by their mean over the ranks (every rank must call it)."""
    if world_size() <= 1:
        return
    for layer in network.sublayers(include_self=True):
        if paddle_compat.is_batch_norm(layer) and not isinstance(layer, paddle.nn.SyncBatchNorm):
            for buffer in paddle_compat.running_statistics(layer):
                buffer.scale_(1.0 / world_size())
                paddle.distributed.all_reduce(buffer)


class SameStatisticsOnEveryRank(paddle.callbacks.Callback):
    """Before each evaluation of a multi-card run with plain batch norm, averages the running statistics over the
    ranks (``average_batch_norm_statistics``): each rank accumulated its own card's, so the ranks evaluated their
    test shards with different networks, none of them the one rank 0 saves (``best.pdparams``, ``last.pdparams``).
    Now every rank evaluates, and rank 0 saves, the same network, with statistics from every card's batches.
    Training is unaffected: batch norm trains on batch statistics."""

    def on_eval_begin(self, logs=None):
        average_batch_norm_statistics(self.model.network)
