"""Run configuration: one schema, YAML files with ``_base_`` inheritance, ``-o key=value`` overrides."""
from .loader import absolute_paths, load_config, parse_override, to_yaml
from .packaged import CONFIGS_DIR, config_listing, list_configs, resolve_config
from .schema import SCHEMA, ConfigError, defaults

__all__ = ["CONFIGS_DIR", "absolute_paths", "SCHEMA", "ConfigError", "config_listing", "defaults", "list_configs",
           "load_config", "parse_override",
           "resolve_config", "to_yaml"]
