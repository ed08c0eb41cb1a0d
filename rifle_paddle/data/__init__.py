"""Data: one reader per data set layout (one registry), OpenCV transforms, the dataset and its loader."""
from . import (caltech256, cifar, cub200, fashion_mnist, fgvc_aircraft, filelist, flowers102, folder,  # noqa: F401
               indoor67, stanford_cars, stanford_dogs)  # importing a reader module registers it
from .base import ImageClassificationDataset, class_permutation, stratified_subsample
from .builder import build_dataset, build_datasets, build_loader, read_split, select_classes
from .errors import DataError
from .image import EncodedImage, read_image
from .loader import ImageLoader
from .registry import Expected, Split, expected_counts, get_reader, list_readers, needs_root, register_reader

from ..config.checks import register_check


@register_check
def _reader_problems(cfg: dict, purpose: str | None) -> list[str]:
    """``data.name`` must name a registered reader (the registry's message names the close matches); a run that
    reads the data needs ``data.root`` unless the reader finds its data without it."""
    name = cfg["data"].get("name")
    if purpose is None:
        try:
            get_reader(name)
        except ValueError as e:
            return [f"data.name: {e}"]
        return []
    if cfg["data"].get("root") is None and name in list_readers() and needs_root(name):
        return [f"data.root: not set; point it at the data set (data.name={name})"]
    return []


__all__ = ["DataError", "EncodedImage", "Expected", "ImageClassificationDataset", "ImageLoader", "Split",
           "build_dataset", "build_datasets", "build_loader", "class_permutation", "expected_counts", "get_reader",
           "list_readers", "read_image", "read_split", "register_reader", "select_classes",
           "stratified_subsample"]
