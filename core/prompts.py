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


# --- direct typing (the paper's w/o-calibration ablation) ---------------------------------------
# Stage 2 without archetypes: a classifier trained on IEPile's own fine type names answers with
# the candidate type of each tagged mention (at inference: a target domain's label names).

DIRECT_TYPING_PREAMBLE = (
    "Each entity mention in the sentence below is marked with <ENT> and </ENT>. Give every "
    "marked mention the one entity type from the schema that describes it best. Reply with a "
    "JSON list holding one object per marked mention, in the order the mentions occur, each "
    "object mapping the mention text (without the marks) to its type, spelled as in the schema. "
    "Reply with the JSON list only."
)


def direct_typing_prompt(tagged_text: str, types: Sequence[str]) -> tuple[str, str]:
    """(instruction, input) asking the direct-typing classifier for the type of each tagged
    mention among ``types``; its answer has :func:`classifier_target`'s form."""
    return DIRECT_TYPING_PREAMBLE + _schema(types), "Sentence: " + tagged_text


# --- the authors' explorer layout (DMIRLAB-Group/SAM-NER; a switch, not the default) ----------
# Their explorer is trained and asked with ONE instruction string and no input: a preamble, then
# at once ``Schema:`` + the Python repr of the type list + ``. Passage: `` + the passage. The
# layout is reproduced exactly; the preamble's wording is this project's own (docs/fidelity.md).

AUTHORS_EXPLORER_PREAMBLE = (
    "Act as a named entity extractor. Read the passage and pull out every named entity in it "
    "whose type is one of the types listed in the schema."
)


def authors_explorer_prompt(types: Sequence[str], text: str) -> tuple[str, str]:
    """(instruction, input) in the authors' layout: everything in the instruction, input ``""``
    (LlamaFactory's user turn is then the instruction alone). The schema is ``repr`` of a
    Python list of str: single quotes, or double quotes for a name holding an apostrophe."""
    if not types:
        raise ValueError("a prompt needs at least one schema entry")
    return f"{AUTHORS_EXPLORER_PREAMBLE}Schema:{list(types)!r}. Passage: {text}", ""


def authors_explorer_target(answers: Iterable[tuple[str, object]]) -> str:
    """The authors' explorer SFT answer from ``(type, parsed answer)`` pairs in question order:
    a JSON object whose keys keep the order the types were first asked; a type asked again keeps
    its first position and takes its later answer; values are written as parsed (repeated
    mentions kept)."""
    output: dict[str, object] = {}
    for type_name, value in answers:
        output[type_name] = value
    return json.dumps(output, ensure_ascii=False)


# --- definition refinement (disagreement-guided; not a trained stage) --------------------------
# A supervisor LLM reads label definitions and the mentions annotators disagreed on, and rewrites
# the definitions. Not tied to PROMPT_VERSION: no adapter is trained on it.

SUPERVISOR_PROMPT_VERSION = "samner-supervisor/1"

SUPERVISOR_PREAMBLE = (
    "Several annotators labelled the named entities of the same sentences, each following the "
    "same label definitions, and they disagreed on the mentions listed below. Rewrite the "
    "definitions of the labels under \"Definitions to revise\" so that annotators who read them "
    "would make the same decision on mentions like these. Write each definition as an annotation "
    "guideline: say what the type covers, and where its border with the neighbouring labels lies, "
    "naming those labels. Never reuse a name or mention from the sentences shown; where an "
    "example helps, invent one. Reply with one JSON object that maps each label name under "
    "\"Definitions to revise\", spelled as there, to its new definition. Reply with the JSON "
    "object only."
)


def supervisor_prompt(domain_name: str, definitions: Mapping[str, str], others: Sequence[str],
                      disagreements: Sequence[tuple[str, str, str]]) -> str:
    """The user message asking the supervisor to rewrite ``definitions`` (label name -> current
    definition) of a domain whose other labels are ``others``, given ``disagreements``
    (sentence text, mention, what the annotators said). The fixed preamble comes first."""
    if not definitions:
        raise ValueError("a supervisor prompt needs at least one definition to revise")
    if not disagreements:
        raise ValueError("a supervisor prompt needs at least one disagreement")
    lines = [SUPERVISOR_PREAMBLE, "", f"Domain: {domain_name}", "Definitions to revise:"]
    lines += [f"- {name}: {definition}" for name, definition in definitions.items()]
    lines.append("Other labels of the domain: "
                 + (", ".join(others) if others else "(none)"))
    lines.append("Disagreements:")
    for number, (text, mention, said) in enumerate(disagreements, start=1):
        lines += [f"{number}. Sentence: {text}", f"   Mention: {mention}",
                  f"   Annotators: {said}"]
    return "\n".join(lines)
