"""Each choice list has one owner: the module that implements the choices declares them, and the schema, the
validation and docs/config.md read them from it. These tests fail when the two disagree."""
import re

import pytest

import rifle_paddle  # noqa: F401  (imports every owner, as any use of the config package does)
from rifle_paddle.callbacks.rifle import INITIALIZERS
from rifle_paddle.config.loader import load_config
from rifle_paddle.config.schema import SCHEMA, ConfigError, Owned, field_of, register_choices
from rifle_paddle.data import list_readers
from rifle_paddle.data.registry import label_levels
from rifle_paddle.engine.nonfinite import NAN_POLICIES
from rifle_paddle.models.classifier import HEAD_INITS
from rifle_paddle.regularizers import REGULARIZERS
from rifle_paddle.regularizers.delta import ATTENTIONS, PROBES
from rifle_paddle.regularizers.dtnh import GRANULARITIES
from rifle_paddle.regularizers.feature_distillation import POSITIONS, REDUCTIONS

#: key -> the owner's own list (what the code accepts), written out here
OWNERS = {
    "rifle.init": INITIALIZERS,
    "model.head_init": HEAD_INITS,
    "train.nan_policy": NAN_POLICIES,
    "dtnh.granularity": GRANULARITIES,
    "regularizer.delta_attention": ATTENTIONS,
    "regularizer.attention_probe": PROBES,
    "regularizer.feature_reduction": REDUCTIONS,
    "regularizer.feature_positions": POSITIONS,
}


def _owned_keys():
    return [f"{s}.{k}" for s, fields in SCHEMA.items() for k, f in fields.items() if isinstance(f.choices, Owned)]


def test_every_owned_list_is_registered_by_its_owner():
    assert set(OWNERS) | {"regularizer.name", "data.label_level", "model.arch", "data.name"} == set(_owned_keys())
    for key, values in OWNERS.items():
        assert field_of(key).allowed == tuple(values), key
    assert field_of("regularizer.name").allowed == ("none", *REGULARIZERS)
    assert field_of("model.arch").listed == ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
    assert sorted(field_of("data.name").listed) == list_readers()
    assert field_of("model.arch").allowed is None  # validated by the registry's check, with its close matches
    levels = {level for name in list_readers() for level in label_levels(name)}
    assert set(field_of("data.label_level").allowed) == levels == {"fine", "coarse", "variant", "family",
                                                                   "manufacturer"}


@pytest.mark.parametrize("key", sorted(k for k in _owned_keys() if not field_of(k).choices.registry))
def test_the_schema_describes_every_registered_choice(key):
    """A choice the owner adds must be explained in the key's doc, and the default must be one of them."""
    f = field_of(key)
    missing = [c for c in f.allowed if not re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", f.doc)]
    assert not missing, f"{key}: the schema's doc does not describe {missing}"
    assert f.default is None or f.default in f.allowed


def test_validation_and_docs_read_the_owners_list():
    with pytest.raises(ConfigError, match=r"rifle.init: must be one of authors, he_normal, uniform, paddletransfer"):
        load_config(None, ["rifle.init=xavier"])
    from rifle_paddle.config.reference import schema_markdown
    row = next(line for line in schema_markdown().splitlines() if line.startswith("| `rifle.init`"))
    assert "(one of `authors`, `he_normal`, `uniform`, `paddletransfer`)" in row


def test_only_owned_keys_take_registered_choices():
    with pytest.raises(ValueError, match="run.device is not a key with Owned choices"):
        register_choices("run.device", ("tpu",))
    with pytest.raises(LookupError, match="rifle_paddle/somewhere.py are not registered"):
        Owned("rifle_paddle/somewhere.py").values


def test_models_and_readers_refuse_a_second_registration_alike():
    from rifle_paddle.data.registry import register_reader
    from rifle_paddle.models.registry import register_model
    with pytest.raises(ValueError, match="^model 'resnet18' is registered twice$"):
        register_model("resnet18")(lambda num_classes: None)
    with pytest.raises(ValueError, match="^data set 'folder' is registered twice$"):
        register_reader("folder")(lambda cfg, split: None)
