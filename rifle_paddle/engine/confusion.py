"""Per-class evaluation: the confusion matrix and each class's accuracy.

A single top-1 number hides which classes a method helps; fine-grained sets (CUB-200, Cars) have classes that
every method confuses. ``eval.py`` writes both next to its JSON result (``confusion.csv``, ``confusion.png``).
"""
from __future__ import annotations

import numpy as np


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """``[num_classes, num_classes]`` counts: row = true class, column = predicted class."""
    labels, predictions = np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(f"{labels.shape[0]} labels but {predictions.shape[0]} predictions")
    outside = (labels < 0) | (labels >= num_classes) | (predictions < 0) | (predictions >= num_classes)
    if outside.any():
        raise ValueError(f"class indices outside 0..{num_classes - 1}")
    return np.bincount(labels * num_classes + predictions, minlength=num_classes ** 2).reshape(num_classes,
                                                                                             num_classes)


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Recall of each class (correct / test images of the class); NaN for a class with no test image."""
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1), np.nan)


def top_k_accuracy(logits: np.ndarray, labels, k: int) -> float:
    """Fraction of rows whose true label is among the ``k`` largest logits."""
    labels = np.asarray(labels, dtype=np.int64)
    top = np.argsort(-logits, axis=1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))
