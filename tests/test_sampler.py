"""The training batch order: drawn from the run's seed and the epoch, reproducible (a resumed run replays it), and
split over ranks the way Paddle's ``DistributedBatchSampler`` splits it."""
from __future__ import annotations

import paddle
import pytest

from rifle_paddle.data import build_loader
from rifle_paddle.data.sampler import SeededBatchSampler


class Indices(paddle.io.Dataset):
    def __init__(self, n: int):
        self.n = n

    def __getitem__(self, i):
        return i

    def __len__(self):
        return self.n


def passes(sampler, count: int) -> list[list[list[int]]]:
    """The batches of ``count`` consecutive passes, as a training loop draws them."""
    return [list(sampler) for _ in range(count)]


def test_the_order_depends_on_the_seed_and_the_epoch_and_repeats_for_the_same_pair():
    data = Indices(50)
    seed_1 = passes(build_loader(data, 8, True, 0, seed=1).batch_sampler, 3)
    seed_2 = passes(build_loader(data, 8, True, 0, seed=2).batch_sampler, 3)
    assert seed_1 == passes(build_loader(data, 8, True, 0, seed=1).batch_sampler, 3)  # same seed, same epochs
    assert all(a != b for a, b in zip(seed_1, seed_2))  # another seed: another order at every epoch
    assert seed_1[0] != seed_1[1] != seed_1[2]  # each epoch its own order
    for epoch in seed_1:  # still a shuffle of every sample, once
        assert sorted(i for batch in epoch for i in batch) == list(range(50))
        assert [len(b) for b in epoch] == [8] * 6 + [2]


def test_a_resumed_sampler_replays_the_epoch_it_was_at():
    """A checkpoint keeps the epoch counter (``training_state.sampler_epoch``); restoring it with ``set_epoch``
    in a new process must give the order the interrupted run would have drawn."""
    uninterrupted = passes(SeededBatchSampler(Indices(30), 4, seed=7, shuffle=True), 4)
    resumed = SeededBatchSampler(Indices(30), 4, seed=7, shuffle=True)
    resumed.set_epoch(2)
    assert passes(resumed, 2) == uninterrupted[2:]


@pytest.mark.parametrize("n, batch_size, nranks", [(50, 4, 2), (23, 4, 3), (8, 4, 4), (24, 3, 2)])
def test_every_rank_takes_its_share_of_one_permutation(n, batch_size, nranks):
    """Same seed and epoch on every rank: the ranks' batches of one step are disjoint parts of one shuffled order,
    padded (as Paddle pads) by repeating samples only so that every rank gets as many."""
    ranks = [SeededBatchSampler(Indices(n), batch_size, seed=5, num_replicas=nranks, rank=r, shuffle=True)
             for r in range(nranks)]
    shares = [[i for batch in sampler for i in batch] for sampler in ranks]
    assert len({len(share) for share in shares}) == 1 and len(shares[0]) == ranks[0].num_samples
    drawn = [i for share in shares for i in share]
    assert set(drawn) == set(range(n)) and len(drawn) == ranks[0].total_size  # only the padding repeats
    assert all(len(list(sampler)) == len(sampler) for sampler in ranks)


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("n, batch_size, nranks", [(50, 4, 1), (23, 4, 3), (24, 3, 2)])
def test_without_shuffling_the_batches_are_paddles(n, batch_size, nranks, drop_last):
    for rank in range(nranks):
        kwargs = dict(num_replicas=nranks, rank=rank, shuffle=False, drop_last=drop_last)
        ours = SeededBatchSampler(Indices(n), batch_size, seed=3, **kwargs)
        theirs = paddle.io.DistributedBatchSampler(Indices(n), batch_size, **kwargs)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


@pytest.mark.parametrize("rank", [0, 1])
def test_no_rank_gets_a_batch_of_one(monkeypatch, rank):
    """65 images on 2 ranks at batch 32: each rank iterates over ceil(65 / 2) = 33 (one padded), so the batch of
    one (which batch norm cannot normalize) must be dropped on every rank; floor(65 / 2) = 32 missed it."""
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")
    monkeypatch.setenv("PADDLE_TRAINER_ID", str(rank))
    monkeypatch.setattr(paddle.distributed, "get_world_size", lambda *a: 2)  # caches the launch-less env otherwise
    sampler = build_loader(Indices(65), 32, True, 0, seed=1).batch_sampler
    assert sampler.nranks == 2 and [len(b) for b in sampler] == [32] and len(sampler) == 1


def test_evaluation_keeps_the_order():
    assert list(build_loader(Indices(10), 4, False, 0, seed=9).batch_sampler) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_the_engine_shuffles_with_the_runs_seed(tiny_config, monkeypatch):
    from rifle_paddle.engine import trainer
    loaders, build_loader = [], trainer.build_loader

    def recording(*args, **kwargs):
        loaders.append(build_loader(*args, **kwargs))
        return loaders[-1]

    monkeypatch.setattr(trainer, "build_loader", recording)
    trainer.train(tiny_config("run.seed=11", "train.epochs=1", "log.visualdl=false"))
    train_sampler = loaders[0].batch_sampler
    assert train_sampler.shuffle and train_sampler.seed == 11
