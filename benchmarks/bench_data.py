"""Images/s of the training input pipeline against Paddle's stock PIL pipeline, on the same JPEG folder.

Both pipelines: decode, random-resized crop to 224, horizontal flip, normalize, batches of 32 through
``paddle.io.DataLoader`` with ``--workers`` worker processes. Ours is exactly what ``train.py`` runs
(``ImageClassificationDataset`` + ``train_transform`` + ``build_loader``: OpenCV, uint8 out of the workers,
normalization per batch in the main process); the reference is ``paddle.vision.datasets.DatasetFolder`` with
``paddle.vision.transforms`` (PIL backend, ``ToTensor`` + ``Normalize``), as in Paddle's documentation. A third
variant, ours but normalized per image inside the workers, isolates what shipping uint8 instead of float32 batches
between processes is worth.

The images are generated (``rifle_paddle.data.synthetic``) at CUB-200's size and file size: 500x375 JPEGs of about
95 KB (CUB_200_2011.tgz holds 11,788 images in 1.1 GB). Each round runs every variant once, in turn, over the whole
folder; throughput is measured from the first batch to the last (worker start-up excluded) and the medians over
``--repeats`` rounds are compared, because timings on a shared machine drift.

It also measures the per-image CPU cost of each pipeline in a single process (``time.process_time``, robust to
other load), which says how many cores feed a GPU, and the effect of decoding large JPEGs (1400x900, FGVC-Aircraft
and Stanford Cars sizes) at a reduced scale.

    python benchmarks/bench_data.py                  # about 1-2 minutes on 2 cores
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
import paddle  # noqa: E402

from rifle_paddle.data import ImageClassificationDataset, build_loader  # noqa: E402
from rifle_paddle.data.folder import scan_folder  # noqa: E402
from rifle_paddle.data.synthetic import class_recipe, make_image_folder, render  # noqa: E402
from rifle_paddle.data.transforms import (Compose, Normalize, RandomHorizontalFlip, RandomResizedCrop,  # noqa: E402
                                          ToCHW, train_transform)

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def write_large_jpegs(directory: str, count: int) -> str:
    """1400x900 JPEGs of about 330 KB (FGVC-Aircraft averages ~275 KB per 1-2 MP image): textures rendered at
    1/4 size and upsampled, as the full-resolution noise of ``synthetic`` would make them twice that size."""
    os.makedirs(directory)
    rng = np.random.default_rng(1)
    for i in range(count):
        small = render(class_recipe(rng), (225, 350), rng)
        image = cv2.resize(small, (1400, 900), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(os.path.join(directory, f"{i:03d}.jpg"), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    return os.path.dirname(directory)


def ours(root: str) -> ImageClassificationDataset:
    found = scan_folder(root)
    return ImageClassificationDataset(found.samples, found.classes, train_transform(224), "ours",
                                      batch_transform=Normalize(MEAN, STD))


def ours_float_workers(root: str) -> ImageClassificationDataset:
    found = scan_folder(root)
    transform = Compose([RandomResizedCrop(224), RandomHorizontalFlip(), ToCHW(), Normalize(MEAN, STD)])
    return ImageClassificationDataset(found.samples, found.classes, transform, "ours, float32 from workers")


def stock_pil(root: str):
    import paddle.vision.transforms as T
    transform = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    return paddle.vision.datasets.DatasetFolder(root, transform=transform)


def loader_for(name: str, dataset, batch: int, workers: int):
    if isinstance(dataset, ImageClassificationDataset):
        return build_loader(dataset, batch, True, workers)  # train.py's loader
    return paddle.io.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers)


def images_per_second(loader) -> float:
    """One pass; time from the first batch to the end, so worker start-up is not counted."""
    batches = iter(loader)
    images = next(batches)[0]
    start, count = time.perf_counter(), 0
    for images, _ in batches:
        count += int(images.shape[0])
    assert images.dtype == paddle.float32
    return count / (time.perf_counter() - start)


def cpu_ms_per_image(load, count: int) -> float:
    start = time.process_time()
    for i in range(count):
        load(i)
    return 1000 * (time.process_time() - start) / count


def per_image_costs(train_root: str, large_root: str, count: int) -> dict[str, float]:
    """Single-process CPU milliseconds per image (OpenCV on one thread, as in a worker)."""
    cv2.setNumThreads(1)
    np.random.seed(0)
    costs = {}
    mine = ours(train_root)
    costs["ours: read, decode, crop, flip (per image)"] = cpu_ms_per_image(mine.load, count)
    batch = np.stack([mine.load(i)[0] for i in range(32)])
    costs["ours: normalize, per image of a batch of 32"] = cpu_ms_per_image(
        lambda _: mine.batch_transform(paddle.to_tensor(batch)), 20) / 32
    costs["ours: total"] = sum(costs.values())
    reference = stock_pil(train_root)
    costs["stock PIL: total"] = cpu_ms_per_image(reference.__getitem__, count)
    large = scan_folder(large_root)
    for reduction, label in ((8, "on"), (1, "off")):
        transform = Compose([RandomResizedCrop(224, max_reduction=reduction), RandomHorizontalFlip(), ToCHW()])
        dataset = ImageClassificationDataset(large.samples, large.classes, transform)
        np.random.seed(0)
        costs[f"1400x900 JPEG, reduced-scale decode {label}"] = cpu_ms_per_image(dataset.load, len(dataset))
    return costs


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=768, help="images in the generated folder (8 classes)")
    p.add_argument("--repeats", type=int, default=5, help="rounds; medians are reported")
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args(argv)
    paddle.set_device("cpu")

    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        start = time.perf_counter()
        root = make_image_folder(os.path.join(tmp, "cub_like"), 8, args.images // 8, 0, size=(375, 500),
                                 quality=90)
        large_root = write_large_jpegs(os.path.join(tmp, "large", "photos"), 24)
        train_root = os.path.join(root, "train")
        files = [os.path.join(d, f) for d, _, fs in os.walk(train_root) for f in fs]
        size_kb = np.mean([os.path.getsize(f) for f in files]) / 1024
        print(f"{len(files)} JPEGs of 500x375, {size_kb:.0f} KB on average (generated in "
              f"{time.perf_counter() - start:.0f} s); {os.cpu_count()} CPU cores, {args.workers} workers, batch "
              f"{args.batch}, Paddle {paddle.__version__}, OpenCV {cv2.__version__}\n")

        variants = {"ours (train.py)": ours, "ours, float32 from workers": ours_float_workers,
                    "stock PIL (paddle.vision)": stock_pil}
        rates: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, make in variants.items():
                rates[name].append(images_per_second(loader_for(name, make(train_root), args.batch,
                                                                args.workers)))
        medians = {name: statistics.median(r) for name, r in rates.items()}
        print(f"DataLoader throughput, images/s (median of {args.repeats}; all runs):")
        for name, r in rates.items():
            print(f"  {name:28s} {medians[name]:7.0f}   ({', '.join(f'{x:.0f}' for x in r)})")
        ratio = medians["ours (train.py)"] / medians["stock PIL (paddle.vision)"]
        print(f"  ratio ours / stock PIL: {ratio:.2f}x (target >= 1.5x)\n")

        costs = per_image_costs(train_root, large_root, min(256, len(files)))
        print("CPU cost per image, one process, one thread (ms):")
        for name, ms in costs.items():
            print(f"  {name:48s} {ms:6.2f}")
        worker_ms = costs["ours: read, decode, crop, flip (per image)"]
        batch_ms = args.batch * worker_ms
        print(f"\nFeeding a GPU: one worker prepares a batch of {args.batch} in ~{batch_ms:.0f} ms of CPU "
              f"(~{1000 / worker_ms:.0f} images/s; on a GPU the normalization runs on the device). A ResNet-50 step "
              f"of T ms at batch {args.batch} is not input-bound with data.num_workers >= {batch_ms:.0f} / T free "
              f"cores: 1 for T >= {batch_ms:.0f} ms, 2 for T >= {batch_ms / 2:.0f} ms, the default 4 for "
              f"T >= {batch_ms / 4:.0f} ms ({4000 / worker_ms:.0f} images/s, if the cores scale).")


if __name__ == "__main__":
    main()
