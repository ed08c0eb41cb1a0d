"""Several cards: a regularizer must mean on N ranks what it means on one card with the same global batch.

DataParallel *averages* the ranks' gradients. That is right for a loss that is a mean over the batch (the task's
cross-entropy, ``feature_reduction: mean``): the mean of N per-rank means of B images is the mean over the N B
images. It is wrong for the rest:

- a penalty *summed* over the images (``feature_reduction: sum``, the DELTA authors' and the paper configs'): each
  rank sums its own B images, the average of the N sums is 1/N of the sum over the N B images, so alpha acted N
  times weaker (2 ranks x 4 images equalled one card of 8 images at alpha / 2). ``as_global_sum`` multiplies the
  rank's sum by N: its gradient, averaged, is the gradient of the global sum;
- a penalty that is no sum over images at all (BSS: the smallest singular values of the batch's feature matrix):
  each rank penalized the spectrum of its own small batch, another quantity. ``gather_batch`` builds the global
  batch's matrix on every rank (the other ranks' rows without gradient, its own with), and ``gradient_times(value,
  N)`` keeps the value but multiplies the gradient by N, so that the average over the ranks of each rank's share
  is the gradient of the penalty of the global batch;
- data-dependent set-up (DELTA's channel scores and its discriminator): ``GlobalBatches`` hands every rank the
  global batches, so every rank computes what one card would and the ranks agree.

On one process every function here is the identity.
"""
from __future__ import annotations

import paddle

from ..core.step import as_tensor


def world_size() -> int:
    return paddle.distributed.get_world_size()


def as_global_sum(penalty: paddle.Tensor) -> paddle.Tensor:
    """A rank's penalty summed over its own images, as its share of the sum over the global batch (see above)."""
    n = world_size()
    return penalty if n <= 1 else penalty * float(n)


def gradient_times(value: paddle.Tensor, factor: float) -> paddle.Tensor:
    """``value`` unchanged, its gradient multiplied by ``factor``."""
    if factor == 1:
        return value
    return value * float(factor) - value.detach() * float(factor - 1)


@paddle.no_grad()
def _all_gather(tensor: paddle.Tensor) -> list[paddle.Tensor]:
    """Every rank's ``tensor`` (the first dimension may differ between ranks), in rank order."""
    n = world_size()
    sizes: list = []
    paddle.distributed.all_gather(sizes, paddle.to_tensor([tensor.shape[0]], dtype="int64"))
    sizes = [int(s.item()) for s in sizes]
    longest = max(sizes)
    padded = tensor
    if tensor.shape[0] < longest:  # all_gather needs one shape on every rank
        padded = paddle.concat([tensor, paddle.zeros([longest - tensor.shape[0]] + list(tensor.shape[1:]),
                                                     dtype=tensor.dtype)])
    parts: list = []
    paddle.distributed.all_gather(parts, padded)
    return [part[:size] for part, size in zip(parts[:n], sizes)]


def gather_batch(tensor: paddle.Tensor) -> paddle.Tensor:
    """The global batch: every rank's ``tensor`` concatenated along the first axis in rank order, on every rank.
    The rank's own rows keep their gradient, the others' have none."""
    if world_size() <= 1:
        return tensor
    parts = _all_gather(tensor.detach())
    parts[paddle.distributed.get_rank()] = tensor
    return paddle.concat(parts)


class GlobalBatches:
    """``loader``'s batches as ``(images, labels)``, each the global batch of all ranks; iterable again and again
    like the loader (every rank must iterate as many batches: the engine's sampler gives every rank the same count).
    On one process, the loader's own batches."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            images, labels = batch[0], batch[1]
            if world_size() > 1:
                images, labels = gather_batch(as_tensor(images)), gather_batch(as_tensor(labels))
            yield images, labels
