"""The CPU evidence's bookkeeping (benchmarks/evidence.py): tails, pairing and the resumable plan."""
import pytest

from benchmarks import evidence


def _summary(dataset, method, seed, acc, rifle_epochs=(), steps_per_epoch=5, epochs=40):
    return {"run": f"{dataset}-{method}-s{seed}", "dataset": dataset, "method": method, "seed": seed,
            "acc_top1": acc, "steps": steps_per_epoch * epochs, "epochs": [{"epoch": e} for e in range(epochs)],
            "rifle_epochs": list(rifle_epochs), "elapsed_s": 60.0, "source_md5": "x",
            "weight_change": {"conv1.weight": 0.1, "layer1.0.conv1.weight": 0.2, "layer1.0.conv2.weight": 0.4}}


def test_steps_after_the_last_reinitialization():
    assert evidence.steps_after_last_reinit(_summary("r", "rifle", 0, 0.5, [10, 20, 30], 5)) == 50
    assert evidence.steps_after_last_reinit(_summary("r", "rifle_k3", 0, 0.5, [13, 26], 100)) == 1400
    assert evidence.steps_after_last_reinit(_summary("r", "finetune", 0, 0.5)) is None


def test_regime_rows_pair_seeds_and_compute_the_difference():
    runs = [_summary("fashion_mnist_32", "finetune", s, a) for s, a in [(0, 0.80), (1, 0.70), (2, 0.90)]]
    runs += [_summary("fashion_mnist_32", "rifle", s, a, [10, 20, 30]) for s, a in [(0, 0.78), (1, 0.71)]]
    (row,) = evidence.regime_rows(runs, ["fashion_mnist_32"], ["rifle", "rifle_k3"])
    assert row["pair"].seeds == [0, 1] and row["pair"].differences == pytest.approx([-0.02, 0.01])
    assert row["tail_steps"] == 50 and row["steps_per_epoch"] == 5
    assert row["plain"] == [0.80, 0.70]  # only the paired seeds


def test_stage_change_averages_the_layers_of_a_stage():
    assert evidence.stage_change(_summary("r", "finetune", 0, 0.5)) == pytest.approx({"conv1": 0.1, "layer1": 0.3})


def test_the_evidence_configs_are_generated_up_to_date_and_load(monkeypatch):
    """The evidence's own configs folder (benchmarks/configs/), whose base, data sets and methods default to the
    package's: ``configgen --configs benchmarks/configs --check`` passes and every cell loads."""
    from rifle_paddle.experiments import configgen
    from rifle_paddle.experiments.matrix import load_table
    monkeypatch.chdir(evidence.REPO)
    assert configgen.main(["--configs", evidence.CONFIGS, "--check"]) == 0
    generation = configgen.Generation([load_table(p) for p in configgen.table_paths(evidence.CONFIGS)])
    assert len(generation.files) == 4 * 3 + 8 - 3 and configgen.validate_written(sorted(generation.files)) == []


def test_the_plan_covers_both_tables_once_cheap_cells_first(monkeypatch):
    monkeypatch.chdir(evidence.REPO)
    jobs = evidence.plan_jobs([0, 1])
    names = [j.name for j in jobs]
    assert len(names) == len(set(names)) == 2 * (4 * 3 + 8 - 3)  # 192/finetune, rifle, rifle_k3 are shared
    late = [i for i, j in enumerate(jobs) if "640" in j.cell.dataset or j.cell.method.name == "delta"]
    assert late == list(range(len(jobs) - len(late), len(jobs)))  # the expensive regime and DELTA come last
    assert names.index("fashion_mnist_32-finetune-s1") < names.index("fashion_mnist_640-finetune-s0")


def _row(tail, differences):
    from rifle_paddle.experiments.report import paired_difference
    plain = {s: 0.5 for s in range(len(differences))}
    pair = paired_difference("r", "rifle", plain, {s: 0.5 + d for s, d in enumerate(differences)})
    return {"tail_steps": tail, "pair": pair}


def test_warning_threshold_follows_the_preregistered_rule():
    up, down = [0.01] * 5, [-0.01] * 5
    # negative up to 210 steps, non-negative from 300 on -> 300
    rows = [_row(50, down), _row(150, down), _row(210, down), _row(300, up), _row(420, up), _row(1000, up)]
    assert evidence.warning_threshold(rows) == (300, True)
    # a negative point above a positive one resets the run: only the tails after the last loss count -> 1010
    rows = [_row(50, up), _row(420, down), _row(1010, up), _row(1400, up)]
    assert evidence.warning_threshold(rows) == (1010, True)
    # RIFLE loses even at the longest tail: one more than that tail, and no measured tail sufficed
    assert evidence.warning_threshold([_row(50, up), _row(1400, down)]) == (1401, False)
    # a tie counts as "at least 0" even when float rounding makes its mean -2.2e-17 (real accuracies)
    from rifle_paddle.experiments.report import paired_difference
    tie = {"tail_steps": 1000, "pair": paired_difference("r", "rifle", dict(enumerate([.9512, .9512, .9412, .95, .95])),
                                                         dict(enumerate([.9512, .95, .94, .952, .9504])))}
    assert tie["pair"].mean < 0  # the float noise this is about
    assert evidence.warning_threshold([_row(420, down), tie, _row(1400, up)]) == (1000, True)
    # cells with fewer than 5 seeds do not count
    assert evidence.warning_threshold([_row(50, [0.01] * 4)]) == (None, False)


def test_the_code_value_is_the_rule_rounded_up_to_50_steps():
    assert [evidence.short_tail_steps(t) for t in (300, 301, 421, 1010, 1401)] == [300, 350, 450, 1050, 1450]


def _regime_row(dataset, method, n):
    return dict(_row(50, [0.01] * n), dataset=dataset, method=method)


def test_the_curve_is_complete_only_when_every_point_has_5_seeds():
    rows = [_regime_row("a", "rifle", 5), _regime_row("a", "rifle_k3", 5), _regime_row("b", "rifle", 5)]
    assert not evidence.curve_complete(rows, ["a", "b"], ["rifle", "rifle_k3"])  # b/rifle_k3 missing
    rows.append(_regime_row("b", "rifle_k3", 4))
    assert not evidence.curve_complete(rows, ["a", "b"], ["rifle", "rifle_k3"])  # ... has 4 seeds
    rows[-1] = _regime_row("b", "rifle_k3", 5)
    assert evidence.curve_complete(rows, ["a", "b"], ["rifle", "rifle_k3"])


def test_the_report_says_whether_the_code_holds_the_finding(monkeypatch):
    from rifle_paddle.callbacks import rifle
    monkeypatch.setattr(rifle, "SHORT_TAIL_STEPS", 1050)
    (text, _) = evidence.threshold_text(1010, True, complete=True)
    assert "rounded up, 1050 steps" in text and "hold this finding" in text
    (text, _) = evidence.threshold_text(1001, False, complete=True)  # the value agrees, the sentence does not
    assert "no measured tail sufficed" in text and "The code disagrees" in text and "rewrite" in text
    (text, _) = evidence.threshold_text(421, True, complete=True)
    assert "The code disagrees" in text and "set it to 450" in text
    (text, _) = evidence.threshold_text(421, True, complete=False)
    assert "not final" in text and "the code keeps 1050" in text


def test_the_code_holds_the_committed_evidence(monkeypatch):
    """The library's warning (SHORT_TAIL_STEPS and the sentence of SHORT_TAIL_FINDING) against the rule applied to
    the committed run summaries (the curve is complete since 2026-12-04): adding or changing runs without updating
    the library fails here."""
    monkeypatch.chdir(evidence.REPO)
    regimes = evidence._tables()["regimes"]
    methods = [m for m in regimes.methods if m != regimes.baseline]
    rows = evidence.regime_rows(evidence.load_summaries(), regimes.datasets, methods)
    assert evidence.curve_complete(rows, regimes.datasets, methods), "committed run summaries are missing"
    threshold, sufficed = evidence.warning_threshold(rows)
    assert evidence.code_holds(evidence.short_tail_steps(threshold), sufficed), (threshold, sufficed)


def _cell(method, accs, dataset="fashion_mnist_192"):
    return [_summary(dataset, method, s, a) for s, a in enumerate(accs)]


def test_secondary_comparisons_pair_a_method_with_the_one_it_adds_a_switch_to():
    runs = _cell("l2sp", [0.90, 0.80, 0.70]) + _cell("l2sp_dtnh", [0.91, 0.80, 0.72]) + _cell("rifle", [0.5, 0.5])
    rows = {(m, ref): pair for m, ref, _, pair in evidence.secondary_rows(runs, "fashion_mnist_192")}
    assert set(rows) == {("l2sp_dtnh", "l2sp")}  # the others have no runs
    assert rows["l2sp_dtnh", "l2sp"].differences == pytest.approx([0.01, 0.0, 0.02])


def test_never_hurt_reading_says_whether_the_claim_was_exercised_and_what_happened():
    plain = _cell("finetune", [0.90, 0.80, 0.70, 0.60])
    hurting = _cell("l2sp", [0.88, 0.79, 0.67, 0.58])  # -2, -1, -3, -2 points: t = -4.9, p = 0.016
    assert evidence.never_hurt_reading(plain + hurting, "fashion_mnist_192", "finetune") is None  # no DTNH yet
    rescued = _cell("l2sp_dtnh", [0.91, 0.79, 0.70, 0.60])  # +1, -1, 0, 0: not below plain
    text = evidence.never_hurt_reading(plain + hurting + rescued, "fashion_mnist_192", "finetune")
    assert "was exercised" in text and "not significantly below" in text
    still = _cell("l2sp_dtnh", [0.89, 0.79, 0.68, 0.59])  # -1, -1, -2, -1
    assert "it still hurt" in evidence.never_hurt_reading(plain + hurting + still, "fashion_mnist_192", "finetune")
    harmless = _cell("l2sp", [0.91, 0.79, 0.70, 0.60])
    assert "was not exercised" in evidence.never_hurt_reading(plain + harmless + rescued, "fashion_mnist_192",
                                                              "finetune")


def test_the_time_before_training_is_reported_per_method_where_recorded():
    runs = [dict(_summary("d", "delta", 0, 0.9), setup_s=700.0), dict(_summary("d", "delta", 1, 0.9), setup_s=760.0),
            dict(_summary("d", "finetune", 0, 0.9), setup_s=3.0), _summary("d", "rifle", 0, 0.9)]  # older: none
    (line, _) = evidence.setup_text(runs)
    assert "delta 12.2 min (2 runs), finetune 0.1 min (1 run)" in line and "rifle" not in line
    assert evidence.setup_text([_summary("d", "rifle", 0, 0.9)]) == []
