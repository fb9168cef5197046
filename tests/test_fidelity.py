"""The authors' config = the paper config + exactly the switches docs/fidelity.md lists."""

from __future__ import annotations

from typing import Any

import yaml

from eval.config import load_config
from tests.conftest import REPO

PAPER = REPO / "recipes" / "infer" / "llama3-8b.yaml"
AUTHORS = REPO / "recipes" / "infer" / "llama3-8b-authors.yaml"
# setting -> the authors' value (docs/fidelity.md, "Differences with a switch")
SWITCHES = {
    "extractors.anchor.template": "llama3",
    "iepile.split_num": None,
    "extraction.type_names": "raw_tag",
    "sampling.temperature": 0.01,
    "sampling.top_p": 0.1,
    "sampling.repetition_penalty": 1.1,
    "extractors.explorer.prompt": "authors_explorer",
}
ELSEWHERE = {  # where the authors' run keeps its own files
    "extractors.explorer.path": "saves/llama3-8b/lora/explorer-authors",
    "output_dir": "runs/llama3-8b-authors",
}


def flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_authors_config_is_the_paper_config_plus_the_documented_switches():
    paper = flat(load_config(PAPER, ["engine.backend=fake"]).to_dict())
    authors = flat(load_config(AUTHORS, ["engine.backend=fake"]).to_dict())
    changed = {k: authors[k] for k in paper if paper[k] != authors[k]}
    assert changed == SWITCHES | ELSEWHERE
    # the paper config's values for the same settings: IEPile's encoding and split, greedy
    assert {k: paper[k] for k in SWITCHES} == {
        "extractors.anchor.template": "iepile", "iepile.split_num": 6,
        "extraction.type_names": "label", "sampling.temperature": 0.0, "sampling.top_p": 1.0,
        "sampling.repetition_penalty": 1.0, "extractors.explorer.prompt": "explorer"}


def test_fidelity_doc_names_every_switch_and_the_explorer_epochs():
    doc = (REPO / "docs" / "fidelity.md").read_text()
    for key in SWITCHES:
        assert f"{key}=" in doc, key
    assert "num_train_epochs=5.0" in doc
    assert yaml.safe_load(AUTHORS.read_text())["extractors"]["explorer"]["path"] in doc
