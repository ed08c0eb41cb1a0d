"""Verify a data set on disk before a long GPU run.

    python -m rifle_paddle.app.check_data <name> <root> [-o data.key=value ...] [--workers N] [--no-decode]

Reads both splits with the reader training uses, compares the images per split, the classes and (where the
official split is balanced) the images per class with the official numbers under the configured protocol
(``data.trainval``, ``data.label_level``, Caltech-256's per-class counts), checks that both splits name the same
classes and share no image, then decodes every image in parallel and lists the unreadable and the truncated ones
(OpenCV 4 decodes a truncated JPEG with a mere warning, grey where the data stops). Last, it times the configured
training transform on a sample of the training images in one process (what one loader worker does) and says how
many workers the published ResNet-50 training rates of current GPUs need at that rate, next to this machine's cores
and ``data.num_workers`` (docs/performance.md).

Exit status: 0 all checks passed; 1 problems found (each is listed); 2 the data set could not be read at all (the
message names the file that was expected and where).
"""
from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from ..console import module_parser
from ..config import ConfigError, load_config
from ..core.throughput import workers_estimate
from ..data.builder import build_dataset, read_split
from ..data.errors import DataError
from ..data.image import EncodedImage, jpeg_is_truncated
from ..data.loader import single_threaded_opencv
from ..data.registry import Expected, Split, expected_counts, list_readers

OK, PROBLEMS, UNREADABLE_LAYOUT = 0, 1, 2


def inspect_image(path: str) -> str | None:
    """What is wrong with the image file at ``path``, or None if it decodes completely."""
    try:
        image = EncodedImage.read(path)
        image.decode()
    except DataError as e:
        return str(e)
    if jpeg_is_truncated(image.data):
        return f"truncated JPEG (no end-of-image marker): {path}"
    return None


def _per_class(split: Split) -> np.ndarray:
    return np.bincount([y for _, y in split.samples], minlength=len(split.classes))


def split_problems(name: str, found: Split, official: int | None, per_class: int | None) -> list[str]:
    counts = _per_class(found)
    problems = []
    if official is not None and len(found.samples) != official:
        problems.append(f"{name}: {len(found.samples)} images, expected {official}")
    empty = [found.classes[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        problems.append(f"{name}: {len(empty)} classes without images: {', '.join(empty[:5])}")
    if per_class is not None:
        off = [f"{found.classes[i]} ({counts[i]})" for i in np.flatnonzero(counts != per_class)]
        if off:
            problems.append(f"{name}: {len(off)} classes do not have the expected {per_class} images: "
                            f"{', '.join(off[:5])}")
    return problems


def count_problems(splits: dict[str, Split], expected: Expected | None) -> list[str]:
    train, test = splits["train"], splits["test"]
    problems = []
    for name, found in splits.items():
        official = getattr(expected, name) if expected else None
        per_class = getattr(expected, f"{name}_per_class") if expected else None
        problems += split_problems(name, found, official, per_class)
    if expected is not None and len(train.classes) != expected.classes:
        problems.append(f"{len(train.classes)} classes, expected {expected.classes}")
    if train.classes != test.classes:
        problems.append(f"train and test name different classes ({len(train.classes)} vs {len(test.classes)})")
    if train.images is None:
        shared = {p for p, _ in train.samples} & {p for p, _ in test.samples}
        if shared:
            problems.append(f"{len(shared)} images are in both splits, e.g. {sorted(shared)[0]}")
    return problems


def decode_problems(paths: list[str], workers: int, progress: bool | None = None) -> list[str]:
    """Decode every image (``workers`` processes; 1: in this process) and return what went wrong.

    Decoding a data set takes minutes; ``tqdm`` shows images per second and the time left on a terminal
    (``progress=None``: only there, so logs stay clean)."""
    from tqdm import tqdm
    bar = tqdm(total=len(paths), desc="decoding", unit="img", disable=None if progress is None else not progress)
    with bar:
        if workers <= 1:
            results = []
            for path in paths:
                results.append(inspect_image(path))
                bar.update()
        else:
            single_threaded_opencv()
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = []
                for result in pool.map(inspect_image, paths, chunksize=64):
                    results.append(result)
                    bar.update()
    return [r for r in results if r is not None]


#: training images timed for the per-worker rate (enough for a stable median, seconds on one core)
RATE_SAMPLE = 200


def worker_rate(data_cfg: dict, seed: int, sample: int = RATE_SAMPLE) -> float:
    """Training images per second one loader worker prepares: read, decode and the configured training transform
    (``data.train_transform``, ``data.resampling``) of up to ``sample`` images, here, on one thread, by CPU time."""
    single_threaded_opencv()
    dataset = build_dataset(data_cfg, "train", seed)
    count = min(sample, len(dataset))
    if not count:
        return 0.0
    dataset[0]  # the first call pays one-off imports and OpenCV's set-up
    started = time.process_time()
    for i in np.linspace(0, len(dataset) - 1, count).astype(int):
        dataset[int(i)]
    seconds = time.process_time() - started
    return count / seconds if seconds > 0 else 0.0


def describe(name: str, found: Split, expected: Expected | None) -> str:
    counts = _per_class(found)
    line = (f"  {name:5s} {len(found.samples):6d} images, {len(found.classes)} classes "
            f"({counts.min() if len(counts) else 0}..{counts.max() if len(counts) else 0} per class)")
    if expected is not None:
        line += f"; expected: {getattr(expected, name)} images, {expected.classes} classes"
    return line


def main(argv=None) -> int:
    parser = module_parser("rifle-check-data", __doc__, epilog=f"data sets: {', '.join(list_readers())}")
    parser.add_argument("name", help="data set reader (data.name)")
    parser.add_argument("root", help="the data set's root directory (data.root)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help="a data.* option of the protocol, e.g. -o data.train_per_class=30 (repeatable)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="processes decoding images (default: up to 8)")
    parser.add_argument("--no-decode", action="store_true", help="check the layout and counts only")
    args = parser.parse_args(argv)

    try:
        cfg = load_config(None, [f"data.name={args.name}", f"data.root={args.root}", *args.override])
        data_cfg = cfg["data"]
        splits = {split: read_split(data_cfg, split, cfg["run"]["seed"]) for split in ("train", "test")}
    except (ConfigError, DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return UNREADABLE_LAYOUT
    expected = expected_counts(args.name, data_cfg)
    print(f"{args.name} at {args.root}")
    for name, found in splits.items():
        print(describe(name, found, expected))
    problems = count_problems(splits, expected)

    if splits["train"].images is not None:
        print(f"  images are in-memory arrays of {splits['train'].images.shape[1:]}: nothing to decode")
    elif not args.no_decode:
        paths = sorted({p for found in splits.values() for p, _ in found.samples})
        print(f"  decoding {len(paths)} images with {max(1, args.workers)} process(es) ...", flush=True)
        start = time.perf_counter()
        bad = decode_problems(paths, args.workers)
        seconds = time.perf_counter() - start
        print(f"  {len(paths) - len(bad)} of {len(paths)} images decode completely "
              f"({seconds:.1f} s, {len(paths) / max(seconds, 1e-9):.0f} images/s with {max(1, args.workers)} "
              f"process(es))")
        if bad:
            problems.append(f"{len(bad)} unreadable or truncated images:\n" + "\n".join(f"      {b}" for b in bad))

    if not args.no_decode and splits["train"].samples:
        rate = worker_rate(data_cfg, cfg["run"]["seed"])
        if rate > 0:
            print(f"  training transform ({data_cfg['train_transform']}, {data_cfg['resampling']}) timed on "
                  f"{min(RATE_SAMPLE, len(splits['train'].samples))} images:")
            print("  " + workers_estimate(rate, os.cpu_count() or 1, data_cfg["num_workers"]).replace("\n", "\n  "))

    if problems:
        print(f"{len(problems)} problem(s):")
        for p in problems:
            print(f"  - {p}")
        return PROBLEMS
    print("all checks passed")
    return OK


if __name__ == "__main__":
    sys.exit(main())
