"""The package as a pip user gets it: a non-editable install into a fresh virtualenv, used from a folder outside the
checkout: the version, a packaged config by name, rifle-export and rifle-predict.

The virtualenv sees the site-packages of the interpreter running the tests (a ``.pth`` file naming them: with
``--system-site-packages`` a virtualenv made from inside another one sees the base interpreter's, without that one's
Paddle and wheel), so that the installed PaddlePaddle is reused instead of downloaded; the package itself is built
from this checkout (``--no-deps``: its dependencies are those same packages). The train/export/predict test needs
Debian's ``dataset-fashion-mnist`` (what the README's install line and CI install); about a minute on 2 cores. The
two-process launch trains on a generated image folder.
"""
import csv
import io
import os
import shutil
import site
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
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    bin_dir = root / ("Scripts" if os.name == "nt" else "bin")
    inner = subprocess.run([str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(inner, "outer_site_packages.pth"), "w") as f:  # after the venv's own: it installs there
        f.write("\n".join(site.getsitepackages()) + "\n")
    source = tmp_path_factory.mktemp("source")  # pip builds in its source tree: give it a copy, not the checkout
    for name in ("setup.py", "README.md", "LICENSE"):
        shutil.copy(os.path.join(REPO, name), source)
    for folder in ("rifle_paddle", "configs"):  # configs/ ships inside the wheel as rifle_paddle/configs/
        shutil.copytree(os.path.join(REPO, folder), source / folder, ignore=shutil.ignore_patterns("__pycache__"))
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


def test_several_processes_from_the_pip_install_outside_the_checkout(venv, tmp_path, tiny_folder):
    """``rifle-train --processes 2`` (as ``--gpus 0,1`` on cards): paddle.distributed.launch on the installed
    package's own ``__main__.py``, not a checkout's train.py; both ranks train, rank 0 writes the run."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    overrides = ["model.arch=resnet18", "model.pretrained=none", "data.name=folder", f"data.root={tiny_folder}",
                 "data.image_size=32", "data.resize_size=32", "data.batch_size=6", "data.num_workers=0",
                 "train.epochs=1", "run.device=cpu", "run.name=two", "log.visualdl=false"]
    proc = _run(venv, work, "rifle-train", "--processes", "2", *[a for o in overrides for a in ("-o", o)])
    assert "launching: " in proc.stderr and "site-packages" in proc.stderr.split("launching: ")[1].split("\n")[0]
    logs = [(work / "log" / f"workerlog.{rank}").read_text() for rank in range(2)]
    # 36 training images over 2 ranks at batch 6: 3 steps a rank (one process would take 6)
    assert "step 3/3 " in logs[0]
    assert (work / "output" / "two" / "metrics.json").is_file()


def test_the_installed_metadata_states_the_license_and_the_paddle_range(venv, tmp_path):
    metadata = _run(venv, tmp_path, "python", "-c", "from importlib.metadata import metadata; "
                    "m = metadata('rifle-paddle'); print(m['License']); print(m.get_all('Requires-Dist'))").stdout
    assert metadata.startswith("Apache-2.0\n") and "paddlepaddle<4,>=3.0.0; extra == \"cpu\"" in metadata


def test_each_rank_gets_the_arguments_without_the_launch_options():
    from rifle_paddle.app.launch import launch_command
    cmd = launch_command(["--gpus", "0,1", "-c", "cub200/resnet50_rifle", "--launch-log-dir=logs", "-o", "a=b"],
                         "0,1", None, "logs")
    assert cmd[1:6] == ["-m", "paddle.distributed.launch", "--gpus", "0,1", "--log_dir"]
    assert cmd[-5].endswith(os.path.join("rifle_paddle", "__main__.py"))
    assert cmd[-4:] == ["-c", "cub200/resnet50_rifle", "-o", "a=b"]
