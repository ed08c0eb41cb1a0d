"""A table on the hardware users have: one run per card (what each worker process is given), a SLURM backend through
submitit (run end to end with its local executor; sbatch's refusals through a stand-in sbatch), and the plan's cost.
"""
import json
import os
import stat
import time

import pytest

from rifle_paddle.experiments import cards, configgen, report, sweep
from rifle_paddle.experiments.matrix import load_table
from rifle_paddle.experiments.runs import is_complete

HERE = os.path.dirname(os.path.abspath(__file__))
EPOCHS, STEPS_PER_EPOCH = 3, 3  # tiny_folder: 3 classes x 12 training images, batch 12


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


@pytest.fixture
def tiny_table(tmp_path, tiny_folder, tiny_pretrained):
    """A 2-cell table (data sets alpha and beta, plain fine-tuning) of seconds-long ResNet-18 runs on tiny_folder,
    its configs generated; returns the table file."""
    root = str(tmp_path / "configs")
    _write(f"{root}/base.yaml", f"""
model: {{arch: resnet18, pretrained: {tiny_pretrained}}}
data: {{name: folder, root: {tiny_folder}, image_size: 32, resize_size: 32, batch_size: 12, eval_batch_size: 12,
       num_workers: 4}}
train: {{epochs: {EPOCHS}, lr: 0.01, log_freq: 1, save_best: false}}
run: {{device: cpu}}
log: {{visualdl: false}}
""")
    for name in ("alpha", "beta"):
        _write(f"{root}/datasets/{name}.yaml", "data:\n  name: folder\n")
    _write(f"{root}/methods/finetune.yaml", "rifle:\n  enabled: false\n")
    _write(f"{root}/tables/t.yaml", """
title: "a tiny table"
arch: resnet18
baseline: finetune
datasets: [alpha, beta]
methods:
  finetune: {title: "Fine-tuning", fragments: [finetune]}
""")
    assert configgen.main(["--configs", root]) == 0
    return f"{root}/tables/t.yaml"


# --- one run per card ------------------------------------------------------------------------------------------

@pytest.mark.slow  # other processes (docs/development.md: Tests)
def test_each_worker_sees_only_its_card_and_gets_its_share_of_cores_and_loaders(tiny_table, tmp_path, monkeypatch):
    """4 runs on 2 of 4 cards of an 8-core machine: each process sees one card, never the card of a run going at
    the same time, and gets 8 // 2 = 4 threads; the configs' 4 loader workers stay, 6 asked by a -o are kept,
    8 in a config are lowered to 4."""
    from sweep_probe import record_environment
    for name in (cards.CPU_THREADS_ENV, "OMP_NUM_THREADS", cards.CARDS_ENV):
        monkeypatch.delenv(name, raising=False)
    slots = sweep.resolve_slots("1,3", None, card_count=4, cores=8)
    assert [(s.card, s.threads) for s in slots] == [("1", 4), ("3", 4)]
    out = str(tmp_path / "runs")
    table = load_table(tiny_table)
    jobs = sweep.plan(table, [0, 1], [f"run.output_dir={out}"])
    jobs[1].overrides.append("data.num_workers=6")  # beta, seed 0 and 1 share the overrides' list
    jobs[0].config["data"]["num_workers"] = 8  # alpha: a config that asks for more than a share
    assert sweep.run_jobs(jobs, runner=record_environment, slots=slots) == []
    seen = [json.load(open(os.path.join(j.run_dir, "probe.json"))) for j in jobs]
    assert {s["env"][cards.CARDS_ENV] for s in seen} == {"1", "3"}
    assert all(s["env"][cards.CPU_THREADS_ENV] == "4" and s["env"]["OMP_NUM_THREADS"] == "4" for s in seen)
    assert len({s["pid"] for s in seen}) == 4 and str(os.getpid()) not in {str(s["pid"]) for s in seen}
    for a in seen:  # two runs at once never share a card
        for b in seen:
            if a is not b and a["start"] < b["end"] and b["start"] < a["end"]:
                assert a["env"][cards.CARDS_ENV] != b["env"][cards.CARDS_ENV]
    workers = {s["name"]: [o for o in s["overrides"] if o.startswith("data.num_workers")] for s in seen}
    assert workers == {"alpha-finetune-s0": ["data.num_workers=4"], "alpha-finetune-s1": ["data.num_workers=4"],
                       "beta-finetune-s0": ["data.num_workers=6"], "beta-finetune-s1": ["data.num_workers=6"]}
    assert cards.CARDS_ENV not in os.environ and cards.CPU_THREADS_ENV not in os.environ  # the sweep's own: as it was


def test_cards_are_named_as_the_parents_visible_devices():
    assert cards.visible_cards(4, {}) == ["0", "1", "2", "3"]
    assert cards.visible_cards(2, {cards.CARDS_ENV: "2,5"}) == ["2", "5"]  # a scheduler gave this shell cards 2, 5
    assert cards.parse_cards("5,2", ["2", "5"], True) == ["5", "2"]
    slots = cards.make_slots(None, ["0", "0", "1", "1"], 16)  # a card listed twice: two runs on it
    assert [(s.card, s.threads) for s in slots] == [("0", 4), ("0", 4), ("1", 4), ("1", 4)]
    assert [(s.card, s.threads) for s in cards.make_slots(3, [], 8)] == [(None, 2)] * 3


@pytest.mark.parametrize("argv, cards_here, message", [
    (["--gpus", "0"], 0, "error: --gpus 0: this Paddle has no CUDA support (the CPU wheel)"),
    (["--gpus", "0,7"], 4, "error: --gpus 0,7: there is no card 7 on this machine; visible cards: 0, 1, 2, 3"),
    (["--gpus", "0,1", "--workers", "3"], 4, "error: --workers 3 but only 2 card(s) to run on (0,1): the sweep runs one"),
    (["--workers", "5"], 4, "error: --workers 5 but only 4 card(s) to run on (0,1,2,3)"),
    (["--rate", "fast"], 0, "error: --rate 'fast': expected a positive speed with its unit"),
])
def test_bad_cards_and_workers_get_one_line(tiny_table, argv, cards_here, message, capsys, monkeypatch):
    monkeypatch.setattr(sweep, "cuda_card_count", lambda: cards_here)
    monkeypatch.delenv(cards.CARDS_ENV, raising=False)
    assert sweep.main([tiny_table, "--seeds", "1", "--dry-run", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and len(err.splitlines()) == 1


# --- what the plan costs ---------------------------------------------------------------------------------------

def test_dry_run_counts_steps_from_the_official_split_and_times_them_at_a_given_rate(capsys):
    """The CPU evidence table: 8 cells, 20 images x 5 classes at batch 20 = 5 steps an epoch, 40 epochs."""
    code = sweep.main(["configs/tables/fashion_mnist_cpu.yaml", "--seeds", "1", "--dry-run",
                       "--output-dir", "/nonexistent/runs", "--rate", "100img/s"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2] == "optimizer steps: 1,600 in all, 1,600 left"  # 8 x 40 x 5
    assert lines[-1] == "time: about 5 min 20 s of training left; at 100 img/s (--rate)"  # 1600 x 20 / 100


def test_dry_run_times_the_rest_from_a_measured_epoch(tiny_table, tmp_path, capsys, monkeypatch):
    """alpha has run one epoch (3 steps of 12 images in 6 s: 6 img/s) of its 3, beta (an image folder: no official
    size) has not started: beta is not counted, alpha's 6 steps left take 6 x 12 / 6 = 12 s."""
    monkeypatch.setattr(sweep, "cuda_card_count", lambda: 0)
    out = tmp_path / "runs"
    _write(str(out / "alpha-finetune-s0" / "config.yaml"), "run: {}\n")
    _write(str(out / "alpha-finetune-s0" / "metrics.json"), json.dumps(
        {"epochs": [{"epoch": 1}], "best": None, "steps": 3, "elapsed_s": 6.0, "num_train": 36}))
    assert sweep.main([tiny_table, "--seeds", "1", "--dry-run", "--output-dir", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert EPOCHS * STEPS_PER_EPOCH == 9
    assert lines[-2].startswith("optimizer steps: 9 in all, 6 left (1 run(s) not counted")
    assert "beta-finetune-s0" in lines[-2]
    assert lines[-1] == "time: about 12 s of training left; at 6 img/s (measured: alpha-finetune-s0, 1 epoch(s))"


# --- the cluster: SLURM through submitit -----------------------------------------------------------------------

def _stand_in(directory, name, script):
    path = os.path.join(directory, name)
    _write(path, "#!/bin/sh\n" + script)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)


@pytest.mark.parametrize("sbatch, message", [
    (None, "error: --scheduler slurm: sbatch and srun not found on this machine"),
    ("echo 'sbatch: error: Batch job submission failed: Invalid partition name specified' >&2; exit 1",
     "error: the scheduler refused the jobs (--partition gpu-big, --account lab): Batch job submission failed: "
     "Invalid partition name specified"),
    ("echo 'sbatch: error: Batch job submission failed: Invalid account or account/partition combination "
     "specified' >&2; exit 1",
     "error: the scheduler refused the jobs (--partition gpu-big, --account lab): Batch job submission failed: "
     "Invalid account or account/partition combination specified"),
    ("echo 'sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)' "
     ">&2; exit 1", "error: the scheduler refused the jobs (--partition gpu-big, --account lab): Batch job "
                    "submission failed: Unable to contact slurm controller (connect failure)"),
])
def test_a_scheduler_that_cannot_be_reached_or_refuses_gets_one_line(tiny_table, tmp_path, sbatch, message, capsys,
                                                                      monkeypatch):
    pytest.importorskip("submitit", reason="the optional extra rifle-paddle[slurm] (submitit) is not installed")
    bin_dir = str(tmp_path / "bin")
    os.makedirs(bin_dir)
    if sbatch is not None:
        _stand_in(bin_dir, "sbatch", sbatch)
        _stand_in(bin_dir, "srun", "exit 0\n")
    monkeypatch.setenv("PATH", bin_dir)  # what this machine has of SLURM: the stand-ins, or nothing
    code = sweep.main([tiny_table, "--seeds", "1", "--output-dir", str(tmp_path / "runs"), "--scheduler", "slurm",
                       "--partition", "gpu-big", "--account", "lab"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and len(err.splitlines()) == 1


def test_on_slurm_each_run_is_one_job_of_an_array_asking_for_one_gpu(tiny_table, tmp_path, capsys, monkeypatch):
    pytest.importorskip("submitit", reason="the optional extra rifle-paddle[slurm] (submitit) is not installed")
    bin_dir, kept = str(tmp_path / "bin"), str(tmp_path / "submitted.sh")
    os.makedirs(bin_dir)
    _stand_in(bin_dir, "sbatch", f"cp \"$1\" {kept}; echo 'Submitted batch job 4242'\n")
    _stand_in(bin_dir, "srun", "exit 0\n")
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ["PATH"])
    out = tmp_path / "runs"
    _write(str(out / "beta-finetune-s1" / "config.yaml"), "run: {}\n")  # a complete run: not submitted
    _write(str(out / "beta-finetune-s1" / "metrics.json"), json.dumps({"epochs": [], "final": {"acc_top1": 0.5}}))
    assert sweep.main([tiny_table, "--seeds", "2", "--output-dir", str(out), "--scheduler", "slurm",
                       "--partition", "gpu", "--time", "90", "--slurm", "qos=high"]) == 0
    assert "submitted 3 job(s) to slurm (4242_0 ..." in capsys.readouterr().out
    sbatch = open(kept).read()
    for line in ("#SBATCH --array=0-2", "#SBATCH --gpus-per-node=1", "#SBATCH --ntasks-per-node=1",
                 "#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --qos=high", "#SBATCH --cpus-per-task=8"):
        assert line in sbatch, line
    # submitted again while two of the three are still queued or running: only the third goes, as a single job
    _stand_in(bin_dir, "squeue", "echo 4242_1; echo 4242_2; echo 999\n")
    assert sweep.main([tiny_table, "--seeds", "2", "--output-dir", str(out), "--scheduler", "slurm"]) == 0
    printed = capsys.readouterr().out
    assert ("2 run(s) still have a job queued or running from the last submission, not submitted again: "
            "alpha-finetune-s1, beta-finetune-s0") in printed and "submitted 1 job(s)" in printed
    assert "#SBATCH --array" not in open(kept).read()


def _job_logs(folder) -> str:
    texts = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.endswith((".out", ".err")):
            texts.append(f"--- {name}\n" + open(os.path.join(folder, name)).read()[-3000:])
    return "\n".join(texts)


@pytest.mark.slow  # other processes (docs/development.md: Tests)
def test_a_table_on_the_local_executor_survives_a_killed_job_and_reports(tiny_table, tmp_path, monkeypatch):
    """Two cells x one seed as submitit jobs (its local executor: the same jobs as processes). alpha's job is
    cancelled once it has a checkpoint; beta's completes. The sweep submitted again resubmits only alpha, which
    continues from the checkpoint it left (its earlier epochs kept), and the report reads both runs."""
    pytest.importorskip("submitit", reason="the optional extra rifle-paddle[slurm] (submitit) is not installed")
    from rifle_paddle.engine.checkpoint_store import CheckpointStore
    from rifle_paddle.experiments import scheduler
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]))
    out, folder = str(tmp_path / "output"), str(tmp_path / "jobs")
    jobs = sweep.plan(load_table(tiny_table), [0], [f"run.output_dir={out}", "data.num_workers=0"])
    alpha, beta = (j.run_dir for j in jobs)
    executor = scheduler.make_executor("local", folder, scheduler.Resources(time_min=10))
    submitted = scheduler.submit(executor, jobs)
    assert len(submitted) == 2
    deadline = time.time() + 120
    def epochs_done():  # the run also checkpoints at the start of its first epoch, with nothing done yet
        latest = CheckpointStore(alpha).latest()
        return latest[0].epoch if latest else 0

    while epochs_done() < 1 or not os.path.isfile(os.path.join(alpha, "metrics.json")):
        assert not submitted[0].done(), "alpha's job ended before its first epoch:\n" + _job_logs(folder)
        assert time.time() < deadline, _job_logs(folder)
        time.sleep(0.05)
    submitted[0].cancel()  # as scancel would: the job's process is stopped midway
    submitted[1].result()  # beta runs to its end
    while not submitted[0].done():
        assert time.time() < deadline, _job_logs(folder)
        time.sleep(0.1)
    position = CheckpointStore(alpha).latest()[0]
    assert not is_complete(alpha) and position.epoch < EPOCHS, _job_logs(folder)
    with open(os.path.join(alpha, "metrics.json")) as f:
        epochs_before = json.load(f)["epochs"]

    argv = [tiny_table, "--seeds", "1", "--output-dir", out, "-o", "data.num_workers=0", "--scheduler", "local",
            "--time", "10", "--wait"]  # its logs in output/sweep_jobs/, beside the runs
    assert sweep.main(argv) == 0, _job_logs(os.path.join(out, "sweep_jobs"))
    assert is_complete(alpha) and is_complete(beta)
    with open(os.path.join(alpha, "train.log")) as f:
        log = f.read()
    assert f"resuming {alpha} from " in log and f"({position})" in log  # from the checkpoint the kill left
    with open(os.path.join(alpha, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["steps"] == EPOCHS * STEPS_PER_EPOCH and len(metrics["epochs"]) == EPOCHS
    assert metrics["epochs"][:len(epochs_before)] == epochs_before  # the epochs trained before the kill are kept
    assert report.main([out, "--configs", "/nonexistent"]) == 0
    rows = open(os.path.join(out, "report", "results.csv")).read().splitlines()
    assert [r.split(",")[:3] for r in rows[1:]] == [["alpha", "finetune", "1"], ["beta", "finetune", "1"]]


def test_a_job_reads_its_runs_state_when_it_starts_and_takes_the_cores_it_was_given(tiny_table, tmp_path,
                                                                                      monkeypatch):
    """Submitted as 'to run'; by the time the job starts (a requeue, a resubmission) its run was cut short: it
    continues (train.resume=auto). On a node where the scheduler gave it 2 cores, 2 threads and 2 loader workers
    (the config asks for 4); a run completed meanwhile is not trained again."""
    from rifle_paddle.experiments import scheduler
    monkeypatch.setenv(cards.CPU_THREADS_ENV, "")  # so that what the job sets is undone after the test
    monkeypatch.delenv(cards.CPU_THREADS_ENV)
    monkeypatch.setattr(scheduler, "allotted_cores", lambda: 2)
    ran = []
    monkeypatch.setattr(sweep, "train_in_process",
                        lambda job: ran.append((job.run_overrides, os.environ[cards.CPU_THREADS_ENV])))
    (job, _) = sweep.plan(load_table(tiny_table), [0], [f"run.output_dir={tmp_path}"])
    assert job.state == sweep.TODO
    _write(os.path.join(job.run_dir, "config.yaml"), "run: {}\n")  # started meanwhile, cut short
    scheduler.ClusterRun(job)()
    (overrides, threads), = ran
    assert overrides[-1] == "train.resume=auto" and "data.num_workers=2" in overrides and threads == "2"
    _write(os.path.join(job.run_dir, "metrics.json"), json.dumps({"epochs": [], "final": {"acc_top1": 0.5}}))
    assert scheduler.ClusterRun(job)() == "alpha-finetune-s0: already complete" and len(ran) == 1


def test_the_dry_run_does_not_say_nothing_is_left_when_no_run_has_a_known_size():
    """A table of one's own data set: no official size, no run started, so every run's steps are unknown; the dry
    run said 'time: nothing left to run' over '2 runs ... 2 to run'."""
    from rifle_paddle.experiments.cost import RunCost, summary
    lines = summary([RunCost("mine-finetune-s0", None, 0, 32, None, None),
                     RunCost("mine-rifle-s0", None, 0, 32, None, None)], parallel=1)
    assert not any("nothing left" in line for line in lines), lines
    assert lines[-1].startswith("time: unknown"), lines
