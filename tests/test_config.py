import textwrap

import pytest

from rifle_paddle.config import ConfigError, defaults, load_config, parse_override, to_yaml


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_defaults_reproduce_the_authors_protocol():
    cfg = load_config()
    assert cfg["model"]["arch"] == "resnet50" and cfg["model"]["pretrained"] == "imagenet"
    assert (cfg["train"]["epochs"], cfg["train"]["lr"], cfg["train"]["momentum"]) == (40, 0.01, 0.9)
    assert cfg["train"]["weight_decay"] == 1e-4 and cfg["data"]["batch_size"] == 32
    assert cfg["train"]["lr_schedule"] == "cosine"


def test_base_chain_then_file_then_overrides(tmp_path):
    write(tmp_path / "base.yaml", """
        train: {epochs: 10, lr: 0.1}
        data: {batch_size: 8}
    """)
    (tmp_path / "sub").mkdir()
    child = write(tmp_path / "sub" / "child.yaml", """
        _base_: ../base.yaml
        train: {epochs: 20}
    """)
    cfg = load_config(child, ["train.lr=0.5", "rifle.epochs=[3, 6]", "rifle.enabled=true"])
    assert cfg["train"]["epochs"] == 20          # child beats base
    assert cfg["train"]["lr"] == 0.5             # override beats both
    assert cfg["data"]["batch_size"] == 8        # inherited
    assert cfg["rifle"]["epochs"] == [3, 6]      # YAML-parsed list


def test_later_bases_win(tmp_path):
    write(tmp_path / "a.yaml", "train: {epochs: 5}\n")
    write(tmp_path / "b.yaml", "train: {epochs: 7}\n")
    cfg = load_config(write(tmp_path / "c.yaml", "_base_: [a.yaml, b.yaml]\n"))
    assert cfg["train"]["epochs"] == 7


def test_unknown_keys_are_errors_with_close_matches(tmp_path):
    path = write(tmp_path / "bad.yaml", "train: {epoch: 3}\nrifel: {enabled: true}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, ["train.lr_schedual=cosine"])
    text = str(err.value)
    assert "unknown key 'train.epoch'" in text and "train.epochs" in text
    assert "unknown section 'rifel'" in text and "rifle" in text
    assert "train.lr_schedule" in text
    assert len(err.value.problems) == 3  # all problems at once


def test_type_and_range_problems_are_all_reported():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["train.lr=-1", "train.epochs=ten", "rifle.init=xavier", "data.sample_rate=1.5",
                           "rifle.enabled=yes please"])
    text = str(err.value)
    for fragment in ("train.lr: must be > 0", "train.epochs: expected an integer", "rifle.init: must be one of",
                     "data.sample_rate: must be in (0, 1]", "rifle.enabled: expected true/false"):
        assert fragment in text
    assert len(err.value.problems) == 5


def test_scientific_notation_is_a_float_not_a_string():
    # YAML 1.1 reads 1e-4 as a string; the loader must accept the common spelling
    assert load_config(None, ["train.weight_decay=1e-4"])["train"]["weight_decay"] == pytest.approx(1e-4)
    assert isinstance(load_config(None, ["train.lr=1"])["train"]["lr"], float)


def test_parse_override_forms():
    assert parse_override("model.pretrained=null") == ("model.pretrained", None)
    assert parse_override("data.root=/a=b") == ("data.root", "/a=b")
    with pytest.raises(ConfigError):
        parse_override("train.epochs")


def test_cross_checks_catch_impossible_rifle_schedules():
    with pytest.raises(ConfigError, match="rifle.epochs"):
        load_config(None, ["rifle.enabled=true", "train.epochs=10", "rifle.epochs=[5, 12]"])
    with pytest.raises(ConfigError, match="needs at least 4 epochs"):
        load_config(None, ["rifle.enabled=true", "train.epochs=3", "rifle.num_reinits=3"])


def test_saved_config_reloads_to_the_same_values(tmp_path):
    cfg = load_config(None, ["train.epochs=7", "rifle.enabled=true"])
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(cfg))
    again = load_config(str(path))
    assert {k: v for k, v in again.items() if not k.startswith("_")} == \
        {k: v for k, v in cfg.items() if not k.startswith("_")}
    assert set(defaults()) <= set(again)


def test_the_key_reference_in_docs_is_the_schema(tmp_path, capsys):
    """docs/config.md is generated; a schema change without regenerating it fails here."""
    from rifle_paddle.config import reference
    from rifle_paddle.config.schema import SCHEMA
    assert reference.main(["--check"]) == 0, "run `python -m rifle_paddle.config.reference`"
    text = reference.schema_markdown()
    for section, fields in SCHEMA.items():  # every key, with its default as YAML writes it
        for key, field in fields.items():
            assert f"| `{section}.{key}` | `{reference._value(field.default)}` |" in text
    stale = tmp_path / "config.md"
    stale.write_text(text.replace("`rifle.min_tail_epochs` | `4`", "`rifle.min_tail_epochs` | `5`"))
    assert reference.main(["--check", "--out", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err


def test_a_missing_base_is_reported_with_the_file_that_names_it(tmp_path):
    """A base found neither beside the file nor among the packaged configs: the error said only 'config file not
    found: datasets/folder.yaml', not which file asked for it nor where it looked."""
    own = tmp_path / "my.yaml"
    own.write_text("_base_: [datasets/no_such_set.yaml]\ntrain: {epochs: 2}\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(own))
    message = str(e.value)
    assert str(own) in message and "_base_" in message and str(tmp_path / "datasets" / "no_such_set.yaml") in message
    assert "shipped with the package" in message


def test_a_base_may_name_a_packaged_config(tmp_path):
    """One's own file inheriting a table entry by its packaged name (as -c takes it), changing one key: the same
    config as -c with that key overridden. A file of that name beside one's own still wins."""
    own = tmp_path / "my.yaml"
    own.write_text("_base_: cub200/resnet50_rifle\ntrain: {epochs: 7}\n")
    mine, packaged = load_config(str(own)), load_config("cub200/resnet50_rifle", ["train.epochs=7"])
    assert {k: v for k, v in mine.items() if k != "_source"} == {k: v for k, v in packaged.items() if k != "_source"}
    (tmp_path / "cub200").mkdir()
    (tmp_path / "cub200" / "resnet50_rifle.yaml").write_text("train: {lr: 0.123}\n")
    own.write_text("_base_: cub200/resnet50_rifle.yaml\n")
    assert load_config(str(own))["train"]["lr"] == 0.123
    own.write_text("_base_: ../setup.py\n")  # beside the package's configs/ folder in a checkout: not a config of it
    with pytest.raises(ConfigError, match="no config of that name is shipped"):
        load_config(str(own))


def test_a_regularizer_without_weights_is_refused_in_the_config_spelling():
    """L2-SP with model.pretrained=false: the refusal said 'model.pretrained=None', Python's word, not one the
    user wrote or a config file can hold (null, or none / false)."""
    with pytest.raises(ConfigError) as e:
        load_config(None, ["regularizer.name=l2sp", "model.pretrained=false"])
    assert "model.pretrained=None" not in str(e.value) and "model.pretrained is null (no weights)" in str(e.value)
