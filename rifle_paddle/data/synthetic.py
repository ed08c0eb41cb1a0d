"""Small generated image-classification folders, for tests and offline smoke runs.

Each class is a fixed random "texture recipe" (two oriented colour gratings and a blob), each image a noisy,
randomly shifted rendering of it: hard enough that an untrained network is at chance, learnable in a few epochs
at 32 px, and structured enough (shared low-level features across classes) that pretraining on some classes
helps on others. Written as real JPEG files so the whole decode path is exercised.
"""
from __future__ import annotations

import os

import cv2
import numpy as np


def class_recipe(rng: np.random.Generator) -> dict:
    """The random parameters that define one class (pass them to ``render``)."""
    return {
        "freq": rng.uniform(2, 7, size=2), "angle": rng.uniform(0, np.pi, size=2),
        "color": rng.uniform(0, 255, size=(2, 3)), "blob": rng.uniform(0.25, 0.75, size=2),
        "blob_color": rng.uniform(0, 255, size=3),
    }


def render(recipe: dict, size: int | tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """One RGB uint8 image of the class described by ``recipe``; ``size`` is a side or ``(height, width)``."""
    height, width = (size, size) if isinstance(size, int) else size
    scale = max(height, width)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / scale
    img = np.zeros((height, width, 3), np.float32)
    shift = rng.uniform(0, 2 * np.pi, size=2)
    for k in range(2):
        a = recipe["angle"][k] + rng.normal(0, 0.1)
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * recipe["freq"][k] * (xx * np.cos(a) + yy * np.sin(a)) + shift[k])
        img += wave[..., None] * recipe["color"][k] / 2
    cy, cx = recipe["blob"] + rng.normal(0, 0.1, size=2)
    mask = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.02)[..., None]
    img = img * (1 - mask) + mask * recipe["blob_color"]
    img += rng.normal(0, 20, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_image_folder(root: str, num_classes: int, train_per_class: int, test_per_class: int,
                      size: int | tuple[int, int] = 32, seed: int = 0, class_offset: int = 0,
                      quality: int = 95) -> str:
    """Write ``root/{train,test}/class_XX/*.jpg``; returns ``root``.

    ``size`` is a side or ``(height, width)``. ``class_offset`` selects which recipes are used, so two folders with
    disjoint offsets have disjoint classes drawn from the same family (a source and a target task).
    """
    family = np.random.default_rng(seed)
    recipes = [class_recipe(family) for _ in range(class_offset + num_classes)][class_offset:]
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        rng = np.random.default_rng([seed, class_offset, 0 if split == "train" else 1])
        for c, recipe in enumerate(recipes):
            directory = os.path.join(root, split, f"class_{class_offset + c:03d}")
            os.makedirs(directory, exist_ok=True)
            for i in range(per_class):
                bgr = cv2.cvtColor(render(recipe, size, rng), cv2.COLOR_RGB2BGR)
                cv2.imwrite(os.path.join(directory, f"{i:04d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return root
