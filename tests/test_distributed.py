"""The multi-card path, for real: two processes under ``paddle.distributed.launch`` on the CPU (gloo).

What matters for a GPU cluster is exercised here too: hapi wraps the network in DataParallel, each rank sees its
own shard of the data, RIFLE draws the same new head on every rank without a broadcast, and only rank 0 writes.
"""
import json
import os
import re

import pytest

from multicard import failure, launch, train_args
from rifle_paddle.engine.trainer import RunError, amp_configs


@pytest.mark.slow  # a second process (docs/development.md: Tests)
def test_two_process_launch_shards_data_and_agrees_on_rifle(tmp_path, tiny_folder, tiny_pretrained):
    code, logs, stdout = launch(tmp_path, *train_args(tmp_path, tiny_folder, tiny_pretrained, "rifle.enabled=true",
                                                      "rifle.num_reinits=1", "rifle.min_tail_epochs=1"))
    assert code == 0, failure(code, logs, stdout)
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


@pytest.mark.slow  # a second process (docs/development.md: Tests)
def test_delta_with_supervised_attention_launches_on_two_processes(tmp_path, tiny_folder, tiny_pretrained):
    """DELTA broadcasts rank 0's channel attention while the training step is built, before hapi creates the
    process group: the launch failed with "The global group is not initialized"."""
    code, logs, stdout = launch(tmp_path, *train_args(tmp_path, tiny_folder, tiny_pretrained, "train.epochs=1",
                                                      "regularizer.name=delta", "regularizer.attention_probe=fast",
                                                      "regularizer.attention_batches=1",
                                                      "regularizer.layers=[layer1.1.conv2]"))  # 64 channels
    assert code == 0, failure(code, logs, stdout)
    metrics = json.loads((tmp_path / "output" / "ddp" / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 1 and metrics["regularization"]


@pytest.mark.slow  # a second process (docs/development.md: Tests)
def test_a_two_card_run_resumed_on_one_keeps_each_ranks_streams_and_ends_its_schedule(tmp_path, tiny_folder,
                                                                                    tiny_pretrained):
    """Ctrl-C during the first batch of epoch 1 on 2 ranks (3 batches an epoch; saved after it), resumed on 1 process (6 an epoch):
    the schedule must continue at the same point of training, 1 x 6 + 2 x 1 batches, and reach 0 at the end
    (counting the 2-rank steps as 1-rank ones, it ended at 6.7e-4). The checkpoint keeps every rank's streams."""
    from rifle_paddle.config import load_config
    from rifle_paddle.engine.checkpoint_store import CheckpointStore, Position
    from rifle_paddle.engine.trainer import train
    args = train_args(tmp_path, tiny_folder, tiny_pretrained, "train.epochs=3", "train.lr_schedule=cosine")
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "interrupted_run.py")
    code, logs, stdout = launch(tmp_path, script, "1", "0", *args[2::2])
    assert code == 0, failure(code, logs, stdout)
    run_dir = str(tmp_path / "output" / "ddp")
    position, path = CheckpointStore(run_dir).latest()
    assert position == Position(1, 1)
    state = CheckpointStore(run_dir).load(path)["state.pdstate"]
    assert state["world_size"] == 2 and len(state["rng_ranks"]) == 2
    assert state["rng_ranks"][0]["numpy"] != state["rng_ranks"][1]["numpy"]
    resumed = train(load_config(None, list(args[2::2]) + [f"train.resume={run_dir}"]))
    assert resumed["steps"] == 4 + 4 + 6  # 3 + 1 on 2 ranks, then epoch 1 from batch 2 of 6, then epoch 2
    assert resumed["epochs"][-1]["lr"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.slow  # a second process (docs/development.md: Tests)
def test_nan_policy_stop_stops_every_rank_together_and_train_log_says_why(tmp_path, tiny_folder, tiny_pretrained):
    """A NaN loss on rank 1 only, at global step 5 (epoch 2, after the first checkpoint): every rank stops at that
    step with the message (rank 0 went on into the next all-reduce and died on a reset connection; the reason was
    only in workerlog.1), and train.log names the rank, the step and the last good checkpoint."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "poisoned_run.py")
    args = train_args(tmp_path, tiny_folder, tiny_pretrained, "train.epochs=3")
    code, logs, stdout = launch(tmp_path, script, "1", "5", *args[2::2])
    assert code == 0, failure(code, logs, stdout)
    for text in logs:
        assert "stopped: non-finite training loss" in text and "global step 5" in text
    train_log = (tmp_path / "output" / "ddp" / "train.log").read_text()
    assert "non-finite training loss on rank 1 of 2 (nan" in train_log
    assert "last good checkpoint" in train_log and "checkpoints/epoch_0001" in train_log
