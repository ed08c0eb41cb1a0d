"""The training step the engine runs and the methods replace: forward, loss, backward, no optimizer step.

``TransferModel.train_batch`` (the engine) calls a ``TrainStep`` for each batch; a regularizer's step
(``regularizers.step``) or DisturbLabel (``tricks``) subclasses it. It lives below both so that the methods do not
import the engine that runs them.
"""
from __future__ import annotations

import paddle
from paddle.hapi.model import to_list

from . import paddle_compat


def as_tensor(x) -> paddle.Tensor:
    """A batch as a tensor, without the copy ``paddle.to_tensor`` makes of a tensor (``ImageLoader`` and
    ``paddle.io.DataLoader`` already yield tensors; a user's own loop may pass NumPy arrays)."""
    return x if isinstance(x, paddle.Tensor) else paddle.to_tensor(x)


class TrainStep:
    """Forward and backward of one training batch; returns the loss terms to log (first: the task loss).

    Subclasses add terms to the loss or change how gradients are formed; they must leave ``.grad`` filled on
    the parameters (scaled by ``scaler`` when AMP is on) and must not step the optimizer.
    """

    def __call__(self, model, inputs: list, labels: list, scaler) -> list[paddle.Tensor]:
        outputs = model.forward_train(inputs)
        losses = to_list(paddle_compat.model_loss(model)(*(to_list(outputs) + labels)))
        total = paddle.add_n(losses) if len(losses) > 1 else losses[0]
        (scaler.scale(total) if scaler is not None else total).backward()
        model.update_metrics(outputs, labels)
        return losses
