"""The training loader's batch sampler: Paddle's ``DistributedBatchSampler`` with an order that depends on the seed.

Paddle shuffles with ``np.random.RandomState(self.epoch)``: the order is a function of the epoch counter alone, so
runs that differ only in ``run.seed`` see exactly the same batches and a seed sweep understates the variance.
``SeededBatchSampler`` draws the permutation from ``(seed, epoch)``. It is still a pure function of the sampler's
state, which a checkpoint keeps (``training_state.sampler_epoch``), so a resumed run replays the same order.

``reshuffle=False`` is the RIFLE authors' order (``as_data_reader/readers.py`` and ``run.py``): their reader draws
one permutation of the list when it is built and feeds it through a shuffle buffer of one batch
(``paddle.reader.shuffle(reader, buf_size=batch_size)``), so every epoch has the same batches, in the same order;
only the order inside each batch changes, which no batch statistic sees. Here the permutation is drawn from
``seed`` alone, and the order inside each batch from ``(seed, epoch)``.
"""
from __future__ import annotations

import numpy as np
import paddle


class SeededBatchSampler(paddle.io.DistributedBatchSampler):
    """``DistributedBatchSampler`` whose shuffled order is drawn from ``(seed, epoch)``.

    Every rank draws the same permutation, pads it (repeating its start) to a multiple of the number of ranks and
    takes its own share exactly as Paddle does: the ``r``-th ``batch_size`` block of every ``batch_size * nranks``
    block, then the ``r``-th equal part of the remainder. Without ``shuffle`` the batches are Paddle's.
    """

    def __init__(self, dataset, batch_size: int, seed: int = 0, reshuffle: bool = True, **kwargs):
        super().__init__(dataset, batch_size, **kwargs)
        self.seed, self.reshuffle = seed, reshuffle

    def __iter__(self):
        if not self.shuffle:
            yield from super().__iter__()
            return
        epoch_rng = np.random.default_rng([self.seed, self.epoch])
        order = (epoch_rng if self.reshuffle else np.random.default_rng([self.seed])).permutation(len(self.dataset))
        self.epoch += 1  # as Paddle does: the next pass draws the next epoch's order
        padded = np.resize(order, self.total_size)
        step = self.batch_size * self.nranks
        whole = len(padded) - len(padded) % step
        mine = padded[:whole].reshape(-1, self.nranks, self.batch_size)[:, self.local_rank].ravel()
        rest = np.split(padded[whole:], self.nranks)[self.local_rank]
        indices = np.concatenate([mine, rest]).tolist()
        local_batch_size = self.batch_size * self._acc_steps
        for start in range(0, len(indices), local_batch_size):
            batch = indices[start:start + local_batch_size]
            if len(batch) == local_batch_size or not self.drop_last:
                yield batch if self.reshuffle else epoch_rng.permutation(batch).tolist()
