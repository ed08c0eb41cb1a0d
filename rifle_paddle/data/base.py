"""The one dataset class every reader produces, and the seeded per-class sampling shared by all data sets.

Readers only parse their native layout into a ``Split``; decoding, transforms, sub-sampling and the handling of
unreadable files live here once, so every data set behaves the same in training.
"""
from __future__ import annotations

import logging
import threading

import cv2
import numpy as np
import paddle

from .errors import DataError
from .image import EncodedImage, read_image
from .registry import Split
from .unreadable import UnreadableImages

__all__ = ["DataError", "ImageClassificationDataset", "class_permutation", "read_image", "stratified_subsample"]

log = logging.getLogger(__name__)


def in_loader() -> bool:
    """Whether this call comes from a DataLoader's reader thread or worker process.

    An exception raised there never reaches the training loop as itself: Paddle's single-process reader thread
    dies and leaves the loop waiting forever on its queue (a hang at 0 % CPU that Ctrl-C cannot end), and a worker's
    comes back wrapped, after tracebacks from every process. So there the dataset records the problem and serves
    a stand-in, and ``ImageLoader`` raises one clean ``DataError`` in the main thread before yielding the batch."""
    return paddle.io.get_worker_info() is not None or threading.current_thread() is not threading.main_thread()


#: the label of an unreadable test image's stand-in: evaluation leaves such rows out (``TransferModel.eval_batch``,
#: ``engine.evaluation``) rather than scoring a duplicate of another image in their place
EXCLUDED = -1


def exhausted_message(name: str, num_samples: int) -> str:
    return (f"{name or 'dataset'}: no readable image left ({num_samples} samples, all unreadable); check the data "
            f"with python -m rifle_paddle.app.check_data")


def strict_message(name: str, problems: list[str]) -> str:
    return (f"{name or 'dataset'}: {'; '.join(problems)} (data.strict is true; set it to false to skip unreadable "
            f"images, or list them all with python -m rifle_paddle.app.check_data)")


class ImageClassificationDataset(paddle.io.Dataset):
    """``(image, label)`` pairs; ``image`` is what ``transform`` makes of the image.

    ``samples`` are ``(path, label)``, or ``(index, label)`` into ``images`` (an N x H x W x 3 uint8 RGB array) for
    data sets distributed as arrays. ``transform`` receives an RGB uint8 HWC array, or the still-encoded file when it
    declares ``decodes = True`` (see ``transforms``). ``batch_transform`` is the rest of the pipeline, applied to whole
    batches in the main process by ``loader.ImageLoader`` (normalization); a plain ``paddle.io.DataLoader`` gets the
    images as ``transform`` leaves them.

    An image that cannot be read is replaced by another image of the same class (so class frequencies are unchanged;
    any readable image if its class has none left), logged once, and recorded in ``unreadable``; with ``strict`` it
    raises ``DataError`` instead (in a DataLoader worker the replacement still happens, and ``ImageLoader`` raises
    in the main process before yielding the batch). A replacement is drawn from NumPy's global generator, seeded
    per worker by Paddle.
    """

    def __init__(self, samples: list[tuple[str | int, int]], classes: list[str], transform=None, name: str = "",
                 *, images: np.ndarray | None = None, crop_bottom: int = 0, batch_transform=None,
                 strict: bool = False, exclude_unreadable: bool = False, orient: bool = False):
        super().__init__()
        self.samples = list(samples)
        self.classes = list(classes)
        self.transform, self.batch_transform = transform, batch_transform
        self.name, self.images, self.crop_bottom, self.strict = name, images, crop_bottom, strict
        #: turn decoded files by their EXIF orientation (``data.exif_orientation: apply``)
        self.orient = orient
        #: a test split: an unreadable image is left out of the evaluation (served as a stand-in labelled
        #: ``EXCLUDED``), not replaced by another image, which would score a different test set
        self.exclude_unreadable = exclude_unreadable
        labels = np.fromiter((y for _, y in self.samples), dtype=np.int64, count=len(self.samples))
        bad = np.flatnonzero((labels < 0) | (labels >= len(self.classes)))
        if len(bad):
            key, label = self.samples[bad[0]]
            raise DataError(f"{name or 'dataset'}: label {label} of {key} is out of range 0..{len(self.classes) - 1} "
                            f"({len(bad)} such samples)")
        self._labels = labels
        self.unreadable = UnreadableImages(len(self.samples))

    @classmethod
    def from_split(cls, split: Split, transform=None, name: str = "", **kwargs) -> "ImageClassificationDataset":
        return cls(split.samples, split.classes, transform, name, images=split.images,
                   crop_bottom=split.crop_bottom, **kwargs)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def targets(self) -> list[int]:
        return self._labels.tolist()

    def class_counts(self) -> np.ndarray:
        return np.bincount(self._labels, minlength=self.num_classes)

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int):
        """Sample ``index`` through ``transform``; ``DataError`` if its file cannot be read."""
        key, label = self.samples[index]
        if self.images is not None:
            img = self.images[key]
        else:
            img = EncodedImage.read(key, self.crop_bottom, self.orient)
            if not getattr(self.transform, "decodes", False):
                img = img.decode()
        if self.transform is not None:
            img = self.transform(img)
        return img, np.int64(label)

    def __getitem__(self, index: int):
        if not self.unreadable.is_unreadable(index):
            try:
                return self.load(index)
            except DataError as error:
                # In a DataLoader's thread or worker, strict mode is enforced by ImageLoader in the main thread
                # (``in_loader`` says why)
                if self.strict and not in_loader():
                    raise DataError(strict_message(self.name, [str(error)])) from None
                self._mark(index, error)
        self.unreadable.count_replacement()
        if self.exclude_unreadable:
            return self._stand_in(index, EXCLUDED)
        return self._replacement(index)

    def _mark(self, index: int, error: DataError) -> None:
        if self.unreadable.mark(index) and not self.strict:  # strict: the loader stops the run with the file's name
            log.warning("%s: %s; %s (data.strict=true makes this an error)", self.name or "dataset", error,
                        "left out of the evaluation" if self.exclude_unreadable
                        else "skipped, replaced by another image of its class")

    def _replacement(self, index: int):
        same_class = np.flatnonzero(self._labels == self._labels[index])
        for candidates in (same_class, np.arange(len(self.samples))):
            for other in np.random.permutation(candidates):
                if other == index or self.unreadable.is_unreadable(other):
                    continue
                try:
                    return self.load(int(other))
                except DataError as error:
                    self._mark(int(other), error)
        if not in_loader():
            raise DataError(exhausted_message(self.name, len(self.samples)))
        self.unreadable.mark_exhausted()  # ImageLoader stops the run before this batch is used
        return self._stand_in(index)

    def _stand_in(self, index: int, label: int | None = None):
        """A black image through the transform, with ``index``'s label (or ``label``): the right shape for a batch
        that is never trained on, or a row that evaluation leaves out."""
        blank = np.zeros((16, 16, 3), np.uint8)
        img = EncodedImage(cv2.imencode(".png", blank)[1].tobytes(), "<stand-in>")
        if not getattr(self.transform, "decodes", False):
            img = img.decode()
        if self.transform is not None:
            img = self.transform(img)
        return img, np.int64(self._labels[index] if label is None else label)

    def unreadable_files(self) -> list[str]:
        return [str(self.samples[i][0]) for i in self.unreadable.indices()]

    def unreadable_summary(self, since: int | None = None) -> str:
        """One line on the unreadable images: the replacements made since the count was ``since`` (a pass), or in
        all (the run), and which files."""
        files = self.unreadable_files()
        shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        name = self.name or "dataset"
        if since is None:
            return (f"{name}: {len(files)} unreadable file(s), replaced {self.unreadable.replaced} time(s) in all: "
                    f"{shown}")
        return (f"{name}: {self.unreadable.replaced - since} image(s) replaced this pass; {len(files)} unreadable "
                f"file(s) so far: {shown}")

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r}, {len(self)} images, {self.num_classes} classes)"


def class_permutation(count: int, seed: int, label: int) -> np.ndarray:
    """The seeded order in which the ``count`` images of class ``label`` are drawn.

    One generator per ``(seed, label)``: a class's draw depends on nothing but its own images and the seed, so it is
    the same whatever the method trained, whatever other classes exist, and smaller draws are prefixes of larger
    ones (the 15 % subset of a class lies inside its 30 % subset).
    """
    return np.random.default_rng([seed, label]).permutation(count)


def indices_by_class(samples) -> dict[int, list[int]]:
    by_class: dict[int, list[int]] = {}
    for i, (_, y) in enumerate(samples):
        by_class.setdefault(y, []).append(i)
    return by_class


def stratified_subsample(samples: list, rate: float, seed: int, per_class: int | None = None) -> list:
    """Keep ``rate`` of each class (rounded half up, at least one image) and at most ``per_class``, drawn by
    ``class_permutation``; the kept samples stay in their original order.

    The choice depends on the samples and the seed alone, never on the method being trained, so two methods
    run with the same seed see the same images and their comparison is paired.
    """
    if not 0 < rate <= 1:
        raise ValueError(f"sample rate must be in (0, 1], got {rate}")
    if per_class is not None and per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    if rate == 1 and per_class is None:
        return list(samples)
    keep = []
    for label, idx in indices_by_class(samples).items():
        n = max(1, int(len(idx) * rate + 0.5))
        if per_class is not None:
            n = min(n, per_class)
        keep.extend(np.asarray(idx)[class_permutation(len(idx), seed, label)[:n]].tolist())
    return [samples[i] for i in sorted(keep)]
