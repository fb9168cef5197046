"""The paper's backbones: one registered entry per base-model family the project ships for.

An entry holds what the rest of the code would otherwise guess from a model id: the chat
template its adapters are trained and asked with, its attention heads (so a tensor-parallel
size is checked before any download, even for a hub id), and the row of
``recipes/paper_results.yaml`` a run on it is compared with. Adding a backbone family = one
``BACKBONES.add`` line here, its recipes, and (for a new chat format) a template in
:mod:`core.templates`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.registry import Registry


@dataclass(frozen=True)
class Backbone:
    name: str  # as the paper names it
    match: str  # a model id is this backbone when its normalised form contains this
    family: str  # a smaller model of the family (e.g. a CPU stand-in) is compared with its row
    template: str  # core.templates name its adapters and the calibrator use
    heads: tuple[int, int]  # (attention heads, KV heads), from the model's config.json
    paper_row: str  # recipes/paper_results.yaml row of SAM-NER on this backbone


BACKBONES: Registry[Backbone] = Registry("backbone")
BACKBONES.add("llama3-8b", Backbone("Llama3-8B-Instruct", "llama38b", "llama", "llama3",
                                    (32, 8), "sam_ner_llama3_8b"))
BACKBONES.add("qwen2.5-7b", Backbone("Qwen2.5-7B-Instruct", "qwen257b", "qwen", "qwen",
                                     (28, 4), "sam_ner_qwen2_5_7b"))


def normalise(model: str) -> str:
    """A model id without case and punctuation: ``Meta-Llama-3-8B`` -> ``metallama38b``."""
    return re.sub(r"[^a-z0-9]", "", model.lower())


def backbone_of(model: str) -> Backbone | None:
    """The paper backbone a model id (hub id or local path) is, or None."""
    key = normalise(model)
    return next((b for b in BACKBONES.values() if b.match in key), None)


def paper_row_for(model: str) -> str:
    """The paper row a run on ``model`` is compared with: its backbone's, else its family's
    (the demo's Qwen2.5-coder -> the Qwen row), else the first backbone's (the paper's main)."""
    key = normalise(model)
    exact = backbone_of(model)
    if exact is not None:
        return exact.paper_row
    entries = list(BACKBONES.values())
    return next((b.paper_row for b in entries if b.family in key), entries[0].paper_row)


def template_problems(model: str, asked: dict[str, str]) -> list[str]:
    """``where: template`` settings that ask a registered backbone in another chat template
    than its own (an adapter trained with it would be asked in a format it never saw)."""
    backbone = backbone_of(model)
    if backbone is None:
        return []
    return [f"{where}: {template!r}, but {model} is {backbone.name}, whose chat template is "
            f"{backbone.template!r} (core/backbones.py)"
            for where, template in asked.items() if template != backbone.template]
