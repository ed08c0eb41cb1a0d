"""Time left for a batch of similar units of work: the estimator behind the epoch lines of a run, a sweep's
lines per run and DELTA's channel scoring. Plain arithmetic (the mean duration of the finished units times the
units left), written down as one log line rather than drawn as a bar, so that a log file can hold it."""
from __future__ import annotations

import time


def format_duration(seconds: float) -> str:
    """``45 s``, ``7 min 05 s``, ``2 h 03 min``: as precise as a person planning their day needs."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {(seconds % 3600) // 60:02d} min"


class Eta:
    """Time left for ``total`` units of similar work after ``done`` of them took ``elapsed`` seconds, with
    ``parallel`` units running at once (a sweep's workers)."""

    def __init__(self, total: int, parallel: int = 1, clock=time.monotonic):
        self.total, self.parallel, self.clock = total, max(1, parallel), clock
        self.durations: list[float] = []
        self.started = clock()

    def add(self, seconds: float) -> None:
        self.durations.append(seconds)

    @property
    def done(self) -> int:
        return len(self.durations)

    def left_s(self, skipped: int = 0) -> float | None:
        """Estimated seconds for the units not done yet (``skipped`` of them were done before this process
        started, and need no time); None before the first unit has finished."""
        if not self.durations:
            return None
        mean = sum(self.durations) / len(self.durations)
        remaining = max(0, self.total - skipped - self.done)
        return mean * -(-remaining // self.parallel)  # ceil: a last partial round takes a whole unit

    def summary(self, what: str, skipped: int = 0) -> str:
        left = self.left_s(skipped)
        took = format_duration(self.clock() - self.started)
        if left is None:
            return f"{what}: nothing finished yet"
        finish = time.strftime("%H:%M", time.localtime(time.time() + left))
        return f"{what}: {took} so far, about {format_duration(left)} left (ends near {finish})"
