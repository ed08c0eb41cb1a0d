"""A config section from keyword arguments, for the public API's constructors.

``build_dataset("cub200", root=..., split="train")`` and ``install_tricks(network, dropout=True)`` take the keys of
their config section as keywords; every key left out takes its default from ``schema.SCHEMA``, the one declaration
of the defaults, and every value is checked as a config file's would be. The engine passes its validated section
to the same functions, so a user's own loop and a configured run build the same things by the same code.
"""
from __future__ import annotations

import difflib

from .loader import section_problems
from .schema import SCHEMA, defaults


def keyword_section(section: str, given: dict, caller: str) -> dict:
    """``SCHEMA[section]``'s defaults overridden by ``given``, checked; a new dict (``given`` is not changed).

    A key the section does not declare raises ``TypeError`` (what Python raises for an unexpected keyword) naming
    the close matches and every allowed key; a bad value raises ``ValueError`` naming each problem. Both are one
    line. Checks that need other sections or a registry (``data.name``) are left to the code that uses the value.
    """
    fields = SCHEMA[section]
    unknown = [key for key in given if key not in fields]
    if unknown:
        close = [m for key in unknown for m in difflib.get_close_matches(str(key), fields, n=1)]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise TypeError(f"{caller}() got an unexpected keyword argument {', '.join(map(repr, unknown))}{hint}; "
                        f"allowed: {', '.join(fields)}")
    values = {**defaults()[section], **given}
    problems = section_problems(section, values)
    if problems:
        raise ValueError(f"{caller}(): {'; '.join(problems)}")
    return values
