"""Running a script as two processes under ``paddle.distributed.launch`` on the CPU (gloo), for the multi-card tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def launch(tmp_path, script: str, *args: str, nproc: int = 2, timeout: int = 300) -> tuple[int, list[str], str]:
    """Run ``script args`` as ``nproc`` ranks; return the launcher's exit code, each rank's log and its stdout."""
    log_dir = tmp_path / "log"
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(nproc), "--log_dir",
           str(log_dir), script, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO}
    # a session of its own, so that a timeout ends the ranks too, not only the launcher (they would keep running)
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    logs = [(log_dir / f"workerlog.{rank}").read_text() if (log_dir / f"workerlog.{rank}").exists() else ""
            for rank in range(nproc)]
    return proc.returncode, logs, stdout


def failure(code: int, logs: list[str], stdout: str) -> str:
    """What to show when a launch failed: the end of every output."""
    return f"exit {code}\n" + stdout[-2000:] + "".join(f"\n--- rank {r}\n{text[-3000:]}" for r, text in enumerate(logs))


def train_args(tmp_path, tiny_folder, tiny_pretrained, *overrides: str) -> list[str]:
    """train.py on the tiny image folder, ResNet-18 at 32 px, on the CPU, into ``tmp_path/output/ddp``."""
    base = ["model.arch=resnet18", f"model.pretrained={tiny_pretrained}", f"data.root={tiny_folder}",
            "data.image_size=32", "data.resize_size=32", "data.batch_size=6", "data.num_workers=0", "train.epochs=2",
            "run.device=cpu", "run.name=ddp", f"run.output_dir={tmp_path / 'output'}", *overrides]
    return [os.path.join(REPO, "train.py")] + [arg for o in base for arg in ("-o", o)]
