"""YAML as the engine and graders read it: PyYAML's safe loading with libyaml's parser (CSafeLoader, PyYAML's
documented fast path) where PyYAML was built with it, else the same loader in Python.

Why not yaml.safe_load: it is the pure-Python parser, and parsing manifests and kubeconfigs with it was over half
of a Lab 4 replay. Both loaders share the Python constructor and resolver, so the data (types, tags) is the same;
libyaml also refuses nesting deeper than 1000 levels with a YAMLError instead of exhausting the Python stack."""

from __future__ import annotations

from typing import Any

import yaml

SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str | bytes) -> Any:
    """One YAML document as plain Python data, as yaml.safe_load gives it; raises yaml.YAMLError."""
    return yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 - a safe loader


def load_yaml_all(text: str | bytes) -> list[Any]:
    """Every document of a YAML stream (`---` separated), as yaml.safe_load_all gives them."""
    return list(yaml.load_all(text, Loader=SAFE_LOADER))  # noqa: S506 - a safe loader
