"""Which make command makes a missing adapter, for the errors and the dry run to name it."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
TRAIN_RECIPES = REPO / "recipes" / "train"
# make train-* without RECIPE= trains these (Makefile); another recipe is named with RECIPE=
TRAIN_TARGETS = {"explorer": ("make train-explorer", "explorer-llama3-8b.yaml"),
                 "classifier": ("make train-classifier", "classifier-llama3-8b.yaml"),
                 "direct_classifier": ("make train-direct-classifier",
                                       "direct-classifier-llama3-8b.yaml")}
# tools/tiny_assets.py builds saves/<profile>/lora/<role> for the CPU configs
CPU_PROFILE_TARGETS = {"tiny": "make tiny", "demo": "make demo-assets"}


@cache
def _recipe_outputs() -> dict[str, list[str]]:
    """Adapter dir -> the train recipes (file names) whose ``output_dir`` it is."""
    outputs: dict[str, list[str]] = {}
    for path in sorted(TRAIN_RECIPES.glob("*.yaml")):
        try:
            data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue  # a broken recipe is reported where it is used, not in a hint
        if isinstance(data, dict) and isinstance(data.get("output_dir"), str):
            outputs.setdefault(os.path.normpath(data["output_dir"]), []).append(path.name)
    return outputs


def adapter_command(role: str, adapter: Any, config_path: str | os.PathLike[str] = "") -> str:
    """How to make a missing adapter: fetch it (a Hub adapter), build it (the CPU profiles'),
    or train it with the make target of its role and the recipe that writes its dir."""
    if adapter.hub_id:
        return f"fetch it: make models CONFIG={config_path or '<this config>'}"
    parts = Path(adapter.path).parts
    for profile, target in CPU_PROFILE_TARGETS.items():
        if any(parts[i:i + 3] == ("saves", profile, "lora") for i in range(len(parts))):
            return f"build it: {target}"
    if role not in TRAIN_TARGETS:
        return "train it: see its recipe"
    target, default = TRAIN_TARGETS[role]
    recipes = _recipe_outputs().get(os.path.normpath(adapter.path), [])
    if not recipes or default in recipes:
        return f"train it: {target}"
    recipe = min(recipes, key=lambda name: (len(name), name))  # the plain one, not a -ds- variant
    return f"train it: {target} RECIPE=recipes/train/{recipe}"
