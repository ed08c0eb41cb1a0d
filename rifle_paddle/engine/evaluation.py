"""``eval.py``'s engine: score a checkpoint on a test split, overall, per class, and as a confusion matrix.

The network's logits for the whole split are collected once (``predict_logits``, with a progress bar on a
terminal), and every number is computed from them: top-1, top-5 where it means something (with five classes or
fewer every label is in the top five, so top-5 is left out and the result says why), the test loss (cross-entropy
without label smoothing, the quantity a reader compares across runs), each class's accuracy and the confusion
matrix (``confusion.py``).
"""
from __future__ import annotations

import logging
import os
import time

import numpy as np

from ..console import setup_logging
from ..core.weights import WeightsMismatch, load_weights
from ..data import build_loader
from ..data.base import EXCLUDED
from ..data.builder import build_dataset
from ..models import create_model
from .confusion import confusion_matrix, per_class_accuracy, top_k_accuracy
from .errors import RunError
from .trainer import build_model, format_accuracy, seed_everything, select_device

log = logging.getLogger(__name__)

#: top-5 is reported only with more classes than this (with 5 or fewer it is 1.0 by construction)
TOP5_MIN_CLASSES = 6


def resolve_checkpoint(spec: str | None) -> str:
    """``model.checkpoint`` may name a run directory (its best, else last weights) or a .pdparams file."""
    if not spec:
        raise RunError("model.checkpoint is not set: pass -o model.checkpoint=output/<run> or a .pdparams file")
    if os.path.isdir(spec):
        for name in ("best.pdparams", "last.pdparams"):
            if os.path.isfile(os.path.join(spec, name)):
                return os.path.join(spec, name)
        raise RunError(f"{spec} holds no best.pdparams or last.pdparams")
    if not os.path.isfile(spec):
        raise RunError(f"checkpoint not found: {spec}")
    return spec


def predict_logits(model, loader, desc: str = "eval") -> tuple[np.ndarray, np.ndarray]:
    """``(logits [N, C] float32, labels [N] int64)`` of every batch of ``loader``, in order.

    ``model.predict_batch`` runs under the training's autocast where AMP O2 needs it (``TransferModel``). A
    ``tqdm`` bar shows progress on a terminal and stays silent in a log file."""
    from tqdm import tqdm
    logits, labels = [], []
    for images, targets in tqdm(loader, desc=desc, unit="batch", disable=None, leave=False):
        logits.append(np.asarray(model.predict_batch([images])[0], dtype=np.float32))
        labels.append(np.asarray(targets, dtype=np.int64).reshape(-1))
    if not logits:
        raise RunError("the test split is empty: nothing to evaluate")
    logits, labels = np.concatenate(logits), np.concatenate(labels)
    keep = labels != EXCLUDED  # unreadable test images: left out, never scored as another image
    return logits[keep], labels[keep]


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean ``-log softmax(logits)[label]`` (computed stably in float64)."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    log_softmax = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_softmax[np.arange(len(labels)), labels].mean())


def score(logits: np.ndarray, labels: np.ndarray, classes: list[str]) -> tuple[dict, np.ndarray]:
    """``(result, confusion matrix)``: the overall numbers and one entry per class."""
    num_classes = logits.shape[1]
    if len(classes) != num_classes:
        classes = [str(i) for i in range(num_classes)]
    matrix = confusion_matrix(labels, logits.argmax(axis=1), num_classes)
    per_class = per_class_accuracy(matrix)
    result = {"loss": cross_entropy(logits, labels), "acc_top1": top_k_accuracy(logits, labels, 1)}
    if num_classes >= TOP5_MIN_CLASSES:
        result["acc_top5"] = top_k_accuracy(logits, labels, 5)
    else:
        result["acc_top5_omitted"] = f"{num_classes} classes: every label is among the top five, top-5 is always 1"
    result["per_class"] = [{"index": i, "class": name, "num_test": int(matrix[i].sum()),
                            "acc_top1": None if np.isnan(per_class[i]) else float(per_class[i])}
                           for i, name in enumerate(classes)]
    return result, matrix


def evaluate(cfg: dict, with_matrix: bool = False):
    """Score ``model.checkpoint`` on the configured test split.

    Returns the result dict (``checkpoint``, ``data``, ``num_test``, ``loss``, ``acc_top1``, ``acc_top5`` or why
    it is omitted, ``per_class``); with ``with_matrix``, ``(result, confusion matrix, class names)``."""
    device = select_device(cfg["run"]["device"], cfg["run"]["cpu_threads"])
    seed_everything(cfg["run"]["seed"])
    setup_logging()
    checkpoint = resolve_checkpoint(cfg["model"]["checkpoint"])
    test_set = build_dataset(cfg["data"], "test", seed=cfg["run"]["seed"])
    num_classes = cfg["model"]["num_classes"] or test_set.num_classes
    network = create_model(cfg["model"]["arch"], num_classes=num_classes)
    try:  # also a half-precision file (AMP O2, older runs)
        load_weights(network, checkpoint, f"{cfg['model']['arch']} with {num_classes} classes")
    except WeightsMismatch as e:
        raise RunError(str(e)) from None
    model = build_model(cfg, network, 0, device)
    loader = build_loader(test_set, cfg["data"]["eval_batch_size"], False, cfg["data"]["num_workers"])
    log.info("evaluating %s on %d test images (%d batches)", checkpoint, len(test_set), len(loader))
    model.network.eval()
    started = time.perf_counter()
    logits, labels = predict_logits(model, loader)
    seconds = time.perf_counter() - started
    log.info("%d test images in %.1f s: %.1f images/s (data.num_workers=%d, batch %d)", len(test_set), seconds,
             len(test_set) / seconds if seconds > 0 else 0.0, cfg["data"]["num_workers"],
             cfg["data"]["eval_batch_size"])
    if not len(labels):
        raise RunError(f"no test image could be read ({len(test_set)} unreadable): check the data with "
                       f"python -m rifle_paddle.app.check_data")
    scores, matrix = score(logits, labels, list(test_set.classes))
    excluded = test_set.unreadable_files()
    result = {"checkpoint": os.path.abspath(checkpoint), "data": cfg["data"]["name"], "root": cfg["data"]["root"],
              "num_test": int(len(labels)), **scores,
              "images_per_s": round(len(test_set) / seconds, 2) if seconds > 0 else None}
    if excluded:
        result["excluded_unreadable"] = excluded
        log.warning("%d unreadable test image(s) left out of the evaluation: %s", len(excluded),
                    ", ".join(excluded[:5]) + (" ..." if len(excluded) > 5 else ""))
    log.info("%s: %s on %d test images", checkpoint, format_accuracy(result), len(test_set))
    return (result, matrix, [c["class"] for c in scores["per_class"]]) if with_matrix else result
