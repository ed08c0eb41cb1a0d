"""Images per second, time waiting for data, and the loader workers a GPU needs: the arithmetic behind the
training log's throughput lines (``records.throughput``), the data checker's estimate and
``benchmarks/bench_input_pipeline.py``.

A training step is split in two by hapi's callbacks: the **wait**, from the end of one step to the moment the
next batch has arrived (the loader's time the model sits idle), and the **compute**, from there to the end of the
step (forward, backward, optimizer, and on a GPU the copy of the loss to the host that ends every hapi step). The
loader's share of a step is ``wait / (wait + compute)``; with enough workers prefetching it is close to 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

#: Loader share of step time above which the run warns once (``LOADER_SHARE_WARNING`` of 0.3: the model idles
#: 30 % of every step, so enough workers would make training 1 / (1 - 0.3) = 1.43x as fast. Below about a fifth
#: the wait is within what a checkpoint write, Python's garbage collector or a noisy neighbour on a shared machine
#: add to a log window, and not worth a warning).
LOADER_SHARE_WARNING = 0.3

#: Published ResNet-50 training throughput of one GPU, images/s, for the workers table of docs/performance.md and
#: the data checker's estimate: ``(gpu, precision, images/s, batch per GPU, source)``. None of the sources publishes
#: batch 32; theirs is 256 per GPU, and a smaller batch trains fewer images/s on the same card, so at the papers'
#: batch of 32 these are upper bounds. "fp32" on an A100 is TF32, its default fp32 math.
PUBLISHED_RESNET50 = (
    ("V100 16GB", "fp32", 367, 256, "NVIDIA DeepLearningExamples PyTorch/Classification/ConvNets/resnet50v1.5, DGX-1"),
    ("V100 16GB", "amp", 1200, 256, "NVIDIA DeepLearningExamples PyTorch/Classification/ConvNets/resnet50v1.5, DGX-1"),
    ("A100 80GB", "tf32", 993, 256, "NVIDIA DeepLearningExamples PaddlePaddle/Classification/RN50v1.5, DGX A100"),
    ("A100 80GB", "amp", 2711, 256, "NVIDIA DeepLearningExamples PaddlePaddle/Classification/RN50v1.5, DGX A100"),
)


@dataclass
class Window:
    """What a stretch of training steps took: the images they trained, the seconds waiting for batches and the
    seconds computing them."""
    steps: int = 0
    images: int = 0
    wait_s: float = 0.0
    compute_s: float = 0.0

    def add(self, images: int, wait_s: float, compute_s: float) -> None:
        self.steps += 1
        self.images += images
        self.wait_s += wait_s
        self.compute_s += compute_s

    @property
    def elapsed_s(self) -> float:
        return self.wait_s + self.compute_s

    @property
    def images_per_s(self) -> float:
        return self.images / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def step_s(self) -> float:
        return self.elapsed_s / self.steps if self.steps else 0.0

    @property
    def loader_share(self) -> float:
        return self.wait_s / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def compute_images_per_s(self) -> float:
        """The rate the model would train at if batches were always ready."""
        return self.images / self.compute_s if self.compute_s > 0 else 0.0


def workers_needed(images_per_s: float, per_worker_images_per_s: float) -> int:
    """Loader worker processes that keep up with a model training ``images_per_s``, each worker preparing
    ``per_worker_images_per_s`` (decoded and augmented; workers scale linearly while each has a core of its own)."""
    if per_worker_images_per_s <= 0:
        raise ValueError("the per-worker rate must be positive")
    return max(1, math.ceil(images_per_s / per_worker_images_per_s))


def workers_estimate(per_worker_images_per_s: float, cores: int, configured: int) -> str:
    """One paragraph: the workers each published GPU figure needs at the measured per-worker rate, and what this
    machine has (``cores``) and is configured for (``configured``: ``data.num_workers``)."""
    lines = [f"input pipeline: {per_worker_images_per_s:.0f} images/s per loader worker (1 core each); this machine "
             f"has {cores} cores, data.num_workers={configured} "
             f"(about {min(configured, cores) * per_worker_images_per_s:.0f} images/s with a core per worker)"]
    for gpu, precision, rate, batch, _ in PUBLISHED_RESNET50:
        need = workers_needed(rate, per_worker_images_per_s)
        beyond = "" if need <= cores else f" (more than the {cores} cores here)"
        lines.append(f"  ResNet-50 on {gpu} {precision} (~{rate} images/s published, batch {batch}): "
                     f"{need} worker{'s' if need > 1 else ''}{beyond}")
    return "\n".join(lines)
