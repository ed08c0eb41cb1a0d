"""A name -> implementation table that configs, the command line and tests all look names up in.

One class for every such table (``models.registry``'s backbones, ``data.registry``'s readers): a name is registered
once, and an unknown name is refused with the close matches and the full list, worded alike everywhere.
"""
from __future__ import annotations

import difflib


class Registry(dict):
    """A ``dict`` of name -> entry whose ``kind`` ("model", "data set") words its errors."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def add(self, name: str, entry) -> None:
        if name in self:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self[name] = entry

    def names(self) -> list[str]:
        return sorted(self)

    def lookup(self, name: str):
        """The entry of ``name``; ValueError naming the close matches and every registered name otherwise."""
        if name not in self:
            close = difflib.get_close_matches(str(name), self, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(f"unknown {self.kind} '{name}'{hint}; available: {', '.join(self.names())}")
        return self[name]
