"""Prompt text of the two trained stages (explorer, archetype classifier): the only copy.

The SFT data converters (``data_prep.pile_ner``, ``data_prep.iepile``) and the inference pipeline
build their prompts with these functions, so what a LoRA adapter was trained on and what it is
asked at inference cannot drift apart. Change the wording only together with
:data:`PROMPT_VERSION`, and retrain: an adapter is tied to the version it was trained with.

Each builder returns LlamaFactory's alpaca pair ``(instruction, input)``; the chat user turn is
``instruction + "\\n" + input``. The fixed preamble comes first and the per-example text last, so
requests that share a schema also share a long prefix (vLLM prefix caching).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

PROMPT_VERSION = "samner-prompts/1"

EXPLORER_PREAMBLE = (
    "Find the named entities in the passage that belong to the entity types listed in the "
    "schema. Reply with one JSON object that has every schema type as a key, in the schema's "
    "order, and maps it to the list of that type's mentions, each copied exactly as it is "
    "written in the passage. A type with no mention in the passage gets an empty list. "
    "Reply with the JSON object only."
)

CLASSIFIER_PREAMBLE = (
    "In the sentence below, every entity mention is enclosed in <ENT> and </ENT>. Decide which "
    "archetype of the schema each enclosed mention belongs to; choose exactly one archetype per "
    "mention. Reply with a JSON list that holds one object per enclosed mention, in the order "
    "the mentions appear, each object mapping the mention text (without the tags) to its "
    "archetype. Reply with the JSON list only."
)


def _schema(items: Sequence[str]) -> str:
    if not items:
        raise ValueError("a prompt needs at least one schema entry")
    return "\nSchema: " + json.dumps(list(items), ensure_ascii=False)


def explorer_prompt(types: Sequence[str], text: str) -> tuple[str, str]:
    """(instruction, input) asking the explorer for the mentions of ``types`` in ``text``."""
    return EXPLORER_PREAMBLE + _schema(types), "Passage: " + text


def classifier_prompt(tagged_text: str, archetypes: Sequence[str]) -> tuple[str, str]:
    """(instruction, input) asking the classifier for the archetype of each tagged mention."""
    return CLASSIFIER_PREAMBLE + _schema(archetypes), "Sentence: " + tagged_text


def explorer_target(
    mentions_by_type: Mapping[str, Iterable[str]], types: Sequence[str] | None = None
) -> str:
    """The explorer's SFT answer: a JSON object, keys in schema order, empty lists kept.

    Keys follow ``mentions_by_type``'s order, or ``types`` when given (then a type missing from
    the mapping gets ``[]`` and a key not in ``types`` is an error).
    """
    if types is not None:
        schema = set(types)
        extra = [t for t in mentions_by_type if t not in schema]
        if extra:
            raise ValueError(f"types not in the schema: {extra}")
        mentions_by_type = {t: mentions_by_type.get(t, []) for t in types}
    return json.dumps({t: list(ms) for t, ms in mentions_by_type.items()}, ensure_ascii=False)


def classifier_target(pairs: Iterable[tuple[str, str]]) -> str:
    """The classifier's SFT answer: a JSON list of one-key objects ``{mention: archetype}``."""
    return json.dumps([{mention: archetype} for mention, archetype in pairs], ensure_ascii=False)
