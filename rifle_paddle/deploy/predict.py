"""``rifle-predict``: the top-k classes of images, from a model ``rifle-export`` wrote.

    rifle-predict models/cub_rifle photo.jpg                     # CSV on stdout
    rifle-predict models/cub_rifle photos/ --top-k 3 --out predictions.csv
    rifle-predict output/<run> list.txt --format json --out predictions.json   # a run: its export/ folder

Inputs are image files, folders (searched recursively for image files) and text files listing one image path per
line (relative paths are relative to the list). The model runs through Paddle Inference on the CPU, or on a GPU
with ``--device gpu``. CSV: one row per image and rank (``path,rank,index,class,probability``); JSON: one entry per
image with its ``top_k`` list. A missing or unreadable image is reported (stderr; ``errors`` in JSON) and skipped;
the others are still predicted and written, and the exit status is then 1, as when nothing could be read, so that a
script notices.
"""
from __future__ import annotations

import csv
import io
import json
import os
import sys

import numpy as np

from ..console import module_parser
from ..engine.classes import read_classes
from .export import MODEL_PREFIX, PREPROCESS_FILE
from .preprocess import Preprocessing

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class PredictError(ValueError):
    """The model folder or the inputs cannot be used (the message says why)."""


def model_folder(path: str) -> str:
    """An exported model's folder: ``path`` itself, or a run directory's ``export/``."""
    for folder in (path, os.path.join(path, "export")):
        if os.path.isfile(os.path.join(folder, f"{MODEL_PREFIX}.pdiparams")):
            return folder
    if os.path.isfile(os.path.join(path, "config.yaml")):
        raise PredictError(f"{path} is a run directory without an exported model: run `rifle-export {path}` first")
    raise PredictError(f"{path} holds no exported model ({MODEL_PREFIX}.json and {MODEL_PREFIX}.pdiparams): "
                       f"export one with `rifle-export <run>`")


def collect_inputs(inputs: list[str]) -> list[str]:
    """Image paths from files, folders and list files, in the given order (folders sorted)."""
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(os.path.join(d, f) for d, _, files in os.walk(item) for f in files
                           if f.lower().endswith(IMAGE_SUFFIXES))
            if not found:
                raise PredictError(f"{item} holds no image file ({', '.join(IMAGE_SUFFIXES)})")
            paths += found
        elif item.lower().endswith(".txt"):
            base = os.path.dirname(os.path.abspath(item))
            try:
                with open(item, encoding="utf-8") as f:
                    lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
            except OSError as e:
                raise PredictError(f"cannot read the list {item}: {e.strerror}") from None
            paths += [line if os.path.isabs(line) else os.path.join(base, line) for line in lines]
        else:
            paths.append(item)  # a missing file is reported with the unreadable ones
    if not paths:
        raise PredictError("no input image")
    return paths


class Predictor:
    """An exported model with its preprocessing and class names: ``predict(paths, k)``."""

    def __init__(self, folder: str, device: str = "cpu", batch_size: int = 32):
        from paddle import inference
        self.folder = model_folder(folder)
        with open(os.path.join(self.folder, PREPROCESS_FILE), encoding="utf-8") as f:
            self.preprocessing = Preprocessing.from_json(f.read())
        self.classes = read_classes(self.folder)
        config = inference.Config(os.path.join(self.folder, f"{MODEL_PREFIX}.json"),
                                  os.path.join(self.folder, f"{MODEL_PREFIX}.pdiparams"))
        if device == "gpu":
            config.enable_use_gpu(256, 0)
        else:
            config.disable_gpu()
        config.disable_glog_info()
        self.predictor = inference.create_predictor(config)
        self.batch_size = batch_size

    def logits(self, batch: np.ndarray) -> np.ndarray:
        handle = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        handle.reshape(list(batch.shape))
        handle.copy_from_cpu(np.ascontiguousarray(batch, dtype=np.float32))
        self.predictor.run()
        return self.predictor.get_output_handle(self.predictor.get_output_names()[0]).copy_to_cpu()

    def class_name(self, index: int) -> str:
        return self.classes[index] if self.classes and index < len(self.classes) else str(index)

    def predict(self, paths: list[str], k: int = 5) -> tuple[list[dict], dict[str, str]]:
        """``([{path, top_k: [{index, class, probability}]}], {unreadable path: error})``, inputs in order."""
        results, errors = [], {}
        for start in range(0, len(paths), self.batch_size):
            batch, loaded, failed = self.preprocessing.load(paths[start:start + self.batch_size])
            errors.update(failed)
            if not loaded:
                continue
            logits = self.logits(batch).astype(np.float64)
            probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
            probabilities /= probabilities.sum(axis=1, keepdims=True)
            top = np.argsort(-probabilities, axis=1, kind="stable")[:, :min(k, probabilities.shape[1])]
            for path, row, indices in zip(loaded, probabilities, top):
                results.append({"path": path, "top_k": [
                    {"index": int(i), "class": self.class_name(int(i)), "probability": float(row[i])}
                    for i in indices]})
        return results, errors


def to_csv(results: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "rank", "index", "class", "probability"])
    for result in results:
        for rank, entry in enumerate(result["top_k"], 1):
            writer.writerow([result["path"], rank, entry["index"], entry["class"], f"{entry['probability']:.6f}"])
    return buffer.getvalue()


def main(argv=None) -> int:
    parser = module_parser("rifle-predict", __doc__)
    parser.add_argument("model", help="a folder written by rifle-export, or a run directory with export/")
    parser.add_argument("inputs", nargs="+", help="image files, folders, or .txt lists of image paths")
    parser.add_argument("--top-k", type=int, default=5, help="classes per image (default 5, at most all)")
    parser.add_argument("--format", choices=("csv", "json"), default=None,
                        help="output format (default: from --out's suffix, else csv)")
    parser.add_argument("--out", help="write here instead of stdout")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    if args.top_k < 1 or args.batch_size < 1:
        parser.error("--top-k and --batch-size must be >= 1")
    fmt = args.format or ("json" if (args.out or "").lower().endswith(".json") else "csv")
    try:
        predictor = Predictor(args.model, args.device, args.batch_size)
        results, errors = predictor.predict(collect_inputs(args.inputs), args.top_k)
    except (PredictError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path, error in errors.items():
        print(f"skipped: {error}", file=sys.stderr)
    text = (json.dumps({"model": os.path.abspath(predictor.folder), "results": results, "errors": errors}, indent=2)
            if fmt == "json" else to_csv(results))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"{len(results)} image(s) -> {args.out}" + (f"; {len(errors)} skipped" if errors else ""),
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0 if results and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
