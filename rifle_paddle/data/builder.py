"""From the ``data`` section of a config, or its keys as keywords, to datasets and loaders.

``build_dataset("cub200", root="data/CUB_200_2011", split="train", image_size=224)`` and the engine's
``build_dataset(cfg["data"], "train")`` are one call: a reader name or a (possibly partial) section, overridden by
keywords, completed with the schema's defaults and checked (``config.keywords.keyword_section``).
"""
from __future__ import annotations

from ..config.keywords import keyword_section

from .base import ImageClassificationDataset, stratified_subsample
from .errors import DataError
from .loader import ImageLoader
from .registry import Split, get_reader, label_levels
from .sampler import SeededBatchSampler
from .transforms import Normalize, authors_train_transform, eval_transform, train_transform


def sampling_seed(data_cfg: dict, seed: int) -> int:
    """The seed of every per-class draw: ``data.sample_seed``, else the run's seed."""
    return seed if data_cfg.get("sample_seed") is None else data_cfg["sample_seed"]


#: ``data`` keys that set the loader, not the data set: as keywords of ``build_dataset`` they would do nothing
LOADER_KEYS = ("batch_size", "eval_batch_size", "num_workers", "order", "drop_last")


def data_section(data: str | dict, options: dict, caller: str) -> dict:
    """The complete ``data`` section meant by ``data`` (a reader name, or a section with any keys left out) and
    ``options`` (data.* keys as keywords, which win), with the schema's defaults; bad keys or values raise."""
    loader_keys = [key for key in options if key in LOADER_KEYS]
    if loader_keys:
        raise TypeError(f"{caller}() does not take {', '.join(loader_keys)}: a loader setting, for "
                        f"build_loader(dataset, batch_size, train, num_workers, drop_last=..., reshuffle=...)")
    given = {"name": data} if isinstance(data, str) else dict(data)
    return keyword_section("data", {**given, **options}, caller)


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def read_split(data: str | dict, split: str, seed: int = 0, **options) -> Split:
    """The ``split`` ('train' or 'test') of the data set as its reader finds it on disk (no sampling).

    ``data`` and ``options`` as in ``build_dataset``. The reader sees ``data.label_level`` resolved to its default
    level and ``data.sample_seed`` resolved to the seed in use (Caltech-256 draws its split with it).
    """
    _check_split(split)
    return _read(data_section(data, options, "read_split"), split, seed)


def _read(data_cfg: dict, split: str, seed: int) -> Split:
    """``read_split`` of a checked, complete section."""
    name = data_cfg["name"]
    levels, level = label_levels(name), data_cfg["label_level"]
    if level is not None and level not in levels:
        offered = f"one of {', '.join(levels)}" if levels else "null: it has a single label level"
        raise DataError(f"data.label_level={level} does not apply to {name}; use {offered}")
    cfg = {**data_cfg, "label_level": level or (levels[0] if levels else None),
           "sample_seed": sampling_seed(data_cfg, seed)}
    found = get_reader(name)(cfg, split)
    return select_classes(found, data_cfg["classes"], f"{name}:{split}")


def select_classes(found: Split, wanted: list[int | str] | None, name: str = "") -> Split:
    """Keep the ``wanted`` classes (indices or names) of ``found``, relabeled 0..k-1 in the order given.

    This is how one data set yields disjoint source and target tasks (pretrain on some classes, transfer to the
    others) with the same reader, and it happens before any sampling so per-class draws are unchanged.
    """
    if not wanted:
        return found
    index = {c: i for i, c in enumerate(found.classes)}
    old = []
    for w in wanted:
        i = w if isinstance(w, int) else index.get(w)
        if i is None or i >= len(found.classes):
            names = ", ".join(found.classes[:12]) + (", ..." if len(found.classes) > 12 else "")
            raise DataError(f"{name}: data.classes names {w!r}, which is not a class of this data set "
                            f"({len(found.classes)} classes: {names})")
        old.append(i)
    if len(set(old)) != len(old):
        raise DataError(f"{name}: data.classes selects a class twice (by index and by name?): {wanted}")
    relabel = {o: n for n, o in enumerate(old)}
    samples = [(key, relabel[y]) for key, y in found.samples if y in relabel]
    return found._replace(samples=samples, classes=[found.classes[o] for o in old])


def build_dataset(data: str | dict, split: str, seed: int = 0, **options) -> ImageClassificationDataset:
    """The ``split`` ('train' or 'test') of a data set, with its standard transforms.

    ``data`` is a reader name (``list_readers()``) or a ``data`` config section (keys left out take the schema's
    defaults); ``options`` are ``data.*`` keys as keywords (``root=``, ``image_size=``, ``train_per_class=``, ...,
    listed in docs/config.md), which override the section's. ``seed`` is the run's seed, the default of
    ``sample_seed``. An unknown keyword raises ``TypeError`` naming the allowed ones, a bad value ``ValueError``.

    The training split keeps ``data.sample_rate`` of each class and at most ``data.train_per_class`` images per
    class, drawn with ``sampling_seed``; the test split keeps at most ``data.test_per_class`` per class (a quicker,
    noisier test: the demo's), drawn the same way, and is otherwise never sub-sampled.
    """
    _check_split(split)
    return _dataset(data_section(data, options, "build_dataset"), split, seed)


def _dataset(data_cfg: dict, split: str, seed: int) -> ImageClassificationDataset:
    """``build_dataset`` of a checked, complete section (checked once for both splits by ``build_datasets``)."""
    found = _read(data_cfg, split, seed)
    samples = found.samples
    antialias = data_cfg["resampling"] == "antialiased"
    if split == "train":
        samples = stratified_subsample(samples, data_cfg["sample_rate"], sampling_seed(data_cfg, seed),
                                       per_class=data_cfg["train_per_class"])
        if data_cfg["train_transform"] == "authors":
            transform = authors_train_transform(data_cfg["image_size"], data_cfg["resize_size"], antialias,
                                                flip=data_cfg["flip"])
        else:
            transform = train_transform(data_cfg["image_size"], data_cfg["crop_scale"], flip=data_cfg["flip"])
    else:
        if data_cfg["test_per_class"]:  # Caltech-256's reader has drawn its test split already: a no-op
            samples = stratified_subsample(samples, 1.0, sampling_seed(data_cfg, seed),
                                           per_class=data_cfg["test_per_class"])
        transform = eval_transform(data_cfg["image_size"], data_cfg["resize_size"], antialias)
    return ImageClassificationDataset.from_split(
        found._replace(samples=samples), transform, name=f"{data_cfg['name']}:{split}",
        batch_transform=Normalize(data_cfg["mean"], data_cfg["std"]), strict=data_cfg["strict"],
        exclude_unreadable=split == "test", orient=data_cfg["exif_orientation"] == "apply")


def build_datasets(data: str | dict, seed: int = 0,
                   **options) -> tuple[ImageClassificationDataset, ImageClassificationDataset]:
    """The training and test splits (``build_dataset``'s arguments), refused if they name different classes."""
    data_cfg = data_section(data, options, "build_datasets")
    train, test = _dataset(data_cfg, "train", seed), _dataset(data_cfg, "test", seed)
    if train.classes != test.classes:
        only_train = sorted(set(train.classes) - set(test.classes))[:5]
        only_test = sorted(set(test.classes) - set(train.classes))[:5]
        raise DataError(f"train and test splits disagree on the classes ({train.num_classes} vs "
                        f"{test.num_classes}; only in train: {only_train}, only in test: {only_test})")
    return train, test


def build_loader(dataset, batch_size: int, train: bool, num_workers: int, seed: int = 0, drop_last: bool = False,
                 reshuffle: bool = True) -> ImageLoader:
    """An ``ImageLoader`` over a ``SeededBatchSampler`` (a ``DistributedBatchSampler``), so one code path serves
    one card and many.

    Training shuffles in an order drawn from ``seed`` (the run's) and, with ``reshuffle``, the epoch (without: one
    order for the whole run, ``data.order=fixed``). It drops the last partial batch when ``drop_last`` (the
    authors), else only when that batch would hold a single image (batch norm cannot normalize a batch of one).
    Evaluation keeps order and every sample. ``batch_size``, ``num_workers`` and ``drop_last`` get their data keys'
    checks (``ValueError`` naming the key; a numpy integer is taken as an int).
    """
    checked = keyword_section("data", {"batch_size": batch_size, "num_workers": num_workers, "drop_last": drop_last},
                              "build_loader")
    batch_size, num_workers, drop_last = checked["batch_size"], checked["num_workers"], checked["drop_last"]
    sampler = SeededBatchSampler(dataset, batch_size=batch_size, seed=seed, shuffle=train, drop_last=False,
                                 reshuffle=reshuffle)
    per_rank = sampler.num_samples  # what each rank iterates over: ceil(N / ranks), the short shares padded
    drop_last = train and (drop_last or (per_rank > batch_size and per_rank % batch_size == 1))
    if train and drop_last and per_rank < batch_size:
        raise DataError(f"data.drop_last=true with {per_rank} training images per process and batch_size "
                        f"{batch_size}: no batch would be left; lower data.batch_size or set data.drop_last=false")
    sampler.drop_last = drop_last
    return ImageLoader(dataset, batch_sampler=sampler, num_workers=num_workers, return_list=True,
                       use_shared_memory=num_workers > 0)
