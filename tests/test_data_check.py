"""``python -m rifle_paddle.app.check_data``: the report, the problems it finds and its exit status."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

import data_layouts as layouts
from rifle_paddle.data import registry
from rifle_paddle.app.check_data import OK, PROBLEMS, UNREADABLE_LAYOUT, main
from rifle_paddle.data.registry import Expected


def run(capsys, *argv) -> tuple[int, str]:
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


@pytest.fixture
def official_counts(monkeypatch):
    """Make the miniature copies "official": replace a reader's expected counts."""
    def replace(name: str, expected: Expected):
        entry = registry._READERS[name]
        monkeypatch.setitem(registry._READERS, name, entry._replace(expected=lambda cfg: expected))
    return replace


def test_a_complete_download_passes(tmp_path, capsys, official_counts):
    layout = layouts.make_cub200(str(tmp_path))
    official_counts("cub200", Expected(train=9, test=6, classes=3))
    status, out = run(capsys, "cub200", layout.root, "--workers", 1)
    assert status == OK, out
    assert "train      9 images, 3 classes (3..3 per class); expected: 9 images, 3 classes" in out
    assert "15 of 15 images decode completely" in out and "all checks passed" in out


def test_counts_are_compared_with_the_official_numbers(tmp_path, capsys):
    layout = layouts.make_cub200(str(tmp_path))
    status, out = run(capsys, "cub200", layout.root, "--no-decode")
    assert status == PROBLEMS
    assert "train: 9 images, expected 5994" in out
    assert "test: 6 images, expected 5794" in out and "3 classes, expected 200" in out


def test_images_per_class_of_a_balanced_split(tmp_path, capsys, official_counts):
    layout = layouts.make_indoor67(str(tmp_path))
    official_counts("indoor67", Expected(train=6, test=3, classes=3, train_per_class=2, test_per_class=1))
    os.remove(os.path.join(layout.root, layout.splits["train"][0][0]))
    with open(os.path.join(layout.root, "TrainImages.txt")) as f:
        lines = f.read().splitlines()[1:]
    with open(os.path.join(layout.root, "TrainImages.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    status, out = run(capsys, "indoor67", layout.root, "--workers", 1)
    assert status == PROBLEMS
    assert "train: 5 images, expected 6" in out
    assert "train: 1 classes do not have the expected 2 images: airport_inside (1)" in out


def test_unreadable_and_truncated_images_are_listed(tmp_path, capsys):
    for split in ("train", "test"):
        for label in range(2):
            for i in range(3):
                layouts.write_jpeg(str(tmp_path / split / f"c{label}" / f"{i}.jpg"), 10 * label + i)
    broken = tmp_path / "train" / "c0" / "1.jpg"
    broken.write_bytes(b"<html>404 Not Found</html>")
    truncated = tmp_path / "test" / "c1" / "2.jpg"
    truncated.write_bytes(truncated.read_bytes()[:-2])
    status, out = run(capsys, "folder", tmp_path, "--workers", 1)
    assert status == PROBLEMS
    assert "10 of 12 images decode completely" in out
    assert f"cannot decode image: {broken}" in out
    assert str(truncated) in out


def test_an_image_in_both_splits(tmp_path, capsys):
    layouts.write_jpeg(str(tmp_path / "a.jpg"), 1)
    layouts.write_jpeg(str(tmp_path / "b.jpg"), 2)
    (tmp_path / "train.txt").write_text("a.jpg 0\nb.jpg 1\n")
    (tmp_path / "test.txt").write_text("a.jpg 0\n")
    status, out = run(capsys, "filelist", tmp_path, "-o", "data.train_list=train.txt", "-o", "data.test_list=test.txt",
                      "--workers", 1)
    assert status == PROBLEMS and f"1 images are in both splits, e.g. {tmp_path / 'a.jpg'}" in out
    assert "test: 1 classes without images: 1" in out


def test_cifar_arrays_need_no_decoding(tmp_path, capsys):
    layout = layouts.make_cifar10(str(tmp_path))
    status, out = run(capsys, "cifar10", layout.root)
    assert status == PROBLEMS and "in-memory arrays of (32, 32, 3): nothing to decode" in out
    assert "train: 20 images, expected 50000" in out


def test_caltech256_protocol_options(tmp_path, capsys):
    layout = layouts.make_caltech256(str(tmp_path))
    status, out = run(capsys, "caltech256", layout.root)
    assert status == UNREADABLE_LAYOUT and "set data.train_per_class" in out
    status, out = run(capsys, "caltech256", layout.root, "-o", "data.train_per_class=3", "-o",
                      "data.test_per_class=2", "--workers", 1)
    assert "train      9 images, 3 classes (3..3 per class); expected: 771 images, 257 classes" in out
    assert "15 of 15 images decode completely" in out


def test_unreadable_layout_exits_2(tmp_path, capsys):
    status, out = run(capsys, "stanford_dogs", tmp_path / "missing")
    assert status == UNREADABLE_LAYOUT and "stanford_dogs: data.root=" in out and "is not a directory" in out
    status, out = run(capsys, "cub200", tmp_path, "-o", "data.sample_rate=2")
    assert status == UNREADABLE_LAYOUT and "data.sample_rate: must be in (0, 1]" in out
    status, out = run(capsys, "cub_200", tmp_path)
    assert status == UNREADABLE_LAYOUT and "unknown data set 'cub_200' (did you mean cub200?)" in out


@pytest.mark.slow  # another process (docs/development.md: Tests)
def test_command_line_with_worker_processes(tmp_path):
    for split in ("train", "test"):
        for label in range(2):
            layouts.write_jpeg(str(tmp_path / split / f"c{label}" / "0.jpg"), label)
    result = subprocess.run([sys.executable, "-m", "rifle_paddle.app.check_data", "folder", str(tmp_path), "--workers",
                             "2"], capture_output=True, text=True, timeout=120,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.returncode == OK, result.stdout + result.stderr
    assert "4 of 4 images decode completely" in result.stdout and "all checks passed" in result.stdout


def test_the_loader_workers_a_gpu_needs_at_the_measured_rate(tiny_folder, capsys):
    status, out = run(capsys, "folder", tiny_folder, "--workers", 1, "-o", "data.num_workers=3")
    assert status == 0, out
    assert re.search(r"\d+ of \d+ images decode completely \([\d.]+ s, \d+ images/s with 1 process", out)
    from rifle_paddle.core.throughput import PUBLISHED_RESNET50
    rate = float(re.search(r"input pipeline: (\d+) images/s per loader worker", out).group(1))
    assert f"this machine has {os.cpu_count()} cores, data.num_workers=3" in out
    for gpu, precision, published, batch, _ in PUBLISHED_RESNET50:
        need = int(re.search(rf"{re.escape(gpu)} {precision} \(~{published} images/s published, batch {batch}\): "
                             rf"(\d+) workers?", out).group(1))
        assert need == pytest.approx(published / rate, abs=1)  # ceil of the published rate over the printed one
