"""The training recipes in recipes/train/: LlamaFactory's own parser accepts every one of them,
and the paper recipes carry Table 7 of the paper (SPEC.md) exactly."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, run_json

RECIPES = REPO / "recipes" / "train"
ALL = sorted(RECIPES.glob("*.yaml"))
# The authors' variants: a paper recipe + exactly the differences docs/fidelity.md lists.
AUTHORS = [p for p in ALL if p.stem.endswith("-authors")]
PAPER = [p for p in ALL if not p.stem.endswith("-cpu") and p not in AUTHORS]
TINY = [p for p in ALL if p.stem.endswith("-tiny-cpu")]
DEMO = [p for p in ALL if p.stem.endswith("-demo-cpu")]
SECTIONS = ["model", "method", "dataset", "output", "train"]

# Paper Table 7 (SPEC.md "Training hyperparameters"), shared by both adapters; the
# direct-typing classifier of the w/o-calibration ablation is retrained as the classifier was.
TABLE7 = {
    "stage": "sft", "do_train": True, "finetuning_type": "lora",
    "lora_rank": 8, "lora_alpha": 16, "lora_target": "all",
    "cutoff_len": 1024, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 8,
    "num_train_epochs": 3.0, "lr_scheduler_type": "cosine", "warmup_ratio": 0.05, "bf16": True,
}
# roles as recipe file names start: <role>-<backbone or profile>.yaml
LEARNING_RATE = {"explorer": 2.0e-5, "classifier": 3.0e-5, "direct-classifier": 3.0e-5}
DATASET = {"explorer": "samner_explorer", "classifier": "samner_classifier",
           "direct-classifier": "samner_direct_classifier"}
# The tiny CPU recipes: (dataset, template, rank, alpha). Explorer and classifier have the paper's
# LoRA shape, so what serves the tiny adapters serves the real ones; the tiny anchor imitates the
# public IEPile LoRA (alpaca template, rank 64, alpha 64).
TINY_SHAPE = {
    "anchor": ("samner_anchor", "alpaca", 64, 64),
    "explorer": ("samner_explorer", "llama3", 8, 16),
    "classifier": ("samner_classifier", "llama3", 8, 16),
    "direct-classifier": ("samner_direct_classifier", "llama3", 8, 16),
}
# The CPU demo recipes: the same roles on the small real model (Qwen chat template).
DEMO_SHAPE = {
    "anchor": ("samner_anchor", "alpaca", 64, 64),
    "explorer": ("samner_explorer", "qwen", 8, 16),
    "classifier": ("samner_classifier", "qwen", 8, 16),
    "direct-classifier": ("samner_direct_classifier", "qwen", 8, 16),
}
BACKBONES = {  # file-name marker -> (model id, LlamaFactory template)
    "llama3-8b": ("meta-llama/Meta-Llama-3-8B-Instruct", "llama3"),
    "qwen2.5-7b": ("Qwen/Qwen2.5-7B-Instruct", "qwen"),
}


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def role_of(path: Path, roles: Any = LEARNING_RATE) -> str:
    """The longest role the file name starts with ("direct-classifier-..." is not "classifier")."""
    matches = [r for r in roles if path.name.startswith(f"{r}-")]
    assert matches, f"{path.name}: name must start with one of {list(roles)}"
    return max(matches, key=len)


def test_role_of_prefers_the_longest_role() -> None:
    assert role_of(Path("direct-classifier-llama3-8b.yaml")) == "direct-classifier"
    assert role_of(Path("classifier-llama3-8b.yaml")) == "classifier"


def test_recipe_set_is_complete() -> None:
    names = {p.name for p in ALL}
    for role in LEARNING_RATE:
        assert {f"{role}-llama3-8b.yaml", f"{role}-qwen2.5-7b.yaml",
                f"{role}-llama3-8b-ds-z3.yaml", f"{role}-tiny-cpu.yaml",
                f"{role}-demo-cpu.yaml"} <= names


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_paper_recipe_has_table7_hyperparameters(path: Path) -> None:
    recipe, role = load(path), role_of(path)
    assert {k: recipe.get(k) for k in TABLE7} == TABLE7
    assert recipe["learning_rate"] == LEARNING_RATE[role]
    assert recipe["dataset"] == DATASET[role]
    assert recipe["dataset_dir"] == "data/train"  # where `make data-train` writes
    assert "max_steps" not in recipe and not recipe.get("use_cpu")
    assert recipe["output_dir"].endswith("/lora/" + role.replace("-", "_"))  # tiny_assets' name


@pytest.mark.parametrize("path", PAPER + AUTHORS, ids=lambda p: p.stem)
def test_backbone_and_template_match(path: Path) -> None:
    recipe = load(path)
    markers = [m for m in BACKBONES if m in path.name]
    assert len(markers) == 1, f"{path.name}: name must contain one of {list(BACKBONES)}"
    model, template = BACKBONES[markers[0]]
    assert recipe["model_name_or_path"] == model
    assert recipe["template"] == template
    assert markers[0] in recipe["output_dir"]


@pytest.mark.parametrize("path", TINY + DEMO, ids=lambda p: p.stem)
def test_cpu_recipe_is_cpu_with_the_expected_adapter_shape(path: Path) -> None:
    tiny = path in TINY
    recipe, role = load(path), role_of(path, TINY_SHAPE)
    assert recipe["use_cpu"] is True and recipe["bf16"] is False and recipe["fp16"] is False
    # tools/tiny_model.py, or the demo's small real model (tools/small_model.py)
    model = "models/tiny-llama" if tiny else "models/qwen2.5-coder-0.5b"
    assert recipe["model_name_or_path"] == model
    assert recipe["dataset_dir"] == "data/train-tiny"  # tools/tiny_assets.py writes it
    assert (recipe["dataset"], recipe["template"], recipe["lora_rank"],
            recipe["lora_alpha"]) == (TINY_SHAPE if tiny else DEMO_SHAPE)[role]
    assert recipe["lora_target"] == "all"
    assert recipe["logging_steps"] == 1  # the e2e test reads one loss per step
    assert "deepspeed" not in recipe


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_section_headers_in_order(path: Path) -> None:
    headers = re.findall(r"^### (\w+)\s*$", path.read_text(encoding="utf-8"), re.MULTILINE)
    assert headers == SECTIONS


# recipe -> (the paper recipe it varies, its differences: the authors' layout data, their
# YAML's 5 epochs instead of Table 7's 3, and its own output_dir)
AUTHORS_VARIANTS = {
    "explorer-llama3-8b-authors.yaml": ("explorer-llama3-8b.yaml", {
        "dataset": "samner_explorer_authors", "num_train_epochs": 5.0,
        "output_dir": "saves/llama3-8b/lora/explorer-authors"}),
}


def test_authors_variants_are_their_paper_recipe_plus_the_documented_differences() -> None:
    assert sorted(p.name for p in AUTHORS) == sorted(AUTHORS_VARIANTS)
    for name, (paper_name, differences) in AUTHORS_VARIANTS.items():
        paper = load(RECIPES / paper_name)
        assert paper_name in {p.name for p in PAPER}  # itself checked against Table 7
        assert all(paper[k] != v for k, v in differences.items())  # each one a real change
        assert load(RECIPES / name) == paper | differences, name


@pytest.mark.parametrize("path", [p for p in ALL if "ds-z" in p.name], ids=lambda p: p.stem)
def test_deepspeed_variant_points_to_a_zero3_config(path: Path) -> None:
    recipe = load(path)
    config_path = REPO / recipe["deepspeed"]
    assert config_path.is_file(), recipe["deepspeed"]
    config = json.loads(config_path.read_text(encoding="utf-8"))
    assert config["zero_optimization"]["stage"] == 3
    # otherwise the single-node recipe of the same backbone, unchanged
    plain = load(path.with_name(path.name.replace("-ds-z3", "")))
    assert {k: v for k, v in recipe.items() if k != "deepspeed"} == plain


@pytest.mark.slow
def test_llamafactory_accepts_every_recipe(venv_python, tiny_model: Path,
                                           tiny_train_data: Path) -> None:
    """``tools.train.check_recipe`` (LlamaFactory's own argument parser, template and dataset
    lookups) on every recipe, in ONE train-env process. Data comes from the tiny registration;
    local model paths point to the tiny model; hub model ids are not resolved locally."""
    overrides = {str(p.relative_to(REPO)): [f"dataset_dir={tiny_train_data}"]
                 + ([f"model_name_or_path={tiny_model}"] if p in TINY + DEMO else [])
                 for p in ALL}
    script = f"""
import json
from tools.train import RecipeError, check_recipe, load_recipe
results = {{}}
for path, overrides in json.loads({json.dumps(overrides)!r}).items():
    try:
        check_recipe(load_recipe(path, overrides))
        results[path] = "ok"
    except RecipeError as exc:
        results[path] = str(exc)
print(json.dumps(results))
"""
    results = run_json(venv_python("train"), script)
    assert results == dict.fromkeys(overrides, "ok")
