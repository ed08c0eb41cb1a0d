"""One run per card: which cards a sweep may use, and what each of its worker processes is given.

A sweep on a machine with several GPUs runs as many runs at once as it has cards. Each run is a fresh process that
sees only its own card: ``CUDA_VISIBLE_DEVICES=<card>`` is in the process's environment from its start (CUDA reads
it once, when Paddle first touches the driver, so a process cannot move itself to another card later), and Paddle
calls that card ``gpu:0``. The machine's cores are divided between the runs at once, so that N runs do not each
start a thread or a loader process per core:

- Paddle's CPU kernel threads (``$RIFLE_PADDLE_CPU_THREADS``, read by ``engine.trainer.cpu_threads``) and OpenMP's
  (``$OMP_NUM_THREADS``): ``cores // runs`` each, unless the user's environment already sets them;
- the loader's worker processes (``data.num_workers``): lowered to ``cores // runs`` where a config asks for more,
  never raised, unless the user passed ``-o data.num_workers=...`` for the sweep.

A scheduler's job (``experiments.scheduler``) gets the same treatment with the cores the scheduler allotted it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..engine.trainer import CPU_THREADS_ENV

CARDS_ENV = "CUDA_VISIBLE_DEVICES"
THREAD_ENVS = (CPU_THREADS_ENV, "OMP_NUM_THREADS")


class CardError(ValueError):
    """``--gpus`` / ``--workers`` that cannot be honoured (one line, for the console)."""


def cuda_card_count() -> int:
    """Cards this process can see (0 with the CPU wheel of Paddle)."""
    import paddle
    if not paddle.is_compiled_with_cuda():
        return 0
    return paddle.device.cuda.device_count()


def visible_cards(count: int, environ=None) -> list[str]:
    """The names of the ``count`` cards this process sees, as ``CUDA_VISIBLE_DEVICES`` names them for a child: the
    parent's own ``CUDA_VISIBLE_DEVICES`` list when it has one (a scheduler or the user chose those cards), else
    ``0 .. count-1``."""
    environ = os.environ if environ is None else environ
    listed = environ.get(CARDS_ENV)
    if listed is None:
        return [str(i) for i in range(count)]
    return [card.strip() for card in listed.split(",") if card.strip()][:count]


def parse_cards(text: str, visible: list[str], has_cuda: bool) -> list[str]:
    """``--gpus 0,1,3`` -> ``['0', '1', '3']``, each a visible card. A card may be listed twice to run two runs on
    it at once (docs/tables.md says what to expect)."""
    if not has_cuda:
        raise CardError(f"--gpus {text}: this Paddle has no CUDA support (the CPU wheel), so there is no card to "
                        f"run on; install paddlepaddle-gpu, or leave --gpus out to run on the CPU")
    cards = [card.strip() for card in text.split(",") if card.strip()]
    if not cards:
        raise CardError(f"--gpus {text!r}: expected card numbers such as 0,1,2,3")
    for card in cards:
        if card not in visible:
            seen = ", ".join(visible) if visible else "none"
            where = f" (CUDA_VISIBLE_DEVICES={os.environ[CARDS_ENV]})" if CARDS_ENV in os.environ else ""
            raise CardError(f"--gpus {text}: there is no card {card} on this machine; visible cards: {seen}{where}")
    return cards


@dataclass(frozen=True)
class Slot:
    """One of the runs a sweep has going at once: its card (None: the CPU) and its share of the cores."""

    card: str | None
    threads: int

    def environment(self, environ=None) -> dict[str, str]:
        """The variables to set for a worker process in this slot (the user's own thread settings are kept)."""
        environ = os.environ if environ is None else environ
        env = {name: str(self.threads) for name in THREAD_ENVS if not environ.get(name)}
        if self.card is not None:
            env[CARDS_ENV] = self.card
        return env

    def describe(self) -> str:
        return f"card {self.card}" if self.card is not None else f"{self.threads} thread(s)"


def make_slots(workers: int | None, cards: list[str], cores: int) -> list[Slot]:
    """The slots of a sweep: one per card (``workers`` of them at most, by default all), or ``workers`` on the CPU.

    More workers than cards is refused: two runs on one card must be asked for by listing the card twice."""
    if cards:
        n = workers or len(cards)
        if n > len(cards):
            raise CardError(f"--workers {n} but only {len(cards)} card(s) to run on ({','.join(cards)}): the sweep "
                            f"runs one run per card; to run two on one card, list it twice (e.g. --gpus 0,0)")
        chosen: list[str | None] = list(cards[:n])
    else:
        n = workers or 1
        chosen = [None] * n
    threads = max(1, cores // n)
    return [Slot(card, threads) for card in chosen]


def loader_overrides(configured_workers: int | None, user_overrides: list[str], share: int) -> list[str]:
    """``data.num_workers`` lowered to ``share`` (the cores of one slot) where the config asks for more; nothing if
    the user set it for the sweep (``-o data.num_workers=...``), or the config loads in the main process (0)."""
    if any(o.startswith("data.num_workers=") for o in user_overrides):
        return []
    if configured_workers is None or configured_workers <= share:
        return []
    return [f"data.num_workers={share}"]


def allotted_cores() -> int:
    """The cores this process may use: its CPU affinity (what SLURM's ``--cpus-per-task`` or ``taskset`` gave it),
    not ``os.cpu_count()`` (every core of the node)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
