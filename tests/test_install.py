"""The package as a pip user gets it: a non-editable install into a fresh virtualenv, used from a folder outside the
checkout: the version, a packaged config by name, rifle-export and rifle-predict.

The virtualenv sees the system's site-packages (``--system-site-packages``) so that the installed PaddlePaddle is
reused instead of downloaded; the package itself is built from this checkout (``--no-deps``: its dependencies are
those same system packages). Needs Debian's ``dataset-fashion-mnist`` (what the README's install line and CI
install); about a minute on 2 cores.
"""
import csv
import io
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # a virtual environment, pip and several processes (docs/development.md: Tests)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
TARGET_CLASSES = {"sandal", "shirt", "sneaker", "bag", "ankle_boot"}  # the packaged config's data.classes


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(root)], check=True)
    bin_dir = root / ("Scripts" if os.name == "nt" else "bin")
    source = tmp_path_factory.mktemp("source")  # pip builds in its source tree: give it a copy, not the checkout
    for name in ("setup.py", "README.md"):
        shutil.copy(os.path.join(REPO, name), source)
    shutil.copytree(os.path.join(REPO, "rifle_paddle"), source / "rifle_paddle",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-input", str(source)], check=True, env={**os.environ, "PIP_NO_INDEX": "1"})
    return bin_dir


def _run(bin_dir, cwd, *args, timeout=600):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST), reason="needs apt-get install dataset-fashion-mnist")
def test_pip_install_then_train_export_predict_from_elsewhere(venv, tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run(venv, work, "python", "-c", "import rifle_paddle; print(rifle_paddle.__file__)").stdout.strip()
    assert not where.startswith(REPO) and "site-packages" in where, where  # the installed copy, not the checkout
    assert _run(venv, work, "rifle-train", "--version").stdout.startswith("rifle-paddle ")
    _run(venv, work, "rifle-train", "-c", "fashion_mnist/resnet18_finetune", "-o", "model.pretrained=none",
         "-o", "train.epochs=1", "-o", "data.train_per_class=4", "-o", "data.test_per_class=4",
         "-o", "data.batch_size=10", "-o", "run.name=tiny", "-o", "log.visualdl=false")
    run_dir = work / "output" / "tiny"
    assert (run_dir / "config.yaml").is_file() and (run_dir / "classes.json").is_file()
    _run(venv, work, "rifle-export", str(run_dir), "--out", "model")
    import cv2
    import numpy as np
    rng = np.random.default_rng(0)
    for i in range(2):  # two grey 28x28 images, as Fashion-MNIST's
        cv2.imwrite(str(work / f"item{i}.png"), rng.integers(0, 255, (28, 28), dtype=np.uint8))
    out = _run(venv, work, "rifle-predict", "model", "item0.png", "item1.png", "--top-k", "3").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 2 * 3 and {r["class"] for r in rows} <= TARGET_CLASSES
