"""Optimizer and learning-rate schedule from the ``train`` section (the RIFLE authors' recipe by default)."""
from __future__ import annotations

import math

import paddle


def staircase_cosine(lr: float, step: int, stair: int, epochs: int) -> float:
    """The RIFLE authors' ``fluid.layers.cosine_decay(lr, step_each_epoch=stair, epochs)`` at 0-based ``step``:
    ``lr/2 * (cos(pi * floor(step / stair) / epochs) + 1)``, constant within a stair."""
    return lr / 2 * (math.cos(math.pi * (step // stair) / epochs) + 1)


def build_lr_scheduler(train_cfg: dict, steps_per_epoch: int,
                       epoch_stair: int | None = None) -> paddle.optimizer.lr.LRScheduler:
    """Per-iteration schedule (hapi's LRScheduler callback steps it after every batch).

    Cosine decays from ``lr`` to 0 over all iterations after warm-up; RIFLE does not restart it.
    ``cosine_epoch`` is the authors' staircase (``staircase_cosine``). Its stair is ``epoch_stair`` steps, never
    clipped at ``epochs`` stairs (neither is theirs: past the last stair the cosine rises again). The authors pass
    ``ceil(N_test / batch)`` (``fine_tuning/run.py`` lines 89 and 117: ``step_each_epoch`` is computed after
    ``reader_config`` was rebound to the test split) while an epoch is ``floor(N_train / batch)`` steps (their
    reader drops the last incomplete batch): CUB 182-step stairs in 187-step epochs. The trainer passes
    ``ceil(N / batch)`` of the split ``train.lr_stair`` names (``trainer.lr_stair``). Default: ``steps_per_epoch``.
    Cyclic is Smith's cyclical learning rate ("Cyclical Learning Rates for Training Neural Networks", WACV 2017),
    a RIFLE baseline: from ``lr * cyclic_base_lr_ratio`` up to ``lr`` in ``cyclic_step_epochs`` and back down,
    repeated (Paddle's ``CyclicLR``). The default 10-epoch cycle is the spacing of RIFLE's re-initializations with
    ``num_reinits: 3`` over 40 epochs, so the two compete on the same period.
    """
    if steps_per_epoch <= 0:
        raise ValueError("the training loader yields no batch (is the data set smaller than one batch?)")
    lr = float(train_cfg["lr"])
    warmup = train_cfg["warmup_epochs"] * steps_per_epoch
    total = train_cfg["epochs"] * steps_per_epoch
    if train_cfg["lr_schedule"] == "cosine":
        schedule = paddle.optimizer.lr.CosineAnnealingDecay(lr, T_max=max(1, total - warmup))
    elif train_cfg["lr_schedule"] == "cosine_epoch":
        stair, epochs = epoch_stair or steps_per_epoch, train_cfg["epochs"]
        schedule = paddle.optimizer.lr.LambdaDecay(lr, lambda step: staircase_cosine(1.0, step, stair, epochs))
    elif train_cfg["lr_schedule"] == "constant":
        schedule = paddle.optimizer.lr.LambdaDecay(lr, lambda _: 1.0)
    elif train_cfg["lr_schedule"] == "cyclic":
        schedule = paddle.optimizer.lr.CyclicLR(
            base_learning_rate=lr * train_cfg["cyclic_base_lr_ratio"], max_learning_rate=lr,
            step_size_up=max(1, round(train_cfg["cyclic_step_epochs"] * steps_per_epoch)),
            mode=train_cfg["cyclic_mode"])
    else:
        raise ValueError(f"unknown train.lr_schedule '{train_cfg['lr_schedule']}'")
    if warmup:
        schedule = paddle.optimizer.lr.LinearWarmup(schedule, warmup, start_lr=0.0, end_lr=lr)
    return schedule


def build_optimizer(parameters, train_cfg: dict, lr_scheduler) -> paddle.optimizer.Optimizer:
    """SGD with momentum and coupled L2 weight decay, as the authors (``Momentum(0.9)``, ``L2Decay(1e-4)``)."""
    clip = paddle.nn.ClipGradByGlobalNorm(train_cfg["grad_clip"]) if train_cfg["grad_clip"] else None
    return paddle.optimizer.Momentum(
        learning_rate=lr_scheduler, momentum=train_cfg["momentum"], parameters=parameters,
        weight_decay=paddle.regularizer.L2Decay(train_cfg["weight_decay"]) if train_cfg["weight_decay"] else None,
        grad_clip=clip, multi_precision=train_cfg["amp"] and train_cfg["amp_level"] == "O2")
