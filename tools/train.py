"""Check a LlamaFactory recipe, then train with ``llamafactory-cli train`` (runs in .venv/train).

    python -m tools.train recipes/train/explorer-llama3-8b.yaml [key=value ...] [--check]

Everything that can be wrong with a recipe is caught here in seconds, before a model loads:
unknown keys and bad values (LlamaFactory's own argument parser), an unknown chat template, a
dataset name that ``dataset_info.json`` does not register or whose file is missing, a local model
path that does not exist. ``key=value`` overrides use LlamaFactory's own command-line syntax and are
passed through unchanged, so multi-GPU launches (``FORCE_TORCHRUN=1``, ``NNODES``...) just work.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml

from data_prep.cli import make_parser
from data_prep.io import ProjectError, read_yaml_mapping


class RecipeError(ProjectError):
    pass


def parse_overrides(items: list[str]) -> dict[str, Any]:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RecipeError(f"override {item!r} is not key=value")
        overrides[key.strip()] = yaml.safe_load(value) if value else None
    return overrides


def load_recipe(path: str | os.PathLike[str], overrides: list[str]) -> dict[str, Any]:
    return {**read_yaml_mapping(path, RecipeError), **parse_overrides(overrides)}


def _looks_local(model: str) -> bool:
    return model.startswith((".", "/", "~")) or Path(model).exists() or model.count("/") != 1


def device_neutral(recipe: dict[str, Any]) -> dict[str, Any]:
    """The recipe as this machine can parse it: a GPU recipe (bf16, DeepSpeed) is checked with
    CPU settings when no GPU is present, so every recipe can be validated anywhere."""
    import torch

    if torch.cuda.is_available():
        return dict(recipe)
    cpu = {k: v for k, v in recipe.items() if k != "deepspeed"}
    return {**cpu, "bf16": False, "fp16": False, "use_cpu": True}


def check_recipe(recipe: dict[str, Any]) -> None:
    """Raise :class:`RecipeError` naming every problem LlamaFactory would hit later."""
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.data.template import TEMPLATES
    from llamafactory.hparams import get_train_args

    problems = []
    template = recipe.get("template")
    if template not in TEMPLATES:
        problems.append(f"unknown template {template!r}")
    model = str(recipe.get("model_name_or_path", ""))
    if _looks_local(model) and not (Path(model) / "config.json").is_file():
        problems.append(f"model {model!r} is not a local model dir (build or download it first)")
    dataset_dir = str(recipe.get("dataset_dir", "data"))
    names = [n.strip() for n in str(recipe.get("dataset", "")).split(",") if n.strip()]
    try:
        for attr in get_dataset_list(names, dataset_dir):
            if attr.load_from == "file" and not (Path(dataset_dir) / attr.dataset_name).exists():
                problems.append(f"dataset file {Path(dataset_dir) / attr.dataset_name} is missing")
    except (ValueError, OSError) as exc:
        problems.append(f"datasets {names} in {dataset_dir}: {exc}")
    deepspeed = recipe.get("deepspeed")
    if deepspeed and not Path(deepspeed).is_file():
        problems.append(f"deepspeed config {deepspeed} not found")
    try:
        get_train_args(device_neutral(recipe))
    except (ValueError, SystemExit) as exc:
        problems.append(f"LlamaFactory rejects the arguments: {exc}")
    if problems:
        raise RecipeError("; ".join(problems))


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*", help="key=value, as llamafactory-cli accepts")
    parser.add_argument("--check", action="store_true", help="validate only, do not train")
    args = parser.parse_intermixed_args(argv)
    try:
        recipe = load_recipe(args.recipe, args.overrides)
        check_recipe(recipe)
    except RecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"recipe OK: {args.recipe} (template {recipe['template']}, dataset {recipe['dataset']})")
    if args.check:
        return 0
    env = dict(os.environ)
    if recipe.get("use_cpu"):
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU recipe must not grab a GPU that happens to exist
    cli = Path(sys.executable).with_name("llamafactory-cli")
    os.execve(cli, [str(cli), "train", args.recipe, *args.overrides], env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
