"""``key=value`` overrides of a YAML config, the one parser of inference configs and recipes.

``a.b=value`` sets a nested key (the inference config's sections); a key without a dot is a top
level key (LlamaFactory's flat recipes). The value is parsed as YAML (``8`` is an int, ``false``
a bool, ``null`` None; an empty value is None) and kept as the raw string when it is not YAML.
"""

from __future__ import annotations

from typing import Any

import yaml

from core.io import ProjectError


def parse_override(item: str, error: type[ProjectError] = ProjectError
                   ) -> tuple[list[str], Any]:
    """(key path, value) of one ``key=value``; ``error`` names a malformed one."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise error(f"override {item!r} is not key=value")
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str],
                    error: type[ProjectError] = ProjectError) -> dict[str, Any]:
    """Every override into ``data`` (nested dicts made as needed); returns the same dict."""
    for item in overrides:
        parts, value = parse_override(item, error)
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise error(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return data
