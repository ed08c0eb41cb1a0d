"""Run configuration: one schema, YAML files with ``_base_`` inheritance, ``-o key=value`` overrides."""
import os

from .loader import load_config, parse_override, to_yaml
from .schema import SCHEMA, ConfigError, defaults

# The configs shipped inside the package (base, data sets, methods, tables and the generated table cells).
CONFIGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")

__all__ = ["CONFIGS_DIR", "SCHEMA", "ConfigError", "defaults", "load_config", "parse_override", "to_yaml"]
