"""Config validation before anything heavy: every problem in one message, missing files, impossible combinations,
no silent overwrite of a run, and a fuzz test that no malformed config gets past as a traceback."""
from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
import yaml

from rifle_paddle.app.cli import train_main
from rifle_paddle.config import SCHEMA, ConfigError, load_config
from rifle_paddle.config.checks import gpu_available, require_paths

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def problems_of(*overrides: str, path: str | None = None, paths_for: str | None = None) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(path, list(overrides), paths_for=paths_for)
    return e.value.problems


# ------------------------------------------------------------------------------------- one message, all problems
def test_every_problem_is_reported_at_once(tmp_path):
    problems = problems_of("train.lr=0", "tricks.dropout_rate=1.0", "rifle.num_reinits=-1", "data.sample_rate=0",
                           "train.epohcs=3", "data.root=/nonexistent/data", f"model.pretrained={tmp_path}/w.pdparams",
                           paths_for="train")
    text = "\n".join(problems)
    for expected in ("train.lr: must be > 0", "tricks.dropout_rate: must be in [0, 1)",
                     "rifle.num_reinits: must be >= 0", "data.sample_rate: must be in (0, 1]",
                     "unknown key 'train.epohcs' (did you mean train.epochs",
                     "data.root: directory not found: /nonexistent/data",
                     f"model.pretrained: '{tmp_path}/w.pdparams' is neither a weight tag"):
        assert expected in text, expected
    assert len(problems) == 7


@pytest.mark.parametrize("override, message", [
    ("train.lr=-0.1", "train.lr: must be > 0"),
    ("train.lr=.nan", "train.lr: must be a finite number"),
    ("train.lr=1e999", "train.lr: must be a finite number"),
    ("tricks.dropconnect_rate=-0.1", "must be in [0, 1)"),
    ("tricks.stochastic_depth_rate=1", "must be in [0, 1)"),
    ("data.sample_rate=1.5", "data.sample_rate: must be in (0, 1]"),
    ("train.epochs=ten", "train.epochs: expected an integer, got str"),
    ("train.amp=yes please", "train.amp: expected true/false"),
    ("run.seed=99999999999", "run.seed: must be in [0, 2**32)"),
    ("train.nan_policy=ignore", "train.nan_policy: must be one of stop, skip"),
])
def test_types_and_ranges(override, message):
    assert any(message in p for p in problems_of(override)), problems_of(override)


def test_wrong_nesting_and_unknown_sections_get_a_suggestion(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.1\ntrain:\n  rifle: {enabled: true}\nrun: 3\n")
    text = "\n".join(problems_of(path=str(path)))
    assert "unknown section 'lr'" in text and "train.lr" in text
    assert "unknown key 'train.rifle'" in text
    assert "section 'run' must be a mapping" in text


@pytest.mark.parametrize("overrides, message", [
    (["train.amp=true", "run.device=cpu"], "train.amp=true needs a GPU"),
    (["train.resume=auto"], "train.resume=auto needs run.name"),
    (["rifle.enabled=true", "train.epochs=10", "rifle.epochs=[8]", "rifle.min_tail_epochs=5"],
     "fall in the last rifle.min_tail_epochs=5 epochs"),
    (["data.name=filelist"], "data.name=filelist needs data.train_list and data.test_list"),
    (["model.arch=resnet5"], "model.arch: unknown architecture 'resnet5' (did you mean resnet50"),
    (["data.name=cub_200"], "data.name: unknown data set 'cub_200' (did you mean cub200?)"),
])
def test_incompatible_combinations(overrides, message):
    assert any(message in p for p in problems_of(*overrides)), problems_of(*overrides)


def test_missing_files_are_checked_only_for_a_run(tmp_path):
    overrides = ["data.root=/nonexistent", "data.name=filelist", "data.train_list=train.txt",
                 "data.test_list=test.txt", f"train.resume={tmp_path}/nope", "model.pretrained=/no/weights.pdparams"]
    load_config(None, overrides)  # printing or generating configs needs no data
    text = "\n".join(problems_of(*overrides, paths_for="train"))
    for expected in ("data.root: directory not found", "data.train_list: file not found: /nonexistent/train.txt",
                     "data.test_list: file not found", "train.resume: run directory not found",
                     "model.pretrained: '/no/weights.pdparams'"):
        assert expected in text, expected
    assert "model.checkpoint: not set" in "\n".join(problems_of("data.root=/x", paths_for="eval"))
    with pytest.raises(ConfigError, match="data.root: not set"):
        require_paths(load_config(None, ["model.pretrained=none"]), "train")  # train(cfg) checks them too


@pytest.mark.skipif(gpu_available(), reason="needs a machine where Paddle sees no GPU")
def test_amp_without_a_gpu_fails_before_the_run_directory_exists(tiny_config):
    """run.device=auto is valid anywhere (it may be a GPU machine), so it is the run that must find that it trains
    on the CPU here: before creating output/<run>/, not once the model is built."""
    from rifle_paddle.engine import train
    message = "train.amp=true needs a GPU, but this Paddle sees none (run.device=auto"
    cfg = tiny_config("train.amp=true", "run.device=auto")  # loads without paths_for: a config, not a run
    with pytest.raises(ConfigError) as e:
        train(cfg)
    assert message in str(e.value) and "set -o train.amp=false to train on the CPU" in str(e.value)
    assert not os.path.exists(cfg["run"]["output_dir"])  # no run directory, not even its parent
    assert any(message in p for p in problems_of("train.amp=true", paths_for="train"))  # train.py's check


# ------------------------------------------------------------------------------------ no silent overwrite
def test_an_existing_run_directory_is_never_overwritten(tmp_path, tiny_folder, tiny_pretrained, capsys):
    run_dir = tmp_path / "out" / "taken"
    run_dir.mkdir(parents=True)
    (run_dir / "results.txt").write_text("precious")
    argv = ["-o", "model.arch=resnet18", "-o", f"model.pretrained={tiny_pretrained}", "-o", f"data.root={tiny_folder}",
            "-o", f"run.output_dir={tmp_path / 'out'}", "-o", "run.name=taken", "-o", "run.device=cpu"]
    for extra, refusal in (([], "already exists and is not empty"),
                           # auto: no checkpoint there, so it would restart afresh, but it is not a run's folder
                           (["-o", "train.resume=auto"], "is not a run directory (no config.yaml)")):
        with pytest.raises(SystemExit) as e:
            train_main(argv + extra)
        assert e.value.code != 0
        assert refusal in capsys.readouterr().err + str(e.value.code)
    assert os.listdir(run_dir) == ["results.txt"] and (run_dir / "results.txt").read_text() == "precious"


# --------------------------------------------------------------------------------------------------- fuzzing
_KEYS = [f"{section}.{key}" for section, fields in SCHEMA.items() for key in fields]
_SCALARS = [0, 1, -1, 3, 2 ** 70, 10 ** 400, 0.5, -0.5, 1e-4, float("nan"), float("inf"), True, False, None, "",
            "abc", "1e-4", "none", "auto", "stop", "resnet18", "folder", "ø∂ƒ", [], [1, 2], [0.1, 0.2, 0.3], ["a"],
            {"a": 1}, {"nested": {"deep": [1]}}]
_GARBAGE = ["{", "a: [1, 2", "\t- x", "train:\n  lr: [\n", "%YAML 9.9\n---", "!!python/object:os.system x",
            "!!int abc", "a: !!timestamp x", "*alias", "a: &x 1\nb: *y", "---\n- 1\n---\n- 2", "[" * 200,
            "key: 'unterminated", "train: {lr: 0.1", "\x00\x01", "? [a]\n: b"]


def _random_value(rng: random.Random):
    return rng.choice(_SCALARS) if rng.random() < 0.8 else [_random_value(rng) for _ in range(rng.randint(0, 3))]


def _random_config(rng: random.Random):
    """A YAML-able structure: mostly the right shape with wrong values, sometimes the wrong shape entirely."""
    shape = rng.random()
    if shape < 0.1:
        return _random_value(rng)
    cfg = {}
    for _ in range(rng.randint(1, 6)):
        key = rng.choice(_KEYS) if rng.random() < 0.85 else rng.choice(["train.epohcs", "foo.bar", "lr", "_base_"])
        section, _, leaf = key.partition(".")
        if not leaf:
            cfg[section] = _random_value(rng) if section != "_base_" else rng.choice([5, [1], "missing.yaml", None])
        elif rng.random() < 0.1:
            cfg[section] = _random_value(rng)  # a section that is not a mapping
        else:
            if not isinstance(cfg.get(section), dict):
                cfg[section] = {}
            cfg[section][leaf] = _random_value(rng)
    return cfg


def _random_override(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.15:
        return rng.choice(["", "=", "train.lr", "=1", "train.lr==1", ".=.", "a.b.c=1", "train.=3", " = "])
    if kind < 0.3:
        return f"{rng.choice(_KEYS)}={rng.choice(_GARBAGE)}"
    return f"{rng.choice(_KEYS)}={yaml.safe_dump(_random_value(rng), default_flow_style=True).strip()}"


def _write_random_file(rng: random.Random, path) -> str:
    if rng.random() < 0.25:
        data = rng.choice(_GARBAGE).encode() if rng.random() < 0.8 else bytes(rng.randrange(256) for _ in range(64))
        path.write_bytes(data)
    else:
        path.write_text(yaml.safe_dump(_random_config(rng), allow_unicode=True))
    return str(path)


def test_fuzz_load_config_raises_only_config_error_and_accepts_only_well_typed_configs(tmp_path):
    rng = random.Random(20240607)
    accepted = 0
    for i in range(400):
        path = _write_random_file(rng, tmp_path / f"c{i}.yaml") if rng.random() < 0.7 else None
        overrides = [_random_override(rng) for _ in range(rng.randint(0, 4))]
        try:
            cfg = load_config(path, overrides, paths_for=rng.choice([None, "train", "eval"]))
        except ConfigError as e:
            assert e.problems and all(isinstance(p, str) and p for p in e.problems)
            continue
        accepted += 1
        for section, fields in SCHEMA.items():
            for key, field in fields.items():
                value = cfg[section][key]
                assert (value is None and field.nullable) or isinstance(value, field.types), (section, key, value)
    assert 0 < accepted < 400


def test_fuzz_the_command_line_exits_with_a_message_never_a_traceback(tmp_path, capsys):
    rng = random.Random(7)
    for i in range(60):
        argv = []
        if rng.random() < 0.6:
            argv += ["-c", _write_random_file(rng, tmp_path / f"c{i}.yaml")]
        for override in [_random_override(rng) for _ in range(rng.randint(0, 3))]:
            argv += ["-o", override]
        argv += ["-o", f"data.root={tmp_path}/never"]  # so that no case is a valid run
        with pytest.raises(SystemExit) as e:
            train_main(argv)
        err = capsys.readouterr().err
        assert e.value.code in (1, 2) or str(e.value.code).startswith("error: "), (argv, e.value.code)
        assert "Traceback" not in err


@pytest.mark.slow  # another process (docs/development.md: Tests)
def test_a_broken_config_file_through_train_py_is_one_clean_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("train:\n  lr: -1\n  epohcs: 3\nrifle: [oops]\n")
    result = subprocess.run([sys.executable, os.path.join(REPO, "train.py"), "-c", str(path)], cwd=REPO,
                            capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: invalid configuration (4 problems)")
    assert "data.root: not set" in result.stderr
