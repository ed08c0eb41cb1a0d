"""One registry of data set readers (``data.name``). A reader parses a native layout into samples.

Next to each reader the registry keeps what is known about its data set without reading it: the official counts
(``python -m rifle_paddle.app.check_data`` compares a download against them) and the label levels it offers
(``data.label_level``).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from ..config.schema import register_choices
from ..core.registry import Registry


class Split(NamedTuple):
    """One split of a data set as a reader found it.

    ``samples`` are ``(key, label)`` pairs: ``key`` is an image file path, or an index into ``images`` for data sets
    distributed as arrays (CIFAR: ``images`` is then N x H x W x 3 uint8 RGB). ``classes`` are the class names,
    position = label, identical for every split of a data set. ``crop_bottom`` rows are cut from the bottom of every
    image (FGVC-Aircraft's copyright banner).
    """

    samples: list[tuple[str | int, int]]
    classes: list[str]
    images: np.ndarray | None = None
    crop_bottom: int = 0


class Expected(NamedTuple):
    """Official numbers of a data set under the configured protocol: images per split, classes, and the exact
    images per class of a split where the official split is balanced (None: not balanced, not checked)."""

    train: int
    test: int
    classes: int
    train_per_class: int | None = None
    test_per_class: int | None = None


class _Entry(NamedTuple):
    read: Callable[[dict, str], Split]
    expected: Callable[[dict], Expected] | None
    label_levels: tuple[str, ...]
    needs_root: bool


_READERS = Registry("data set")


def register_reader(name: str, expected: Callable[[dict], Expected] | None = None,
                    label_levels: tuple[str, ...] = (), needs_root: bool = True):
    """Register ``fn(data_cfg: dict, split: 'train' | 'test') -> Split`` as ``data.name: <name>``.

    ``expected(data_cfg)`` gives the official counts for the configured protocol (None for generic layouts);
    ``label_levels`` are the values ``data.label_level`` may take, the first being the default; ``needs_root``:
    False for a reader that finds its data without ``data.root`` (a system-wide copy, absolute paths in lists).
    """
    def decorator(fn):
        _READERS.add(name, _Entry(fn, expected, tuple(label_levels), needs_root))
        register_choices("data.name", [name])
        register_choices("data.label_level", label_levels)
        return fn
    return decorator


def list_readers() -> list[str]:
    return _READERS.names()


def _entry(name: str) -> _Entry:
    return _READERS.lookup(name)


def get_reader(name: str) -> Callable[[dict, str], Split]:
    return _entry(name).read


def expected_counts(name: str, data_cfg: dict) -> Expected | None:
    """The official counts of data set ``name`` under ``data_cfg``'s protocol, or None if it has none."""
    expected = _entry(name).expected
    return expected(data_cfg) if expected is not None else None


def label_levels(name: str) -> tuple[str, ...]:
    return _entry(name).label_levels


def needs_root(name: str) -> bool:
    return _entry(name).needs_root
