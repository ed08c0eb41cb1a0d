"""The multi-card path, for real: two processes under ``paddle.distributed.launch`` on the CPU (gloo).

What matters for a GPU cluster is exercised here too: hapi wraps the network in DataParallel, each rank sees its
own shard of the data, RIFLE draws the same new head on every rank without a broadcast, and only rank 0 writes.
"""
import json
import os
import re
import subprocess
import sys

import pytest

from rifle_paddle.engine.trainer import RunError, amp_configs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_two_process_launch_shards_data_and_agrees_on_rifle(tmp_path, tiny_folder, tiny_pretrained):
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
           str(tmp_path / "log"), os.path.join(REPO, "train.py"),
           "-o", "model.arch=resnet18", "-o", f"model.pretrained={tiny_pretrained}", "-o", f"data.root={tiny_folder}",
           "-o", "data.image_size=32", "-o", "data.resize_size=32", "-o", "data.batch_size=6",
           "-o", "data.num_workers=0", "-o", "train.epochs=2", "-o", "run.device=cpu", "-o", "run.name=ddp",
           "-o", f"run.output_dir={tmp_path / 'output'}", "-o", "rifle.enabled=true", "-o", "rifle.num_reinits=1",
           "-o", "rifle.min_tail_epochs=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    logs = [(tmp_path / "log" / f"workerlog.{rank}").read_text() for rank in (0, 1)]
    assert proc.returncode == 0, proc.stdout[-2000:] + logs[0][-2000:] + logs[1][-2000:]
    # 36 training images over 2 ranks at batch 6: 3 steps per rank and epoch (one card would take 6);
    # rank 0 alone shows the progress bar
    assert re.search(r"step 3/3 ", logs[0]) and not re.search(r"step \d+/\d+ ", logs[1])
    # both ranks re-drew the same head: identical norms after the re-initialization
    norms = [re.findall(r"re-initialized the classifier before epoch 2 \((.*)\)", text) for text in logs]
    assert norms[0] and norms[0] == norms[1]
    metrics = json.loads((tmp_path / "output" / "ddp" / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["rifle_events"]] == [2] and len(metrics["epochs"]) == 2


def test_amp_is_configured_for_gpu_and_refused_on_cpu():
    cfg = {"amp": True, "amp_level": "O2"}
    assert amp_configs(cfg, "gpu") == {"level": "O2", "init_loss_scaling": 2.0 ** 15}
    assert amp_configs({"amp": False, "amp_level": "O1"}, "cpu") is None
    with pytest.raises(RunError, match="needs a GPU"):
        amp_configs(cfg, "cpu")
