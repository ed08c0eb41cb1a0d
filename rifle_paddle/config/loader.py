"""Reading a run configuration: YAML file(s) with ``_base_`` inheritance, then ``-o section.key=value`` overrides.

Values are parsed with ``yaml.safe_load`` (never ``eval``), every key is checked against ``schema.SCHEMA``, and all
problems are reported together in one ``ConfigError`` before anything heavy (data, model, GPU) is touched.
"""
from __future__ import annotations

import copy
import difflib
import math
import numbers
import os
from typing import Any, Iterable

import numpy as np
import yaml

from .packaged import list_configs, packaged_config, resolve_config
from .schema import SCHEMA, ConfigError, all_keys, defaults, field_of

BASE_KEY = "_base_"
_MAX_BASE_DEPTH = 16


def _close_matches(key: str) -> str:
    matches = difflib.get_close_matches(key, all_keys(), n=3, cutoff=0.6)
    if not matches:  # also try the bare key name against every section (e.g. 'epoch' -> train.epochs)
        leaf = key.rsplit(".", 1)[-1]
        matches = [k for k in all_keys()
                   if difflib.get_close_matches(leaf, [k.rsplit(".", 1)[-1]], n=1, cutoff=0.75)][:3]
    return f" (did you mean {', '.join(matches)}?)" if matches else ""


def read_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError([f"config file not found: {path}"])
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror}"]) from None
    except Exception as e:  # YAMLError, and what PyYAML lets through: '!!int x', '!!timestamp x', not UTF-8
        raise ConfigError([f"{path}: not valid YAML: {e}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: top level must be a mapping of sections, got {type(data).__name__}"])
    return data


def _resolve_bases(path: str, depth: int = 0) -> list[tuple[str, dict]]:
    """The chain of (path, mapping) to merge, most basic first."""
    if depth > _MAX_BASE_DEPTH:
        raise ConfigError([f"{path}: {BASE_KEY} chain deeper than {_MAX_BASE_DEPTH} (a cycle?)"])
    data = read_yaml(path)
    bases = data.pop(BASE_KEY, None) or []
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError([f"{path}: {BASE_KEY} must be a file name or a list of file names, got {bases!r}"])
    chain: list[tuple[str, dict]] = []
    for base in bases:
        base_path = os.path.normpath(base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base))
        if not os.path.isfile(base_path) and not os.path.isabs(base):  # a packaged config: a table entry of one's own
            base_path = packaged_config(base) or base_path
        if not os.path.isfile(base_path):
            where = "" if os.path.isabs(base) else (
                ", and no config of that name is shipped with the package (a base is relative to the folder of the "
                "file that names it, or a packaged name such as cub200/resnet50_rifle: --list-configs all)")
            raise ConfigError([f"{path}: {BASE_KEY} {base!r} not found: no file {base_path}{where}"])
        chain.extend(_resolve_bases(base_path, depth + 1))
    chain.append((path, data))
    return chain


def _merge_file(cfg: dict, data: dict, origin: str, problems: list[str]) -> None:
    for section, values in data.items():
        if section not in SCHEMA:
            close = difflib.get_close_matches(str(section), SCHEMA, n=2)
            hint = f" (did you mean {', '.join(close)}?)" if close else _close_matches(str(section))
            problems.append(f"{origin}: unknown section '{section}'{hint}; sections: {', '.join(SCHEMA)}")
            continue
        if values is None:
            continue
        if not isinstance(values, dict):
            problems.append(f"{origin}: section '{section}' must be a mapping, got {values!r}")
            continue
        for key, value in values.items():
            dotted = f"{section}.{key}"
            if key not in SCHEMA[section]:
                problems.append(f"{origin}: unknown key '{dotted}'{_close_matches(dotted)}")
                continue
            cfg[section][key] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``'train.epochs=40'`` -> ``('train.epochs', 40)``; the value is YAML, so lists and null work."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError([f"override '{text}' is not of the form section.key=value"])
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except Exception as e:  # YAMLError, and what PyYAML lets through ('!!int x' ValueError, '!!timestamp x' ...)
        raise ConfigError([f"override '{text}': value is not valid YAML: {e}"]) from None
    return key, value


def apply_overrides(cfg: dict, overrides: Iterable[str], problems: list[str]) -> None:
    for text in overrides:
        try:
            key, value = parse_override(text)
        except ConfigError as e:
            problems.extend(e.problems)
            continue
        if field_of(key) is None:
            problems.append(f"override '{text}': unknown key '{key}'{_close_matches(key)}")
            continue
        section, _, leaf = key.partition(".")
        cfg[section][leaf] = value


def _coerce(field, value):
    """YAML 1.1 reads '1e-4' as a string; accept it for a float key rather than fail on a common spelling. From
    the keyword API: a numpy integer is an integer (a numpy float a float), a tuple a list, a ``pathlib.Path`` a
    path; a path's ``~`` is the home folder (as in a shell, which does not expand it in ``-o data.root=~/...``)."""
    if field.is_path and isinstance(value, os.PathLike):
        value = os.fspath(value)
    if field.is_path and isinstance(value, str) and value.startswith("~"):
        value = os.path.expanduser(value)
    if isinstance(value, tuple) and list in field.types:
        value = list(value)
    value = [_plain_number(v) for v in value] if isinstance(value, list) else _plain_number(value)
    if isinstance(value, str) and float in field.types:
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, int) and not isinstance(value, bool) and float in field.types:
        try:
            return float(value)  # a float key stays a float (lr=1 -> 1.0), so saved configs round-trip exactly
        except OverflowError:
            return math.inf  # reported as not finite
    return value


def _plain_number(value):
    """A numpy (or other ``numbers``) integer as a Python int, a real as a float, numpy's boolean as a bool;
    anything else as it is."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral, float)):
        return float(value)
    return value


def validate(cfg: dict) -> list[str]:
    """Type, choice and range problems of a merged config, one message per key."""
    return [problem for section in SCHEMA for problem in section_problems(section, cfg[section])]


def section_problems(section: str, values: dict) -> list[str]:
    """Type, choice and range problems of one section's values (coerced in place: '1e-4' and 1 to floats)."""
    problems = []
    for key, f in SCHEMA[section].items():
        dotted = f"{section}.{key}"
        value = _coerce(f, values.get(key))
        if f.normalize is not None:
            value = f.normalize(value)
        values[key] = value
        if value is None:
            if not f.nullable:
                problems.append(f"{dotted}: required, got null")
            continue
        if isinstance(value, bool) and bool not in f.types:
            problems.append(f"{dotted}: expected {_type_names(f)}, got a boolean ({value})")
            continue
        if not isinstance(value, f.types):
            problems.append(f"{dotted}: expected {_type_names(f)}, got {type(value).__name__} ({value!r})")
            continue
        if f.allowed is not None and value not in f.allowed:
            problems.append(f"{dotted}: must be one of {', '.join(map(str, f.allowed))}, got {value!r}")
            continue
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{dotted}: must be a finite number, got {value!r}")
            continue
        if f.check is not None:
            message = f.check(value)
            if message:
                problems.append(f"{dotted}: {message}, got {value!r}")
    return problems


def _type_names(f) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false", list: "a list"}
    if f.types == (int, float):
        return "a number"
    return " or ".join(names.get(t, t.__name__) for t in f.types)


def load_config(path: str | None = None, overrides: Iterable[str] | str = (), paths_for: str | None = None) -> dict:
    """Defaults, then the file chain (``_base_`` first), then overrides (``section.key=value`` strings; a lone
    string is one override); validated as a whole.

    ``path`` is a file, or the name of a config shipped with the package (``cub200/resnet50_rifle``, see
    ``packaged.resolve_config``).

    ``paths_for='train'`` or ``'eval'`` also checks that the files and directories that use needs exist
    (``checks.path_problems``). Raises ``ConfigError`` listing every problem found. The returned dict also records
    where it came from under the private key ``_source`` (not a config key; dropped when the config is saved).
    """
    overrides = [overrides] if isinstance(overrides, str) else overrides
    cfg = defaults()
    problems: list[str] = []
    if path is not None:
        path = resolve_config(path)
        if not os.path.isfile(path):
            close = difflib.get_close_matches(path.replace("\\", "/").removesuffix(".yaml"), list_configs(), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError([f"config file not found: {path} (neither a file nor a config shipped with the "
                               f"package: list those with --list-configs{hint})"])
        for origin, data in _resolve_bases(path):
            _merge_file(cfg, data, origin, problems)
    apply_overrides(cfg, overrides, problems)
    problems.extend(validate(cfg))
    from .checks import cross_checks, path_problems  # late import: the checks may import schema-dependent helpers
    if not problems:
        problems.extend(cross_checks(cfg))
    if paths_for is not None:
        problems.extend(path_problems(cfg, paths_for))
    if problems:
        raise ConfigError(problems)
    cfg["_source"] = os.path.abspath(path) if path else None
    return cfg


def absolute_paths(cfg: dict) -> dict:
    """A copy of ``cfg`` with every relative path key (``Field.path_words``) made absolute against the current
    folder, the keyword values (``imagenet``, ``auto``) left alone and every value in its one spelling
    (``Field.normalize``, for configs saved before it): what a run records, so that its
    ``config.yaml`` and checkpoints mean the same files from any folder."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in cfg.items()}
    for section, fields in SCHEMA.items():
        for key, f in fields.items():
            value = out.get(section, {}).get(key)
            if f.normalize is not None and key in out.get(section, {}):  # a config.yaml saved before normalizing
                value = out[section][key] = f.normalize(value)
            if f.is_path and isinstance(value, str) and value.strip().lower() not in f.path_words \
                    and not os.path.isabs(value):
                out[section][key] = os.path.abspath(value)
    return out


def to_yaml(cfg: dict) -> str:
    """The effective config as a self-contained YAML file (no ``_base_``), for the run directory."""
    clean = {k: copy.deepcopy(v) for k, v in cfg.items() if not k.startswith("_")}
    return yaml.safe_dump(clean, sort_keys=False, default_flow_style=None)
