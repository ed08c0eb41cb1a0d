"""Reading image files: the bytes first, the pixels only at the resolution a transform will keep.

A random-resized crop or a resize knows, before a single pixel is decoded, how far it will shrink the image. libjpeg
can decode a JPEG directly at 1/2, 1/4 or 1/8 scale (it skips the high-frequency DCT coefficients, a box-filter
quality downscale for free), so ``EncodedImage`` gives the image size from the JPEG header and lets the transform
ask for ``decode(reduction)``. On a 1400x900 JPEG (FGVC-Aircraft's size) decoding at 1/2 scale costs about 3/4 of
a full decode and leaves 1/4 of the pixels to crop and resize (``benchmarks/bench_data.py`` measures the whole
crop); on CUB-sized images (500x375) a 224 crop never allows a reduction and nothing changes.

By default decoding ignores the EXIF orientation tag (``IMREAD_IGNORE_ORIENTATION``): the header size then matches
the decoded pixels, and the pixels are the ones PIL (torchvision, ``paddle.vision``, the DELTA authors' code) feeds a
network. ``orient=True`` (``data.exif_orientation: apply``) turns the pixels as the tag says, as ``cv2.imread``
does in the RIFLE authors' reader (``as_data_reader/readers.py`` line 154): the image is then always decoded in full,
because the header's size is the unturned one.
"""
from __future__ import annotations

import cv2
import numpy as np

from .errors import DataError

REDUCTIONS = (1, 2, 4, 8)
_DECODE_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                 8: cv2.IMREAD_REDUCED_COLOR_8}
# Start-of-frame markers (baseline, progressive, lossless, arithmetic); C4, C8 and CC share the range but are not
# frames.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(height, width)`` from a JPEG's start-of-frame header, or None if ``data`` is not a well-formed JPEG
    header (then the image is simply decoded in full)."""
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    i, n = 2, len(data)
    while i + 9 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length field
            i += 2
            continue
        if marker in _SOF_MARKERS:
            height, width = (data[i + 5] << 8) | data[i + 6], (data[i + 7] << 8) | data[i + 8]
            return (height, width) if height and width else None
        if marker == 0xDA:  # start of scan before any frame header: malformed
            return None
        i += 2 + ((data[i + 2] << 8) | data[i + 3])
    return None


def jpeg_is_truncated(data: bytes) -> bool:
    """True for a JPEG whose end-of-image marker is missing: an interrupted download or copy. OpenCV 4 decodes such
    a file with a mere warning (the missing rows come out grey); OpenCV 5 refuses it."""
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return False
    return data.rstrip(b"\x00\r\n ")[-2:] != b"\xff\xd9"


class EncodedImage:
    """An image file read into memory, not decoded yet.

    ``crop_bottom`` rows are removed from the bottom of the decoded image (and from ``size``), at every decode
    scale: FGVC-Aircraft's 20-pixel copyright banner.
    """

    __slots__ = ("data", "path", "crop_bottom", "orient", "_header_size", "_full")

    def __init__(self, data: bytes, path: str = "<memory>", crop_bottom: int = 0, orient: bool = False):
        self.data, self.path, self.crop_bottom, self.orient = data, path, crop_bottom, orient
        self._header_size = None if orient else jpeg_size(data)  # turned pixels: the header's size is not theirs
        self._full: np.ndarray | None = None

    @classmethod
    def read(cls, path: str, crop_bottom: int = 0, orient: bool = False) -> "EncodedImage":
        try:
            with open(path, "rb") as f:
                return cls(f.read(), path, crop_bottom, orient)
        except FileNotFoundError:
            raise DataError(f"image not found: {path}") from None
        except OSError as e:
            raise DataError(f"cannot read image {path}: {e.strerror or e}") from None

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of ``decode()``'s result; from the header for a JPEG, else by decoding it."""
        if self._header_size is not None:
            height, width = self._header_size
            return self._check_crop(height) - self.crop_bottom, width
        return self.decode().shape[:2]

    def max_reduction(self, shrink: float) -> int:
        """The largest decode reduction (1, 2, 4 or 8) that is at most ``shrink``, the factor by which the caller
        will shrink the image anyway; 1 for formats other than JPEG."""
        if self._header_size is None:
            return 1
        return max(r for r in REDUCTIONS if r <= max(shrink, 1))

    def decode(self, reduction: int = 1) -> np.ndarray:
        """RGB uint8 HWC pixels at ``1/reduction`` of the full size (``ceil`` of each side, as libjpeg scales)."""
        if reduction == 1 and self._full is not None:
            return self._full
        if reduction not in _DECODE_FLAGS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction}")
        try:
            flags = _DECODE_FLAGS[reduction] | (0 if self.orient else cv2.IMREAD_IGNORE_ORIENTATION)
            bgr = cv2.imdecode(np.frombuffer(self.data, np.uint8), flags)
        except cv2.error:
            bgr = None
        if bgr is None:
            raise DataError(f"cannot decode image: {self.path} ({len(self.data)} bytes; empty, truncated or not "
                            f"an image format OpenCV reads)")
        if self.crop_bottom:
            full_height = self._header_size[0] if self._header_size else bgr.shape[0]
            self._check_crop(full_height)
            bgr = bgr[:bgr.shape[0] - int(round(self.crop_bottom * bgr.shape[0] / full_height))]
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if reduction == 1:
            self._full = rgb
        return rgb

    def _check_crop(self, height: int) -> int:
        if self.crop_bottom >= height:
            raise DataError(f"image {self.path} is {height} pixels high: too small to remove a {self.crop_bottom}-"
                            f"pixel banner from its bottom")
        return height

    def __repr__(self):
        return f"EncodedImage({self.path!r}, {len(self.data)} bytes)"


def read_image(path: str, crop_bottom: int = 0, orient: bool = False) -> np.ndarray:
    """RGB uint8 HWC pixels of an image file; ``DataError`` naming the file if it is missing or unreadable."""
    return EncodedImage.read(path, crop_bottom, orient).decode()
