"""The DataLoader of the training engine: uint8 batches out of the workers, finished in the main process.

Workers run the per-image pipeline and return uint8 CHW images; ``ImageLoader`` applies the dataset's
``batch_transform`` (normalization to float32) to each whole batch where it lives: on the GPU when Paddle's buffered
reader has already copied it there, else in the main process. A uint8 batch is a quarter of the bytes a worker
copies into shared memory and the main process receives (``benchmarks/bench_data.py`` measures what it is worth).

After every complete pass it logs the images replaced as unreadable during that pass (see ``unreadable``), so a
corrupt file shows up in the console and ``train.log`` once per epoch, not only as a line from a worker. With
``data.strict`` it raises ``DataError`` naming the files before yielding a batch that holds a replacement.
"""
from __future__ import annotations

import logging

import cv2
import paddle

from .base import exhausted_message, strict_message
from .errors import DataError

log = logging.getLogger(__name__)


def single_threaded_opencv() -> None:
    """Set OpenCV to one thread in this process, before worker processes fork from it.

    A forked child inherits OpenCV's thread pool but not its threads: its first call into the pool (even
    ``cv2.setNumThreads`` from a worker's init function) then waits forever on a condition variable of the
    parent's threads (seen with OpenCV 5.0's pthreads backend once the parent had decoded a large image). With one
    thread in the parent there is no pool to inherit. Once workers exist the main process does no image work,
    and the workers themselves are the parallelism: an OpenCV pool per worker would only oversubscribe the cores.
    """
    cv2.setNumThreads(1)


class ImageLoader(paddle.io.DataLoader):
    """``paddle.io.DataLoader`` that finishes batches with ``dataset.batch_transform`` and reports unreadable
    images after each pass. Batches are ``[images, labels]`` lists."""

    def __iter__(self):
        dataset = self.dataset
        finish = getattr(dataset, "batch_transform", None)
        record = getattr(dataset, "unreadable", None)
        replaced_before = record.replaced if record is not None else 0
        if self.num_workers > 0:
            single_threaded_opencv()
        for batch in super().__iter__():
            if getattr(dataset, "strict", False) and record is not None and record.replaced > replaced_before:
                raise DataError(strict_message(dataset.name, [f"unreadable image {f}"
                                                              for f in dataset.unreadable_files()]))
            if record is not None and record.exhausted:
                raise DataError(exhausted_message(dataset.name, len(dataset)))
            if finish is not None:
                batch = [finish(batch[0]), *batch[1:]]
            yield batch
        if record is not None and record.replaced > replaced_before:
            log.warning(dataset.unreadable_summary(since=replaced_before))
