"""Writing result artifacts shared by ``report`` and ``analyze``: Markdown and CSV tables, matplotlib figures.

matplotlib is imported only when a figure is drawn, with the non-interactive Agg backend, so that the library
and the training engine never need a display (or matplotlib at all) and figures render on headless servers.
"""
from __future__ import annotations

import csv
import io
import os

from ..core.files import atomic_write_text


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub-flavoured Markdown table; ``|`` inside cells is escaped."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|")
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv_text(headers: list[str], rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue()


def write_text(text: str, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_text(text, path)
    return path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (imported on first use)."""
    try:
        import matplotlib
    except ImportError as e:  # pragma: no cover - matplotlib is an install requirement
        raise RuntimeError("figures need matplotlib: pip install matplotlib") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(figure, path: str) -> str:
    """Save and close ``figure`` (closing matters in long-lived processes such as a sweep)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.png"
    figure.savefig(tmp, dpi=150, bbox_inches="tight")
    pyplot().close(figure)
    os.replace(tmp, path)
    return path


def confusion_csv(matrix, classes: list[str]) -> str:
    """The confusion matrix as CSV: a header of predicted classes, one row per true class (counts)."""
    return csv_text(["true \\ predicted"] + list(classes),
                    [[name] + [int(v) for v in row] for name, row in zip(classes, matrix)])


def plot_confusion(matrix, classes: list[str], path: str, title: str = "") -> str:
    """Each true class's row normalized to its test images (so a rare class is as visible as a common one);
    counts written in the cells up to 20 classes, class names on the axes up to 60."""
    import numpy as np
    plt = pyplot()
    matrix = np.asarray(matrix)
    n = len(classes)
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = min(16.0, max(4.5, 0.28 * n + 2.5))
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(rows, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if n <= 60:
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels(classes, rotation=90, fontsize=7 if n > 20 else 9)
        ax.set_yticklabels(classes, fontsize=7 if n > 20 else 9)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=8,
                            color="white" if rows[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or "Confusion matrix (rows: true class)")
    return save_figure(fig, path)
