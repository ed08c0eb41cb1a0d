"""Mixed precision (``train.amp``) that works on first contact: the pieces of Paddle's AMP the engine replaces.

Paddle 3.3's AMP as hapi drives it fails in ways a CPU test cannot see, so each workaround lives here, with the
reason:

- ``LossScaler``: ``GradScaler`` lowers the loss scale after an overflow with a message that calls ``float()`` on
  its shape-[1] scale tensor; NumPy >= 2 refuses that (``TypeError: only 0-dimensional arrays can be converted``),
  so the first overflow (likely with the 2^15 initial scale) ended the run.
- ``convert_for_o2``: O2 casts the network to half precision. hapi does it in ``prepare``, after its constructor
  has wrapped the network in DataParallel, whose gradient buckets then expect fp32 (backward fails in the reducer
  on several cards; Paddle's own ``decorate`` refuses a DataParallel for that reason). The engine converts before
  building the model. It also seeds the optimizer's fp32 master weights with the exact pretrained values: Paddle
  creates them at the first step from the already-rounded half weights, losing the pretrained precision for good.
- ``fp32_state_dict`` / ``state_in_dtypes_of`` (defined in ``core/precision.py``, where the methods below the engine
  reach them too; re-exported here): under O2 the live weights are half precision; checkpoints a user keeps
  (``best.pdparams``, ``last.pdparams``) hold the fp32 master weights, so ``eval.py`` loads them into an fp32
  network, and a half-precision file (older runs) is cast on load.
"""
from __future__ import annotations

import logging

import paddle

from ..core import paddle_compat
from ..core.precision import HALF, fp32_state_dict, master_weights, state_in_dtypes_of  # noqa: F401 (re-exported)

log = logging.getLogger("rifle_paddle")


class LossScaler(paddle.amp.GradScaler):
    """``paddle.amp.GradScaler`` whose dynamic loss-scale update survives NumPy 2 (see the module docstring).

    The update rule is Paddle's (``AmpScaler._update``): after ``decr_every_n_nan_or_inf`` overflowing steps the
    scale is multiplied by ``decr_ratio``, after ``incr_every_n_steps`` clean steps by ``incr_ratio``; only the
    message reads the scale through ``.item()`` and goes to the log instead of stdout. Same ``state_dict``, so
    checkpoints written with either class load into the other.
    """

    def _update(self):  # GradScaler.update's hook (paddle_compat.update_loss_scale)
        lowered = paddle_compat.update_loss_scale(self)
        if lowered is not None:
            log.info("AMP: inf or nan in the gradients, step skipped; loss scale %g -> %g", *lowered)

    @property
    def loss_scale(self) -> float:
        """The current loss scale (1 when disabled)."""
        return paddle_compat.loss_scale(self)


#: the half precision of O2 in the engine (``build_model``); the multi-card CPU tests put float64 in its place
HALF_DTYPE = "float16"


@paddle.no_grad()
def convert_for_o2(network: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer | None,
                   dtype: str = "float16") -> None:
    """Cast ``network`` in place for AMP O2 as ``paddle.amp.decorate`` does (batch norm stays fp32) and give
    ``optimizer`` fp32 master weights holding the exact values from before the cast (see the module docstring).

    Call it before anything wraps the network (``TransferModel``, i.e. DataParallel). hapi's ``prepare`` then
    decorates again, which finds nothing left to cast. ``dtype``: float16 (GPU), bfloat16; CPU tests use other
    floating types as stand-ins (Paddle's own ``decorate`` does nothing off the GPU).
    """
    exact = {p.name: p.detach().clone() for p in network.parameters() if p.dtype == paddle.float32}
    paddle_compat.cast_for_o2(network, dtype)
    if optimizer is None:
        return
    for p in network.parameters():
        if p.name in exact and p.dtype in HALF:  # the ones the optimizer keeps a master weight of
            paddle_compat.seed_master_weight(optimizer, p, exact[p.name])


def is_converted(network: paddle.nn.Layer) -> bool:
    """Whether ``network`` holds parameters of another floating type than float32 (``convert_for_o2`` ran)."""
    return any(p.is_floating_point() and p.dtype != paddle.float32 for p in network.parameters())
