"""Weights as float32 whatever the training precision: AMP O2 keeps half-precision parameters and the optimizer's
fp32 master copies; checkpoints, L2-SP's distance and evaluation must read the exact fp32 values."""
from __future__ import annotations

import paddle

from . import paddle_compat

HALF = (paddle.float16, paddle.bfloat16)


def master_weights(optimizer) -> dict:
    """``{parameter name: fp32 master weight}`` of an O2 optimizer (empty otherwise)."""
    return paddle_compat.master_weights(optimizer)


def fp32_state_dict(network: paddle.nn.Layer, optimizer=None) -> dict:
    """``network.state_dict()`` with every half-precision tensor in float32: the optimizer's master weight where it
    has one (exact: the value training updates), else cast (buffers). Without AMP O2: the state dict itself."""
    masters = master_weights(optimizer)
    state = network.state_dict()
    return {key: (masters.get(t.name, t).astype("float32") if t.dtype in HALF else t) for key, t in state.items()}


def state_in_dtypes_of(network: paddle.nn.Layer, state: dict) -> dict:
    """``state`` with each floating tensor cast to the dtype of the network's tensor of the same name, so an fp32
    checkpoint loads into an O2 network and a half-precision one into an fp32 network (``set_state_dict`` refuses
    a dtype mismatch). Shapes and names are the caller's to check."""
    own = network.state_dict()
    cast = {}
    for key, value in state.items():
        target = own.get(key)
        if target is not None and target.is_floating_point():
            value = value if isinstance(value, paddle.Tensor) else paddle.to_tensor(value)
            if value.dtype != target.dtype:
                value = value.astype(target.dtype)
        cast[key] = value
    return cast
