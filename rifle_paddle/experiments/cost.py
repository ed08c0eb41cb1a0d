"""What a sweep costs before it starts: optimizer steps counted from the configs, time from a measured or given rate.

Steps of a run = ``train.epochs`` x steps per epoch, and steps per epoch = training images / ``data.batch_size``
(rounded down with ``data.drop_last``, up without: what the loader yields). The training images are read back from
a run of the same cell that has started (``metrics.json``: ``num_train``), else computed from the data set's
official split (``data.registry.expected_counts``) under the config's ``data.classes`` and ``data.train_per_class``;
a data set without official numbers (``folder``, ``filelist``) or subsampled by ``data.sample_rate`` is counted
once one of its runs has started.

Time: a run of the sweep that has finished an epoch gives its rate, training images per second of wall time
(``steps x batch / elapsed_s``, so evaluation and checkpoints are in it); it is applied to the runs of its cell, and
to cells of the same network and image size that have none. ``--rate 250img/s`` or ``--rate 4steps/s`` gives one
rate for every run instead (e.g. measured on the machine the sweep is meant for).
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass

from ..core.eta import format_duration

_RATE = re.compile(r"^\s*(?P<value>\d+(\.\d*)?|\.\d+)\s*(?P<unit>img/s|images/s|steps/s|step/s|it/s)\s*$")


class RateError(ValueError):
    """A ``--rate`` that is not a number with a unit."""


@dataclass(frozen=True)
class Rate:
    """A training speed: ``value`` images per second (``per_step=False``) or optimizer steps per second."""

    value: float
    per_step: bool
    source: str

    def seconds(self, steps: int, batch_size: int) -> float:
        return steps / self.value if self.per_step else steps * batch_size / self.value

    def __str__(self) -> str:
        return f"{round(self.value, 1):g} {'steps' if self.per_step else 'img'}/s ({self.source})"


def parse_rate(text: str) -> Rate:
    """``'250img/s'`` -> 250 images per second; ``'4 steps/s'`` -> 4 optimizer steps per second."""
    match = _RATE.match(text)
    if not match or float(match["value"]) <= 0:
        raise RateError(f"--rate {text!r}: expected a positive speed with its unit, e.g. 250img/s or 4steps/s")
    return Rate(float(match["value"]), match["unit"] not in ("img/s", "images/s"), "--rate")


def _metrics(run_dir: str) -> dict | None:
    try:
        with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def official_train_images(data: dict) -> int | None:
    """Training images of ``data`` (a config's ``data`` section) from the data set's official numbers, or None."""
    from ..data import expected_counts
    try:
        expected = expected_counts(data["name"], data)
    except ValueError:  # an unknown data set: the plan's config check reports it
        return None
    if expected is None or (data.get("sample_rate") or 1.0) != 1.0:
        return None
    classes = data.get("classes")
    per_class, cap = expected.train_per_class, data.get("train_per_class")
    if classes:
        if per_class is None:  # an unbalanced data set: which classes are kept changes the count
            return None
        return len(classes) * (min(per_class, cap) if cap else per_class)
    if cap and per_class is not None and cap < per_class:
        return expected.classes * cap
    # (an unbalanced data set capped by train_per_class keeps its official count, an upper bound; Caltech-256's
    # official numbers already include its cap)
    return expected.train


def steps_per_epoch(train_images: int, batch_size: int, drop_last: bool) -> int:
    return train_images // batch_size if drop_last else math.ceil(train_images / batch_size)


@dataclass
class RunCost:
    name: str
    steps: int | None  # in all; None: unknown
    steps_done: int
    batch_size: int
    seconds_left: float | None
    rate: Rate | None


def measured_rate(run_dir: str, batch_size: int) -> Rate | None:
    """The images per second of a run that has finished at least one epoch, from its ``metrics.json``."""
    metrics = _metrics(run_dir)
    if not metrics or not metrics.get("epochs") or not metrics.get("steps") or not metrics.get("elapsed_s"):
        return None
    return Rate(metrics["steps"] * batch_size / metrics["elapsed_s"], False,
                f"measured: {os.path.basename(run_dir)}, {len(metrics['epochs'])} epoch(s)")


def plan_cost(jobs: list, rate: Rate | None = None) -> list[RunCost]:
    """The cost of every run of the plan (``sweep.Job``s with their ``config``), done ones included."""
    by_cell, by_shape, train_images = {}, {}, {}
    for job in jobs:  # what the runs that have started tell: their size, their speed
        data = job.config["data"]
        metrics = _metrics(job.run_dir) or {}
        if metrics.get("num_train"):
            train_images.setdefault(job.cell.key, metrics["num_train"])
        measured = measured_rate(job.run_dir, data["batch_size"])
        if measured is not None:
            by_cell.setdefault(job.cell.key, measured)
            by_shape.setdefault(_shape(job.config), measured)
    costs = []
    for job in jobs:
        data, epochs = job.config["data"], job.config["train"]["epochs"]
        images = train_images.get(job.cell.key) or official_train_images(data)
        steps = None if images is None else epochs * steps_per_epoch(images, data["batch_size"], data["drop_last"])
        done = steps if job.state == "done" and steps is not None else (_metrics(job.run_dir) or {}).get("steps", 0)
        run_rate = rate or by_cell.get(job.cell.key) or by_shape.get(_shape(job.config))
        left = None
        if steps is not None and run_rate is not None:
            left = run_rate.seconds(max(0, steps - done), data["batch_size"])
        costs.append(RunCost(job.name, steps, done, data["batch_size"], left, run_rate))
    return costs


def _shape(config: dict) -> tuple:
    return config["model"]["arch"], config["data"]["image_size"]


def summary(costs: list[RunCost], parallel: int) -> list[str]:
    """The dry run's cost lines: steps in all and left, and the time left (in all, and with ``parallel`` at once)."""
    known = [c for c in costs if c.steps is not None]
    unknown = [c.name for c in costs if c.steps is None]
    lines = [f"optimizer steps: {sum(c.steps for c in known):,} in all, "
             f"{sum(max(0, c.steps - c.steps_done) for c in known):,} left"
             + (f" ({len(unknown)} run(s) not counted: their data set's size is known once one of its runs has "
                f"started: {', '.join(unknown[:3])}{', ...' if len(unknown) > 3 else ''})" if unknown else "")]
    to_time = [c for c in known if c.steps > c.steps_done]
    timed = [c for c in to_time if c.seconds_left is not None]
    if not to_time and not unknown:
        lines.append("time: nothing left to run")
        return lines
    if not timed:
        lines.append("time: unknown until one epoch of one cell has run (the estimate then reads its metrics.json),"
                     " or give a rate: --rate 250img/s or --rate 4steps/s")
        return lines
    total = sum(c.seconds_left for c in timed)
    rates = sorted({str(c.rate) for c in timed})
    at_once = min(parallel, len(timed))
    line = f"time: about {format_duration(total)} of training left"
    if at_once > 1:
        line += f", about {format_duration(total / at_once)} with {at_once} runs at once"
    line += f"; at {'; '.join(rates[:3])}{' ...' if len(rates) > 3 else ''}"
    if len(timed) < len(to_time):
        line += f" ({len(to_time) - len(timed)} run(s) without a rate not included)"
    lines.append(line)
    return lines
