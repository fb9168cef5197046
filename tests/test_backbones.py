"""The backbone registry (core/backbones.py): which paper backbone a model id is, its paper row,
its chat template (checked in every config), its heads (the TP check of a hub id)."""

from __future__ import annotations

import pytest

from core.backbones import BACKBONES, backbone_of, paper_row_for, template_problems
from eval.config import ConfigError, load_config
from tests.conftest import REPO

LLAMA = "meta-llama/Meta-Llama-3-8B-Instruct"


@pytest.mark.parametrize(("model", "backbone", "row"), [
    (LLAMA, "Llama3-8B-Instruct", "sam_ner_llama3_8b"),
    ("Qwen/Qwen2.5-7B-Instruct", "Qwen2.5-7B-Instruct", "sam_ner_qwen2_5_7b"),
    ("/models/qwen2.5-7b-instruct", "Qwen2.5-7B-Instruct", "sam_ner_qwen2_5_7b"),
    ("models/qwen2.5-coder-0.5b", None, "sam_ner_qwen2_5_7b"),  # the family's row
    ("models/tiny-llama", None, "sam_ner_llama3_8b"),
    ("mistralai/Mistral-7B", None, "sam_ner_llama3_8b"),  # the paper's main backbone
])
def test_a_model_id_names_its_backbone_and_paper_row(model, backbone, row) -> None:
    found = backbone_of(model)
    assert (found.name if found else None, paper_row_for(model)) == (backbone, row)


def test_the_registry_holds_the_paper_backbones() -> None:
    assert {name: (b.template, b.heads) for name, b in BACKBONES.items()} == {
        "llama3-8b": ("llama3", (32, 8)), "qwen2.5-7b": ("qwen", (28, 4))}


def test_a_backbone_asked_in_another_template_is_refused() -> None:
    asked = {"calibrator_template": "qwen", "classifier_adapter.template": "llama3"}
    assert template_problems(LLAMA, asked) == [
        f"calibrator_template: 'qwen', but {LLAMA} is Llama3-8B-Instruct, whose chat template "
        "is 'llama3' (core/backbones.py)"]
    assert template_problems("models/tiny-llama", asked) == []  # not a registered backbone
    with pytest.raises(ConfigError, match=r"classifier_adapter\.template: 'alpaca', but "):
        load_config(REPO / "recipes/infer/llama3-8b.yaml",
                    ["engine.backend=fake", "classifier_adapter.template=alpaca"])
