"""Decoded-and-augmented images per second of one loader worker, at the papers' scale, and the workers a GPU needs.

A loader worker runs, per image, exactly what ``ImageClassificationDataset.__getitem__`` runs in ``train.py``: read
the file, decode the JPEG, the training transform, uint8 CHW out (normalization happens per batch, outside the
workers: ``data/loader.py``). This measures that in one process on one thread (``cv2.setNumThreads(1)``,
``OMP_NUM_THREADS=1``: a worker is one process on one core), over generated JPEGs shaped like CUB-200-2011's: 500x375
(its typical size), quality 90, photographic detail (a sum of smooth random fields at several scales, 1/f-like as
natural images are, plus fine grain, rather than flat colour, which would decode unrealistically fast).

Pipelines (``data.train_transform`` / ``data.resampling``):

* ``authors / bilinear``: the paper configs' (``configs/base.yaml``): full decode, shorter side to 256 with plain
  bilinear, random 224 crop, flip;
* ``authors / antialiased``: the same with the library's default resampling (decode at a reduced JPEG scale when
  the result keeps enough pixels, area-average then bilinear);
* ``random_resized_crop / antialiased``: the library's default training transform;
* ``eval``: the test transform (resize 256, centre crop 224), what ``eval.py`` and the test pass run.

Rates are ``images / process_time`` (the CPU one worker spends, robust to other load on a shared machine) and
``images / wall time``; the medians of ``--repeats`` passes. Then, for the published ResNet-50 training throughput
of current GPUs (``rifle_paddle.core.throughput.PUBLISHED_RESNET50``, sources in docs/performance.md), the loader
workers each needs at the measured rate of the paper configs' pipeline.

    python benchmarks/bench_input_pipeline.py              # about 30 s on one core
    python benchmarks/bench_input_pipeline.py --images 200 --repeats 5
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from rifle_paddle.core.throughput import PUBLISHED_RESNET50, workers_needed  # noqa: E402
from rifle_paddle.data import ImageClassificationDataset  # noqa: E402
from rifle_paddle.data.registry import Split  # noqa: E402
from rifle_paddle.data.transforms import authors_train_transform, eval_transform, train_transform  # noqa: E402

CUB_SIZE = (375, 500)  # height, width: CUB-200-2011's most common image shape
QUALITY = 90


def photograph(rng: np.random.Generator, size=CUB_SIZE) -> np.ndarray:
    """An RGB uint8 image with a natural image's spread of detail: smooth random fields whose amplitude falls with
    their frequency (octaves of upsampled noise, from 4 cells across to 250, amplitude x0.8 per octave) plus
    per-pixel grain; at quality 90 a 500x375 one is about 90 KB, as CUB-200's files are."""
    height, width = size
    img = np.zeros((height, width, 3), np.float32)
    amplitude = 60.0
    for cells in (4, 8, 16, 32, 64, 128, 250):  # a coarse grid of random colours, upsampled smoothly: one octave
        field = rng.normal(0, 1, size=(max(2, cells * height // width), cells, 3)).astype(np.float32)
        img += amplitude * cv2.resize(field, (width, height), interpolation=cv2.INTER_CUBIC)
        amplitude *= 0.8
    img += rng.normal(0, 8, size=img.shape)  # sensor grain
    img += rng.uniform(60, 190, size=3)  # the scene's mean colour
    return np.clip(img, 0, 255).astype(np.uint8)


def write_jpegs(directory: str, count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = os.path.join(directory, f"{i:04d}.jpg")
        cv2.imwrite(path, cv2.cvtColor(photograph(rng), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
        paths.append(path)
    return paths


PIPELINES = {
    "authors / bilinear (paper configs)": lambda: authors_train_transform(224, 256, antialias=False),
    "authors / antialiased": lambda: authors_train_transform(224, 256, antialias=True),
    "random_resized_crop / antialiased": lambda: train_transform(224),
    "eval (resize 256, centre crop 224)": lambda: eval_transform(224, 256, antialias=True),
}


def one_pass(dataset: ImageClassificationDataset) -> tuple[float, float]:
    """(images per CPU second, images per wall second) of reading every image of ``dataset`` once."""
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(len(dataset)):
        image, _ = dataset[i]
        assert image.shape == (3, 224, 224) and image.dtype == np.uint8
    return len(dataset) / (time.process_time() - cpu), len(dataset) / (time.perf_counter() - wall)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100, help="generated JPEGs (default 100)")
    parser.add_argument("--repeats", type=int, default=3, help="passes per pipeline; medians are reported")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    np.random.seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_jpegs(tmp, args.images)
        kb = statistics.mean(os.path.getsize(p) for p in paths) / 1024
        print(f"{args.images} generated JPEGs, {CUB_SIZE[1]}x{CUB_SIZE[0]}, quality {QUALITY}, {kb:.0f} KB on "
              f"average (CUB-200-2011: 11,788 images in 1.1 GB, about 95 KB each); one process, one thread\n")
        split = Split([(p, 0) for p in paths], ["class"])
        rates = {}
        print(f"{'pipeline (data.train_transform / data.resampling)':<44} {'img/s (CPU)':>12} {'img/s (wall)':>13}")
        for name, make in PIPELINES.items():
            dataset = ImageClassificationDataset.from_split(split, make(), name="bench")
            dataset[0]  # warm-up: imports, OpenCV's first call
            runs = [one_pass(dataset) for _ in range(args.repeats)]
            cpu, wall = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
            rates[name] = cpu
            print(f"{name:<44} {cpu:>12.0f} {wall:>13.0f}")
        paper = rates["authors / bilinear (paper configs)"]
        default = rates["authors / antialiased"]
        print("\nloader workers (one core each) a ResNet-50 needs at its published training rate (batch 256 per\n"
              "GPU; at the papers' batch of 32 a GPU trains fewer images/s, so these are upper bounds;\n"
              "docs/performance.md):")
        print(f"{'GPU':<12} {'precision':<9} {'img/s':>6} {'batch':>5} {'paper configs':>14} {'antialiased':>12}")
        for gpu, precision, rate, batch, _ in PUBLISHED_RESNET50:
            print(f"{gpu:<12} {precision:<9} {rate:>6} {batch:>5} {workers_needed(rate, paper):>14} "
                  f"{workers_needed(rate, default):>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
