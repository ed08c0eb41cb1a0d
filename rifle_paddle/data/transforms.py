"""OpenCV/NumPy image transforms: uint8 from the file to the batch, float32 only once batched.

Per image (in the DataLoader workers) images are RGB ``uint8`` arrays, HWC until ``ToCHW``. The first transform of
a pipeline may instead receive the still-encoded file (``EncodedImage``, when its class sets ``decodes = True``):
``RandomResizedCrop`` and ``ResizeShorter`` use that to decode a large JPEG at 1/2, 1/4 or 1/8 scale when their
output keeps no more resolution than that anyway.

``Normalize`` runs once per *batch*, after the batch has left the worker processes (``loader.ImageLoader``): a
float32 image is four times the bytes of a uint8 one, and every byte is copied into shared memory by a worker and
handed to the main process by Paddle's DataLoader (``benchmarks/bench_data.py`` measures the difference); on a GPU
the uint8 batch is also what crosses PCIe, and the normalization runs there.

Randomness comes from NumPy's global generator, which Paddle's DataLoader seeds per worker from the main process's
generator, so a seeded run draws the same crops.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import paddle

from .image import EncodedImage


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    @property
    def decodes(self) -> bool:
        """Whether the first transform takes an ``EncodedImage`` (the dataset then leaves decoding to it)."""
        return bool(self.transforms) and getattr(self.transforms[0], "decodes", False)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self):
        return "Compose(" + ", ".join(map(repr, self.transforms)) + ")"


def resize(img: np.ndarray, width: int, height: int, antialias: bool = True) -> np.ndarray:
    """Resize with antialiasing where it matters, at bilinear speed (``antialias=False``: plain bilinear, OpenCV's
    ``cv2.resize`` default, which the RIFLE authors' reader uses and which aliases when it shrinks by 2x or more).

    Shrinking by 2x or more first averages integer blocks (OpenCV's INTER_AREA at an integer factor, a fast path),
    then bilinear covers the remaining factor below 2, where bilinear sampling still sees every source pixel.
    INTER_AREA at a non-integer factor would be exact but is about 8x slower than bilinear on one core (0.7 ms vs
    0.09 ms for a 350x300 crop to 224x224), more than the rest of the transform pipeline together.
    """
    in_h, in_w = img.shape[:2]
    ky, kx = max(1, in_h // height), max(1, in_w // width)
    if antialias and (ky > 1 or kx > 1):
        img = cv2.resize(img[:in_h - in_h % ky, :in_w - in_w % kx], (in_w // kx, in_h // ky),
                         interpolation=cv2.INTER_AREA)
    if img.shape[:2] == (height, width):
        return img
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)


def _decode_for(img, shrink: float, max_reduction: int) -> tuple[np.ndarray, float, float]:
    """Pixels of ``img`` decoded at the largest scale reduction allowed by ``shrink``, with the factors that map
    full-size coordinates onto them."""
    if not isinstance(img, EncodedImage):
        return img, 1.0, 1.0
    height, width = img.size
    pixels = img.decode(min(img.max_reduction(shrink), max_reduction))
    return pixels, pixels.shape[0] / height, pixels.shape[1] / width


class RandomResizedCrop:
    """Inception-style crop: area ``scale`` of the image, aspect ``ratio``, resized to ``size`` x ``size``.

    Given an ``EncodedImage``, the crop box is drawn on the header size and the image is decoded at the largest
    reduction that still leaves the box at least ``size`` pixels on each side (``max_reduction=1`` turns this off).
    """

    decodes = True

    def __init__(self, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), attempts: int = 10,
                 max_reduction: int = 8):
        self.size, self.scale, self.ratio, self.attempts = size, scale, ratio, attempts
        self.max_reduction = max_reduction
        self._log_ratio = (math.log(ratio[0]), math.log(ratio[1]))

    def crop_box(self, height: int, width: int) -> tuple[int, int, int, int]:
        area = height * width
        for _ in range(self.attempts):
            target = area * np.random.uniform(*self.scale)
            aspect = math.exp(np.random.uniform(*self._log_ratio))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = np.random.randint(0, height - h + 1)
                left = np.random.randint(0, width - w + 1)
                return top, left, h, w
        # fall back to a central crop at the nearest allowed aspect ratio
        aspect = width / height
        if aspect < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif aspect > self.ratio[1]:
            h, w = height, int(round(height * self.ratio[1]))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img):
        height, width = img.size if isinstance(img, EncodedImage) else img.shape[:2]
        top, left, h, w = self.crop_box(height, width)
        pixels, sy, sx = _decode_for(img, min(h, w) / self.size, self.max_reduction)
        y0, x0 = int(round(top * sy)), int(round(left * sx))
        y1 = min(pixels.shape[0], max(y0 + 1, int(round((top + h) * sy))))
        x1 = min(pixels.shape[1], max(x0 + 1, int(round((left + w) * sx))))
        return resize(pixels[y0:y1, x0:x1], self.size, self.size)

    def __repr__(self):
        return f"RandomResizedCrop({self.size}, scale={self.scale}, ratio={self.ratio})"


class RandomHorizontalFlip:
    """A view with a negative stride; ``ToCHW`` makes the one copy."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, img):
        return img[:, ::-1] if np.random.random() < self.p else img

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class RandomVerticalFlip:
    """The RIFLE authors' training "mirror" (``as_data_reader/readers.py`` @ 5985eca, lines 67 and 74-77): their
    batch is ``[N, 3, H, W]`` when ``img[:, :, ::-1, :]`` reverses axis 2, the rows, so the image is turned upside
    down, never mirrored left-right. Drawn per image as theirs (each image passes ``preprocess_image`` alone, as a
    batch of one, lines 161-163): flipped when ``int(np.random.uniform(0, 2)) == 1``, one draw after the crop's two.
    A view with a negative stride; ``ToCHW`` makes the one copy."""

    def __call__(self, img):
        return img[::-1] if int(np.random.uniform(0, 2)) == 1 else img

    def __repr__(self):
        return "RandomVerticalFlip()"


#: ``data.flip``: the training flip of either transform (None: no flip)
FLIPS = {"horizontal": RandomHorizontalFlip, "vertical": RandomVerticalFlip, "none": None}


def _flip(name: str) -> list:
    if name not in FLIPS:
        raise ValueError(f"unknown flip '{name}', expected one of {', '.join(FLIPS)}")
    return [FLIPS[name]()] if FLIPS[name] else []


class ResizeShorter:
    """Resize so the shorter side is ``size``, keeping the aspect ratio (sides rounded as the RIFLE authors'
    ``resize_short``); decodes a large JPEG at a reduced scale when the result keeps at least ``size`` pixels on the
    shorter side. ``antialias=False``: the authors' pixels, a full decode and plain bilinear."""

    decodes = True

    def __init__(self, size: int, max_reduction: int = 8, antialias: bool = True):
        self.size, self.antialias = size, antialias
        self.max_reduction = max_reduction if antialias else 1

    def __call__(self, img):
        height, width = img.size if isinstance(img, EncodedImage) else img.shape[:2]
        pixels, _, _ = _decode_for(img, min(height, width) / self.size, self.max_reduction)
        h, w = pixels.shape[:2]
        scale = self.size / min(h, w)
        return resize(pixels, max(1, round(w * scale)), max(1, round(h * scale)), self.antialias)

    def __repr__(self):
        return f"ResizeShorter({self.size}{'' if self.antialias else ', antialias=False'})"


class CenterCrop:
    """A ``size`` x ``size`` crop at ``((w - size) // 2, (h - size) // 2)``; subclasses choose another place."""

    def __init__(self, size: int):
        self.size = size

    def corner(self, height: int, width: int) -> tuple[int, int]:
        """``(top, left)`` of the crop."""
        return (height - self.size) // 2, (width - self.size) // 2

    def __call__(self, img):
        h, w = img.shape[:2]
        if h < self.size or w < self.size:
            raise ValueError(f"image of {w}x{h} is smaller than the {self.size}px crop")
        top, left = self.corner(h, w)
        return img[top:top + self.size, left:left + self.size]

    def __repr__(self):
        return f"{type(self).__name__}({self.size})"


class RandomCrop(CenterCrop):
    """A crop at a uniformly drawn position (left, then top: the authors' ``crop_image(img, size, center=False)``)."""

    def corner(self, height: int, width: int) -> tuple[int, int]:
        left = np.random.randint(0, width - self.size + 1)
        return np.random.randint(0, height - self.size + 1), left


class ToCHW:
    """uint8 HWC -> contiguous uint8 CHW, the layout of a batch (the one copy of the per-image pipeline)."""

    def __call__(self, img):
        return np.ascontiguousarray(img.transpose(2, 0, 1))

    def __repr__(self):
        return "ToCHW()"


class Normalize:
    """uint8 images -> float32 ``(x / 255 - mean) / std`` (one multiply-add); channels on axis -3 (CHW or NCHW).

    Takes a NumPy array or a Paddle tensor (a batch from ``ImageLoader``). A tensor on an accelerator is normalized
    there; a CPU tensor goes through NumPy and back without copies (DLPack), because Paddle's CPU kernels are about
    10x slower than NumPy's for this (measured: ~40 ms vs ~4 ms for a 32x3x224x224 batch on one core).
    """

    def __init__(self, mean, std):
        std = np.asarray(std, dtype=np.float32)
        self.scale = (1.0 / (255.0 * std)).reshape(3, 1, 1)
        self.shift = (-np.asarray(mean, dtype=np.float32) / std).reshape(3, 1, 1)

    def __call__(self, images):
        if isinstance(images, paddle.Tensor):
            if images.place.is_cpu_place():
                return paddle.utils.dlpack.from_dlpack(self(images.numpy()))
            scale = paddle.to_tensor(self.scale, place=images.place)
            shift = paddle.to_tensor(self.shift, place=images.place)
            return images.astype("float32") * scale + shift
        out = np.empty(images.shape, np.float32)
        np.multiply(images, self.scale, out=out)
        out += self.shift
        return out

    def __repr__(self):
        return "Normalize()"


def train_transform(image_size: int, scale=(0.08, 1.0), flip: str = "horizontal") -> Compose:
    """Inception-style random-resized crop + ``flip`` (``data.train_transform=random_resized_crop``, ``data.flip``),
    as uint8 CHW."""
    return Compose([RandomResizedCrop(image_size, scale=tuple(scale)), *_flip(flip), ToCHW()])


def authors_train_transform(image_size: int, resize_size: int, antialias: bool = True,
                            flip: str = "vertical") -> Compose:
    """The RIFLE authors' training augmentation (``as_data_reader/readers.py``): resize the shorter side to
    ``resize_size`` (256), a uniformly placed ``image_size`` (224) crop, then their upside-down flip
    (``flip='vertical'``; ``'horizontal'``: a left-right mirror, ``'none'``); as uint8 CHW."""
    return Compose([ResizeShorter(resize_size, antialias=antialias), RandomCrop(image_size), *_flip(flip),
                    ToCHW()])


def eval_transform(image_size: int, resize_size: int, antialias: bool = True) -> Compose:
    """Resize the shorter side, center crop at ``((w - size) // 2, (h - size) // 2)``: the standard single-crop
    evaluation and the authors' test transform, as uint8 CHW."""
    return Compose([ResizeShorter(resize_size, antialias=antialias), CenterCrop(image_size), ToCHW()])
