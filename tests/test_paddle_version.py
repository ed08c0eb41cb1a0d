"""A Paddle outside the supported range, or none, is refused with one line before Paddle is imported (Paddle 2.6.2,
what ``pip install paddlepaddle-gpu`` gives from the default index, ended ``train.py`` in a segmentation fault)."""
import os
import subprocess
import sys

import pytest

from rifle_paddle.core.paddle_version import OLDEST, is_supported

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("version, supported", [(OLDEST, True), ("3.1.1", True), ("3.3.1", True), ("3.2.0rc1", True),
                                                ("2.6.2", False), ("3.0.0b2", True), ("4.0.0", False),
                                                ("0.0.0", True)])  # 0.0.0: Paddle's develop builds
def test_the_supported_range(version, supported):
    assert is_supported(version) is supported


def _fake_paddle(root, distribution: str, version: str) -> str:
    """A ``paddle`` module that ends the process if imported, installed by ``distribution`` ``version``."""
    (root / "paddle").mkdir()
    (root / "paddle" / "__init__.py").write_text("raise SystemExit('the fake paddle was imported')\n")
    info = root / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
    (info / "top_level.txt").write_text("paddle\n")
    return str(root)


def _run(*args, pythonpath: str, flags=()):
    env = {**os.environ, "PYTHONPATH": pythonpath}
    return subprocess.run([sys.executable, *flags, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


def test_paddle_2_6_is_refused_in_one_line_before_it_is_imported(tmp_path):
    fake = _fake_paddle(tmp_path, "paddlepaddle-gpu", "2.6.2")
    proc = _run("train.py", "-c", "fashion_mnist/resnet18_rifle", pythonpath=os.pathsep.join([fake, REPO]))
    assert proc.returncode == 1 and "fake paddle was imported" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "paddlepaddle-gpu 2.6.2 is installed" in lines[0] and "paddlepaddle.org.cn" in lines[0]
    assert 'pip install "paddlepaddle>=' in lines[0]


def test_no_paddle_is_refused_in_one_line(tmp_path):
    proc = _run("-c", "import rifle_paddle", pythonpath=REPO, flags=("-S",))  # -S: no site-packages, no Paddle
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "not installed" in proc.stderr
