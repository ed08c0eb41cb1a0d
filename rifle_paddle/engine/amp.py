"""Mixed precision (``train.amp``) that works on first contact: the pieces of Paddle's AMP the engine replaces.

Paddle 3.3's AMP as hapi drives it fails in ways a CPU test cannot see, so each workaround lives here, with the
reason:

- ``LossScaler``: ``GradScaler`` lowers the loss scale after an overflow with a message that calls ``float()`` on
  its shape-[1] scale tensor; NumPy >= 2 refuses that (``TypeError: only 0-dimensional arrays can be converted``),
  so the first overflow (likely with the 2^15 initial scale) ended the run.
"""
from __future__ import annotations

import logging

import paddle

log = logging.getLogger("rifle_paddle")


class LossScaler(paddle.amp.GradScaler):
    """``paddle.amp.GradScaler`` whose dynamic loss-scale update survives NumPy 2 (see the module docstring).

    The update rule is Paddle's (``AmpScaler._update``): after ``decr_every_n_nan_or_inf`` overflowing steps the
    scale is multiplied by ``decr_ratio``, after ``incr_every_n_steps`` clean steps by ``incr_ratio``; only the
    message reads the scale through ``.item()`` and goes to the log instead of stdout. Same ``state_dict``, so
    checkpoints written with either class load into the other.
    """

    def _update(self):
        if not self._enable:
            return
        if self._cache_found_inf:
            self._incr_count = 0
            self._decr_count += 1
            if self._decr_count == self._decr_every_n_nan_or_inf:
                before = float(self._scale.item())
                self._scale = self._scale * self._decr_ratio
                self._decr_count = 0
                log.info("AMP: inf or nan in the gradients, step skipped; loss scale %g -> %g", before,
                         before * self._decr_ratio)
        else:
            self._decr_count = 0
            self._incr_count += 1
            if self._incr_count == self._incr_every_n_steps:
                self._scale = self._scale * self._incr_ratio
                self._incr_count = 0

    @property
    def loss_scale(self) -> float:
        """The current loss scale (1 when disabled)."""
        return float(self._scale.item()) if self._enable else 1.0
