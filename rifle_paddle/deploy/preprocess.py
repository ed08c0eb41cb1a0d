"""``preprocess.json``: how an image file becomes the exported network's input, as the run's test split did it.

The evaluation pipeline of training (``data.transforms.eval_transform`` and ``Normalize``), described by its
parameters rather than re-implemented: ``Preprocessing.transform`` rebuilds the very same objects, so an exported
model sees at prediction what the run's test images saw. For another runtime (C++, Paddle Serving) the file reads
as: decode to RGB; drop ``crop_bottom`` rows; resize the shorter side to ``resize_short`` (``resampling``);
center-crop ``crop`` x ``crop`` at ``((w - crop) // 2, (h - crop) // 2)``; HWC -> CHW; ``(x / 255 - mean) / std``
per channel; float32 NCHW.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from ..data import DataError
from ..data.image import read_image
from ..data.transforms import Normalize, eval_transform

FORMAT = 1


@dataclass(frozen=True)
class Preprocessing:
    crop: int
    resize_short: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resampling: str = "antialiased"  # or "bilinear" (a plain cv2.resize, the RIFLE authors')
    crop_bottom: int = 0  # rows removed from the bottom first (FGVC-Aircraft's copyright banner)
    exif_orientation: str = "ignore"  # or "apply" (turn the pixels by the EXIF tag, as the RIFLE authors' cv2.imread)
    channel_order: str = "RGB"
    layout: str = "NCHW"
    dtype: str = "float32"
    format: int = field(default=FORMAT)

    @classmethod
    def from_data_config(cls, data_cfg: dict, crop_bottom: int = 0) -> "Preprocessing":
        """The test-split preprocessing of a run's ``data`` section."""
        return cls(crop=int(data_cfg["image_size"]), resize_short=int(data_cfg["resize_size"]),
                   mean=tuple(float(v) for v in data_cfg["mean"]), std=tuple(float(v) for v in data_cfg["std"]),
                   resampling=data_cfg.get("resampling", "antialiased"), crop_bottom=int(crop_bottom),
                   exif_orientation=data_cfg.get("exif_orientation", "ignore"))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Preprocessing":
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError(f"preprocess.json format {data.get('format')!r}; this rifle-paddle reads {FORMAT}")
        data["mean"], data["std"] = tuple(data["mean"]), tuple(data["std"])
        return cls(**data)

    def transform(self):
        """One image (RGB uint8 HWC) -> uint8 CHW, the run's ``eval_transform``."""
        return eval_transform(self.crop, self.resize_short, antialias=self.resampling == "antialiased")

    def normalize(self) -> Normalize:
        return Normalize(self.mean, self.std)

    def load(self, paths: list[str]) -> tuple[np.ndarray, list[str], dict[str, str]]:
        """``(batch [n, 3, crop, crop] float32, the paths that loaded, {path: error} for those that did not)``."""
        transform, images, loaded, errors = self.transform(), [], [], {}
        for path in paths:
            try:
                images.append(transform(read_image(path, self.crop_bottom, self.exif_orientation == "apply")))
                loaded.append(path)
            except DataError as e:
                errors[path] = str(e)
        if not images:
            return np.empty((0, 3, self.crop, self.crop), np.float32), loaded, errors
        return self.normalize()(np.stack(images)), loaded, errors
