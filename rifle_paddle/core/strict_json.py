"""JSON that every reader accepts: Python's ``json`` writes NaN and infinities as bare ``NaN`` / ``Infinity``,
which are not JSON (strict readers, ``jq``, JavaScript's ``JSON.parse`` reject the whole file). A number that is not
finite is written as ``null`` (no value), and a write that would still hold one fails instead of writing it."""
from __future__ import annotations

import json
import math


def finite_or_none(value):
    """``value`` with every non-finite float, at any depth of dicts, lists and tuples, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def dumps(value, **kwargs) -> str:
    """``json.dumps`` of ``finite_or_none(value)``, strict (``allow_nan=False``)."""
    return json.dumps(finite_or_none(value), allow_nan=False, **kwargs)
