"""Tables as matrices: the config generator, the sweep planner (cells, seeds, resuming) and the report."""
import json
import logging
import os
import shlex

import pytest
import yaml

from rifle_paddle.experiments import configgen, report, sweep
from rifle_paddle.config import load_config
from rifle_paddle.experiments.matrix import DATASET_TITLES, TableError, load_table
from rifle_paddle.experiments.runs import find_runs, parse_run_name, run_name

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


TABLE = """
title: "a test table"
baseline: finetune
datasets: [alpha, beta]
methods:
  finetune: {title: "Fine-tuning", fragments: [finetune]}
  rifle:    {title: "RIFLE", fragments: [rifle]}
  dropout:  {title: "Dropout", fragments: [dropout]}
  l2sp:     {title: "L2-SP", fragments: [l2sp]}   # no fragment file: skipped, reported
cells:
  alpha/rifle:
    note: "Two re-initializations here."
    config: {rifle: {num_reinits: 2}}
"""


@pytest.fixture
def configs(tmp_path):
    """A configs folder with base, two data sets, three method fragments and one table."""
    root = str(tmp_path / "configs")
    _write(f"{root}/base.yaml", "train:\n  epochs: 40\n")
    for name in ("alpha", "beta"):
        _write(f"{root}/datasets/{name}.yaml", "data:\n  name: folder\n")
    _write(f"{root}/methods/finetune.yaml", "rifle:\n  enabled: false\n")
    _write(f"{root}/methods/rifle.yaml", "rifle:\n  enabled: true\n  num_reinits: 3\n")
    _write(f"{root}/methods/dropout.yaml", "tricks:\n  dropout: true\n")
    _write(f"{root}/tables/t.yaml", TABLE)
    return root


# --- the generator ---------------------------------------------------------------------------------------------

def test_one_config_per_cell_with_the_cell_additions(configs):
    generation = configgen.Generation([load_table(f"{configs}/tables/t.yaml")])
    written, deleted = generation.write()
    assert sorted(os.path.relpath(p, configs) for p in written) == sorted(
        f"{d}/resnet50_{m}.yaml" for d in ("alpha", "beta") for m in ("finetune", "rifle", "dropout"))
    assert not deleted
    assert sorted(c.key for _, c, _ in generation.skipped) == ["alpha/l2sp", "beta/l2sp"]
    text = open(f"{configs}/alpha/resnet50_rifle.yaml").read()
    assert "# Two re-initializations here." in text and configgen.GENERATED_MARK in text
    assert "_base_: [../base.yaml, ../datasets/alpha.yaml, ../methods/rifle.yaml]" in text
    cfg = load_config(f"{configs}/alpha/resnet50_rifle.yaml")
    assert cfg["rifle"]["enabled"] and cfg["rifle"]["num_reinits"] == 2  # the cell's own key wins
    assert load_config(f"{configs}/beta/resnet50_rifle.yaml")["rifle"]["num_reinits"] == 3
    assert load_config(f"{configs}/beta/resnet50_dropout.yaml")["tricks"]["dropout"]


def test_check_mode_finds_stale_missing_and_orphaned_files(configs, capsys):
    assert configgen.main(["--configs", configs]) == 0
    first = {p: open(p).read() for p in configgen.Generation([load_table(f"{configs}/tables/t.yaml")]).files}
    assert configgen.main(["--configs", configs, "--check"]) == 0
    assert "missing " + os.path.relpath(f"{configs}/methods/l2sp.yaml") in capsys.readouterr().err
    path = f"{configs}/alpha/resnet50_finetune.yaml"
    _write(path, open(path).read() + "train:\n  epochs: 3\n")  # hand-edited
    orphan = f"{configs}/beta/resnet50_gone.yaml"
    _write(orphan, configgen.GENERATED_MARK + "\n_base_: [../base.yaml]\n")
    hand_written = f"{configs}/beta/my_experiment.yaml"  # not marked as generated: never touched
    _write(hand_written, "_base_: [../base.yaml]\n")
    assert configgen.main(["--configs", configs, "--check"]) == 1
    err = capsys.readouterr().err
    assert "stale or missing: " + os.path.relpath(path) in err and "orphaned" in err and "my_experiment" not in err
    assert configgen.main(["--configs", configs]) == 0
    assert not os.path.exists(orphan) and os.path.exists(hand_written)
    assert {p: open(p).read() for p in first} == first  # deterministic: the same bytes again
    assert configgen.main(["--configs", configs, "--check"]) == 0


def test_a_cell_shared_by_two_tables_must_agree(configs):
    _write(f"{configs}/tables/u.yaml", TABLE.replace("Two re-initializations here.", "Another note."))
    with pytest.raises(TableError, match="generate it differently"):
        configgen.Generation([load_table(f"{configs}/tables/t.yaml"), load_table(f"{configs}/tables/u.yaml")])


def test_table_errors_are_reported_together(tmp_path):
    path = str(tmp_path / "tables" / "bad.yaml")
    _write(path, """
datasets: [cub200, Bad-Name]
baseline: plain
methods:
  rifle: {fragments: [rifle]}
  nofrag: {title: x}
cells:
  cub200/unknown: {config: {rifle: {num_reinit: 2}}}
""")
    with pytest.raises(TableError) as e:
        load_table(path)
    problems = "\n".join(e.value.problems)
    for expected in ("'Bad-Name' must be lower-case", "method 'nofrag': needs 'fragments'", "baseline 'plain'",
                     "'cub200/unknown' is not", "unknown config key 'rifle.num_reinit'"):
        assert expected in problems


def test_the_repository_configs_are_generated_and_up_to_date():
    assert configgen.main(["--configs", os.path.join(REPO, "configs"), "--check"]) == 0
    tables = [load_table(p) for p in configgen.table_paths(os.path.join(REPO, "configs"))]
    generation = configgen.Generation(tables)
    assert configgen.validate_written(sorted(generation.files)) == []
    # the authors' per-data-set re-initialization counts are kept (CUB: cyclic_num 3, Cars: cyclic_num 4)
    cub = load_config(os.path.join(REPO, "configs", "cub200", "resnet50_rifle.yaml"))
    cars = load_config(os.path.join(REPO, "configs", "stanford_cars", "resnet50_rifle.yaml"))
    assert (cub["rifle"]["num_reinits"], cars["rifle"]["num_reinits"]) == (2, 3)
    assert all(d in DATASET_TITLES for t in tables for d in t.datasets)


# --- the sweep planner -----------------------------------------------------------------------------------------

def _finished_run(run_dir, acc=0.5, best=None, seed=None, config=None):
    """A finished run; its config names the cell its folder name says, as a generated table config does."""
    if config is None:
        dataset, method, named_seed = parse_run_name(os.path.basename(run_dir))
        config = {"run": {"seed": named_seed if seed is None else seed, "cell": f"{dataset}/{method}"}}
    _write(os.path.join(run_dir, "config.yaml"), yaml.safe_dump(config))
    _write(os.path.join(run_dir, "metrics.json"), json.dumps({
        "epochs": [], "best": {"epoch": 0, "test_acc_top1": acc if best is None else best},
        "final": {"acc_top1": acc, "loss": 1.0}}))


def _unfinished_run(run_dir):
    _write(os.path.join(run_dir, "config.yaml"), "run: {}\n")
    _write(os.path.join(run_dir, "metrics.json"), json.dumps({"epochs": [{"epoch": 0}], "best": None}))


def test_plan_is_every_cell_times_every_seed_seed_major(configs, tmp_path):
    configgen.main(["--configs", configs])
    table = load_table(f"{configs}/tables/t.yaml")
    out = str(tmp_path / "runs")
    jobs = sweep.plan(table, [0, 1, 2], [f"run.output_dir={out}"], methods=["finetune", "rifle", "dropout"])
    assert len(jobs) == 2 * 3 * 3
    assert [j.name for j in jobs[:6]] == [f"{d}-{m}-s0" for d in ("alpha", "beta")
                                          for m in ("finetune", "rifle", "dropout")]
    assert [j.seed for j in jobs] == [0] * 6 + [1] * 6 + [2] * 6
    assert all(j.state == sweep.TODO and j.run_dir == os.path.join(out, j.name) for j in jobs)
    assert jobs[0].run_overrides[-2:] == ["run.seed=0", "run.name=alpha-finetune-s0"]
    with pytest.raises(sweep.SweepError, match="alpha/l2sp: .* does not exist"):
        sweep.plan(table, [0], [f"run.output_dir={out}"])  # l2sp has no config: named, with the way out
    with pytest.raises(TableError, match="unknown method bss"):
        sweep.plan(table, [0], methods=["bss"])
    _write(f"{configs}/tables/t.yaml", TABLE.replace("num_reinits: 2", "num_reinits: 1"))  # not regenerated
    with pytest.raises(sweep.SweepError, match="alpha/rifle: .* is not what the table says now"):
        sweep.plan(load_table(f"{configs}/tables/t.yaml"), [0], methods=["rifle"])


def test_an_interrupted_sweep_resumes(configs, tmp_path):
    configgen.main(["--configs", configs])
    table = load_table(f"{configs}/tables/t.yaml")
    out = str(tmp_path / "runs")
    _finished_run(os.path.join(out, "alpha-rifle-s0"))
    _unfinished_run(os.path.join(out, "beta-finetune-s1"))
    jobs = sweep.plan(table, [0, 1], [f"run.output_dir={out}"], methods=["finetune", "rifle"])
    states = {j.name: j.state for j in jobs}
    assert states["alpha-rifle-s0"] == sweep.DONE and states["beta-finetune-s1"] == sweep.INCOMPLETE
    assert sum(s == sweep.TODO for s in states.values()) == 6
    ran, lines = [], []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logging.getLogger("rifle_paddle").addHandler(handler)
    try:
        failures = sweep.run_jobs(jobs, runner=lambda job: ran.append((job.name, job.run_overrides)))
    finally:
        logging.getLogger("rifle_paddle").removeHandler(handler)
    assert not failures
    finished = [line for line in lines if line.startswith("sweep: ") and " took " in line]
    assert len(finished) == 7 and "7/7 runs: " in finished[-1] and "about 0 s left" in finished[-1]
    assert "1/7 runs: " in finished[0] and " left (ends near " in finished[0]
    assert [name for name, _ in ran] == [j.name for j in jobs if j.name != "alpha-rifle-s0"]
    overrides = dict(ran)
    assert overrides["beta-finetune-s1"][-1] == "train.resume=auto"  # a cut-short run continues
    assert not any(o.startswith(("train.resume", "run.overwrite")) for o in overrides["alpha-finetune-s0"])


def test_a_failed_run_stops_the_sweep_unless_keep_going(configs, tmp_path):
    configgen.main(["--configs", configs])
    table = load_table(f"{configs}/tables/t.yaml")
    jobs = sweep.plan(table, [0], [f"run.output_dir={tmp_path}"], methods=["finetune"])

    def broken(job):
        raise RuntimeError("no data")
    assert len(sweep.run_jobs(jobs, runner=broken)) == 1
    assert len(sweep.run_jobs(jobs, keep_going=True, runner=broken)) == 2


def record_process(job):
    """A picklable runner: notes which process ran the job (a fresh one per job); 'rifle' runs fail."""
    os.makedirs(job.run_dir, exist_ok=True)
    with open(os.path.join(job.run_dir, "ran_in"), "w") as f:
        f.write(str(os.getpid()))
    if job.cell.method.name == "rifle":
        raise RuntimeError(f"{job.name} broke")


@pytest.mark.slow  # other processes (docs/development.md: Tests)
def test_workers_run_jobs_in_fresh_processes_and_report_failures(configs, tmp_path):
    configgen.main(["--configs", configs])
    table = load_table(f"{configs}/tables/t.yaml")
    jobs = sweep.plan(table, [0], [f"run.output_dir={tmp_path}"], methods=["finetune", "rifle"])
    failures = sweep.run_jobs(jobs, keep_going=True, runner=record_process, workers=2)
    assert sorted(job.name for job, _ in failures) == ["alpha-rifle-s0", "beta-rifle-s0"]
    assert all("RuntimeError: " in error and "broke" in error for _, error in failures)
    pids = {open(os.path.join(j.run_dir, "ran_in")).read() for j in jobs}
    assert len(pids) == len(jobs) == 4 and str(os.getpid()) not in pids


@pytest.mark.parametrize("bad", ["0", "-2", "two"])
def test_workers_must_be_a_positive_number(bad, capsys):
    with pytest.raises(SystemExit):
        sweep.main(["configs/tables/fashion_mnist_cpu.yaml", "--workers", bad, "--dry-run"])
    assert "--workers" in capsys.readouterr().err


def test_print_mode_gives_one_train_command_per_pending_run(configs, tmp_path, capsys, monkeypatch):
    configgen.main(["--configs", configs])
    monkeypatch.chdir(tmp_path)
    out = str(tmp_path / "runs")
    _finished_run(os.path.join(out, "alpha-finetune-s0"))
    capsys.readouterr()
    code = sweep.main([f"{configs}/tables/t.yaml", "--seeds", "2", "--methods", "finetune", "--print",
                       "--output-dir", out, "--data-root", "alpha=/data/a b"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3  # 2 data sets x 2 seeds, one done
    args = shlex.split(lines[0])
    assert args[:3] == ["rifle-train", "-c", os.path.relpath(f"{configs}/beta/resnet50_finetune.yaml")]
    assert args[3:] == ["-o", f"run.output_dir={out}", "-o", "run.seed=0", "-o", "run.name=beta-finetune-s0"]
    assert "data.root=/data/a b" in shlex.split(lines[1])  # alpha, seed 1, quoted for the shell
    assert sweep.main([f"{configs}/tables/t.yaml", "--data-root", "gamma=/x", "--dry-run"]) == 2
    assert "'gamma' is not a data set" in capsys.readouterr().err


# --- the report ------------------------------------------------------------------------------------------------

@pytest.fixture
def synthetic_runs(tmp_path):
    root = str(tmp_path / "output")
    for seed, acc in enumerate([0.70, 0.72, 0.74]):
        _finished_run(os.path.join(root, run_name("alpha", "finetune", seed)), acc, seed=seed)
    for seed, (acc, best) in enumerate([(0.75, 0.80), (0.75, 0.76), (0.78, 0.78)]):
        _finished_run(os.path.join(root, run_name("alpha", "rifle", seed)), acc, best=best, seed=seed)
    _finished_run(os.path.join(root, "beta-finetune-s0"), 0.50)
    _finished_run(os.path.join(root, "beta-rifle-s4"), 0.56)
    _unfinished_run(os.path.join(root, "alpha-dropout-s0"))  # interrupted: not counted
    return root


def test_report_means_stds_and_deltas_are_exact(synthetic_runs):
    published = {("alpha", "finetune"): {"acc_top1": 0.71, "kind": "paper", "source": "Paper X, Table 1"}}
    rep = report.build_report(find_runs(synthetic_runs), published=published,
                              order=(["beta", "alpha"], ["finetune", "rifle"], {"rifle": "RIFLE"}))
    assert rep.datasets == ["beta", "alpha"] and rep.methods == ["finetune", "rifle"]
    base, rifle = rep.cells[("alpha", "finetune")], rep.cells[("alpha", "rifle")]
    assert base.seeds == [0, 1, 2] and base.mean == pytest.approx(0.72, abs=1e-12)
    assert base.std == pytest.approx(0.02, abs=1e-12)
    assert rifle.mean == pytest.approx(0.76, abs=1e-12)
    assert rifle.std == pytest.approx(0.0003 ** 0.5, abs=1e-12)  # sample std: ((.01^2 + .01^2 + .02^2) / 2)^.5
    assert rifle.delta == pytest.approx(0.04, abs=1e-12) and base.delta == 0
    beta = rep.cells[("beta", "rifle")]
    assert beta.n == 1 and beta.std is None and beta.delta == pytest.approx(0.06, abs=1e-12)
    assert [os.path.basename(p) for p in rep.incomplete] == ["alpha-dropout-s0"]
    assert rep.ignored == [] and rep.warnings == []

    md = report.to_markdown(rep)
    assert "| Method | beta | alpha |" in md
    assert "| Fine-tuning | " not in md and "| finetune | 50.00 [n=1] | 72.00 ± 2.00 · paper 71.00 [1] |" in md
    assert "| RIFLE | 56.00 (+6.00) [n=1] | 76.00 ± 1.73 (+4.00) |" in md
    assert "1. Paper X, Table 1" in md and "alpha-dropout-s0" in md
    rows = report.to_csv(rep).splitlines()
    assert rows[0] == ("dataset,method,n,seeds,mean_top1_pct,std_top1_pct,delta_vs_finetune_pct,"
                       "published_top1_pct,published_source")
    assert rows[3] == "alpha,finetune,3,0 1 2,72.0,2.0,0.0,71.0,\"Paper X, Table 1\""


def test_paired_differences_match_a_hand_computed_t_test(synthetic_runs):
    rep = report.build_report(find_runs(synthetic_runs))
    (pair,) = report.paired_differences(rep)  # beta has no seed that both methods ran: no pair
    assert (pair.dataset, pair.method, pair.seeds) == ("alpha", "rifle", [0, 1, 2])
    assert pair.differences == pytest.approx([0.05, 0.03, 0.04], abs=1e-12)
    assert pair.mean == pytest.approx(0.04, abs=1e-12) and pair.std == pytest.approx(0.01, abs=1e-12)
    assert (pair.wins, pair.losses) == (3, 0)
    # t = 0.04 / (0.01 / sqrt 3) = sqrt 48 with 2 degrees of freedom: two-sided p = 1 - t / sqrt(t^2 + 2)
    assert pair.p_value == pytest.approx(1 - 48 ** 0.5 / 50 ** 0.5, rel=1e-9)
    assert pair.verdict().startswith("better (p = 0.020")
    md = report.to_markdown(rep)
    assert "## Paired differences to finetune" in md and "| alpha | rifle | 3 | +4.00 ± 1.00 | +5.00 +3.00 +4.00 | 3/3 | 0.020 |" in md


def test_a_tie_up_to_float_rounding_reads_as_a_tie():
    """Real accuracies (the committed 192-label momentum-reset runs against plain) whose differences sum to 0 but
    whose float mean is -2.2e-17: neither 'worse' nor 'better'."""
    plain = {0: 0.9512, 1: 0.9512, 2: 0.9412, 3: 0.9500, 4: 0.9500}
    reset = {0: 0.9512, 1: 0.9500, 2: 0.9400, 3: 0.9520, 4: 0.9504}
    pair = report.paired_difference("d", "m", plain, reset)
    assert pair.mean != 0 and abs(pair.mean) < 1e-15  # the float noise this is about
    assert pair.direction == 0 and not pair.significantly_worse()
    assert pair.verdict() == "the same on average (5 pairs, p = 1.00)"
    assert report.paired_difference("d", "m", plain, {**reset, 4: 0.9506}).direction == 1  # one image in 5,000 counts


def test_report_best_metric_and_files(synthetic_runs):
    code = report.main([synthetic_runs, "--metric", "best", "--configs", "/nonexistent"])
    assert code == 0
    out = os.path.join(synthetic_runs, "report")
    csv_rows = open(os.path.join(out, "results.csv")).read().splitlines()
    alpha_rifle = next(r for r in csv_rows if r.startswith("alpha,rifle,"))
    assert alpha_rifle.split(",")[4] == "78.0"  # mean of the best epochs 0.80, 0.76, 0.78
    assert "at the best epoch" in open(os.path.join(out, "results.md")).read()
    with open(os.path.join(out, "results.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert report.main([synthetic_runs, "--configs", "/nonexistent"]) == 0  # a report folder does not disturb


def test_report_restricted_to_one_table(synthetic_runs, configs, tmp_path):
    out = str(tmp_path / "t_report")
    _write(f"{configs}/tables/t.yaml", TABLE.replace("datasets: [alpha, beta]", "datasets: [alpha]"))
    assert report.main([synthetic_runs, "--table", f"{configs}/tables/t.yaml", "--out", out]) == 0
    md = open(os.path.join(out, "results.md")).read()
    assert "| Method | alpha |" in md and "| RIFLE | 76.00 ± 1.73 (+4.00) |" in md and "Fine-tuning" in md


def test_report_refuses_empty_and_ambiguous_folders(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert report.main([str(empty)]) == 2
    assert "holds no run directory" in capsys.readouterr().err
    assert report.main([str(tmp_path / "missing")]) == 2
    _finished_run(str(tmp_path / "a" / "alpha-rifle-s0"))
    _finished_run(str(tmp_path / "b" / "alpha-rifle-s0"))
    with pytest.raises(report.ReportError, match="two runs of alpha/rifle, seed 0"):
        report.build_report(find_runs(str(tmp_path)))
    _unfinished_run(str(tmp_path / "c" / "alpha-rifle-s1"))
    with pytest.raises(report.ReportError, match="no complete run"):
        report.build_report(find_runs(str(tmp_path / "c")))


def test_report_reads_each_runs_cell_from_its_config_not_its_folder_name(tmp_path, capsys):
    root = tmp_path / "output"
    fashion = {"name": "fashion_mnist"}
    # the demo's runs: no run.cell, names outside the tables -> data.name and the method their switches make
    _finished_run(str(root / "demo" / "finetune"), 0.81, config={"run": {"seed": 0}, "data": fashion})
    _finished_run(str(root / "demo" / "rifle"), 0.83,
                  config={"run": {"seed": 0}, "data": fashion, "rifle": {"enabled": True}})
    # a Fashion-MNIST run renamed as a CUB-200 one (a config from before run.cell): reported as Fashion-MNIST
    _finished_run(str(root / "cub200-rifle-s3"), 0.85,
                  config={"run": {"seed": 3}, "data": fashion, "rifle": {"enabled": True}})
    # a generated table config whose folder was renamed: its run.cell and run.seed win
    _finished_run(str(root / "cub200-finetune-s0"), 0.79, config={"run": {"seed": 5, "cell": "fashion_mnist/l2sp"}})
    # an older run whose name agrees with its config: the name's cell (regimes like fashion_mnist_192 live there)
    _finished_run(str(root / "fashion_mnist_192-finetune-s2"), 0.90, config={"run": {"seed": 2}, "data": fashion})
    published = {("cub200", "rifle"): {"acc_top1": 0.80, "kind": "paper", "source": "RIFLE, Table 1"}}
    rep = report.build_report(find_runs(str(root)), published=published)
    assert {key: cell.seeds for key, cell in rep.cells.items()} == {
        ("fashion_mnist", "finetune"): [0], ("fashion_mnist", "rifle"): [0, 3], ("fashion_mnist", "l2sp"): [5],
        ("fashion_mnist_192", "finetune"): [2]}
    assert all(cell.published is None for cell in rep.cells.values())  # never beside CUB-200's paper number
    assert len(rep.warnings) == 2
    renamed = next(w for w in rep.warnings if "cub200-rifle-s3" in w)
    assert "data set cub200 (config: data.name=fashion_mnist)" in renamed
    moved = next(w for w in rep.warnings if "cub200-finetune-s0" in w)
    assert "cell cub200/finetune (config: fashion_mnist/l2sp)" in moved and "seed 0 (config: run.seed=5)" in moved
    assert report.main([str(root), "--configs", "/nonexistent"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: ") == 2 and "reported as its config says" in err


def test_method_names_of_adhoc_runs_follow_the_tables():
    from rifle_paddle.experiments.runs import method_from_switches
    assert method_from_switches({}) == "finetune"
    assert method_from_switches({"rifle": {"enabled": True}, "regularizer": {"name": "l2sp"}}) == "rifle_l2sp"
    assert method_from_switches({"regularizer": {"name": "delta"}, "dtnh": {"enabled": True}}) == "delta_dtnh"
    assert method_from_switches({"rifle": {"enabled": True, "reset_optimizer_state": True}}) == "rifle_reset"
    assert method_from_switches({"tricks": {"disturb_label": True}}) == "disturblabel"
    assert method_from_switches({"train": {"lr_schedule": "cyclic"}}) == "cyclic_lr"


def test_published_numbers_cite_their_source():
    published = report.load_published()
    assert published, "the published numbers file is empty"
    for (dataset, method), entry in published.items():
        assert dataset in DATASET_TITLES and parse_run_name(run_name(dataset, method, 0))
        assert 0 < entry["acc_top1"] < 1 and "table" in entry["source"].lower()
        # the label printed beside the number names the source it was read in: README numbers are not "paper"
        assert ("README" in entry["source"]) == (entry["kind"] == "authors' code README")


def test_bar_chart_starts_at_zero_and_shows_every_seed(synthetic_runs):
    rep = report.build_report(find_runs(synthetic_runs))
    fig = report.bar_chart_figure(rep)
    (ax,) = fig.axes
    assert ax.get_ylim()[0] == 0
    bars = sorted(round(patch.get_height(), 6) for patch in ax.patches)
    assert bars == sorted(round(100 * cell.mean, 6) for cell in rep.cells.values())
    dots = sorted(round(y, 6) for collection in ax.collections for _, y in collection.get_offsets())
    assert dots == sorted(round(100 * v, 6) for cell in rep.cells.values() for v in cell.values)
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_a_generated_config_outside_the_package_names_its_own_tables_and_the_option(configs):
    """The header of a config generated from a folder of one's own (or benchmarks/configs/) said 'from
    configs/tables/', the package's tables, where editing and regenerating changes nothing of it."""
    configgen.Generation([load_table(f"{configs}/tables/t.yaml")]).write()
    header = [line for line in open(f"{configs}/alpha/resnet50_rifle.yaml") if line.startswith(configgen.GENERATED_MARK)]
    assert len(header) == 1 and "configs/tables/" not in header[0] and "../tables/" in header[0], header
    assert "--configs" in header[0], header


def test_the_check_of_a_folder_of_ones_own_says_how_to_regenerate_that_folder(configs, capsys):
    """`configgen --configs DIR --check` on stale files said to run `configgen` alone, which regenerates the
    package's configs and leaves DIR's stale."""
    assert configgen.main(["--configs", configs, "--check"]) == 1
    hint = [line for line in capsys.readouterr().err.splitlines() if "to regenerate" in line]
    assert hint and f"--configs {configs}" in hint[0], hint


def test_the_documented_table_path_works_from_any_folder(tmp_path, monkeypatch):
    """docs/tables.md's `TABLE=configs/tables/rifle_table_tricks.yaml` is the package's table; from a folder that
    is not a checkout (a pip install) the sweep said 'file not found', where `-c cub200/resnet50_rifle` works."""
    monkeypatch.chdir(tmp_path)
    for spec in ("configs/tables/rifle_table_tricks.yaml", "tables/rifle_table_tricks"):
        table = load_table(spec)
        assert table.name == "rifle_table_tricks" and os.path.isfile(table.path), spec
