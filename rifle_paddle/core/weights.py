"""Loading weights into a network, strictly: the one loader of training (pretrained weights, resume), evaluation,
export and so prediction.

Paddle's ``set_state_dict`` only warns about missing, unexpected or misshapen entries and loads the rest: weights of
another run, architecture or class count then give a partly random network that evaluates, exports and predicts
without a word. Here every disagreement is named (missing, unexpected, mis-shaped keys, a few of each with the
count) and nothing is loaded; floating tensors are cast to the network's dtypes (an fp32 file into an AMP O2
network, a half-precision file into an fp32 one).
"""
from __future__ import annotations

import paddle

from .precision import state_in_dtypes_of

#: how many keys of each kind a message names
SHOWN = 3


class WeightsMismatch(ValueError):
    """A state dict that does not fit the network; the message names the keys."""


def read_state(path: str) -> dict:
    """``paddle.load(path)``, refused with one line when the file is unreadable or holds no state dict."""
    try:
        state = paddle.load(path)
    except Exception as e:  # a truncated or foreign file fails in pickle, zipfile, numpy or Paddle's C++
        raise WeightsMismatch(f"cannot read weights file {path}: {type(e).__name__}: {e}") from None
    if not isinstance(state, dict):
        raise WeightsMismatch(f"{path} does not hold a state dict (got {type(state).__name__})")
    return state


def _some(keys: list[str]) -> str:
    return ", ".join(keys[:SHOWN]) + (f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")


def mismatches(network: paddle.nn.Layer, state: dict, skip: str | None = None) -> list[str]:
    """What keeps ``state`` from fitting ``network``: one phrase per kind (missing, unexpected, mis-shaped keys);
    empty when it fits. Keys under the prefix ``skip`` (e.g. ``fc.``) are left out on both sides."""
    def kept(keys):
        return [k for k in keys if not (skip and k.startswith(skip))]
    own = network.state_dict()
    missing = kept(k for k in own if k not in state)
    unexpected = kept(k for k in state if k not in own)
    shaped = kept(k for k in own if k in state and list(state[k].shape) != list(own[k].shape))
    problems = []
    if shaped:
        problems.append(f"{len(shaped)} mis-shaped: " + _some(
            [f"{k} {list(state[k].shape)} in the file vs {list(own[k].shape)} in the network" for k in shaped]))
    if missing:
        problems.append(f"{len(missing)} missing from the file: {_some(missing)}")
    if unexpected:  # e.g. ResNet-34 weights offered to a ResNet-18: every ResNet-18 key exists in them
        problems.append(f"{len(unexpected)} unexpected (not in the network): {_some(unexpected)}")
    return problems


def load_weights(network: paddle.nn.Layer, state: dict | str, what: str = "the network",
                 skip: str | None = None) -> list[str]:
    """Load ``state`` (a state dict or a ``.pdparams`` path) into ``network`` if it fits exactly, casting floating
    tensors to the network's dtypes; raise ``WeightsMismatch`` naming every kind of disagreement otherwise.
    ``skip``: a key prefix neither checked nor loaded (the new classifier of a fine-tuning run keeps its fresh
    values). Returns the keys loaded."""
    source = state if isinstance(state, str) else "the state dict"
    if isinstance(state, str):
        state = read_state(state)
    problems = mismatches(network, state, skip)
    if problems:
        raise WeightsMismatch(f"{source} does not fit {what}: " + "; ".join(problems))
    full = network.state_dict()  # skipped keys keep their values (and Paddle does not warn they were skipped)
    loaded = [k for k in full if not (skip and k.startswith(skip))]
    full.update(state_in_dtypes_of(network, {k: state[k] for k in loaded}))
    network.set_state_dict(full)
    return loaded
