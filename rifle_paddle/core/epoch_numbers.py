"""Epoch numbers as a person reads them, and as the code counts them.

hapi, its callbacks and our checkpoints count epochs from 0: ``on_epoch_begin(0)`` starts the first one. Everything
a person reads counts from 1, as hapi's own ``Epoch 1/40`` line does: the console and ``train.log``,
``metrics.json`` (marked ``"epoch_numbering": "1-based"``) and VisualDL's epoch axis. The config's explicit epoch
lists (``rifle.epochs``) count the epochs finished before the event, which is the 0-based index of the epoch that
follows it: ``rifle.epochs: [10]`` re-draws the head after epoch 10 and before epoch 11, in the console's numbers.
"""
from __future__ import annotations

#: the value of ``metrics.json``'s ``epoch_numbering`` key; files without the key (written before it existed)
#: count from 0
NUMBERING = "1-based"


def shown(epoch_index: int) -> int:
    """The number a person reads for the 0-based epoch index hapi passes to callbacks."""
    return epoch_index + 1


def shown_record(record: dict | None) -> dict | None:
    """A copy of a per-epoch record (``{"epoch": index, ...}``) with its epoch as a person reads it."""
    if not isinstance(record, dict) or "epoch" not in record:
        return record
    return {**record, "epoch": shown(record["epoch"])}


def epoch_index(record: dict, metrics: dict) -> int:
    """The 0-based epoch index of a record read back from ``metrics``, whichever numbering the file uses."""
    return record["epoch"] - 1 if metrics.get("epoch_numbering") == NUMBERING else record["epoch"]
