"""How an extractor is asked: the registry of stage-1 prompt formats (one home).

Each format turns (types, sentence text, config) into the user turns of one extractor's requests,
``[(types asked, user content)]`` - one turn, or one per schema chunk (IEPile). The inference
config's ``extractors.<name>.prompt`` is validated against :data:`PROMPT_FORMATS` without
importing the stages; :mod:`eval.discovery` builds the requests from it. A new format = one
function here with ``@PROMPT_FORMATS.register("<name>")`` (its wording in :mod:`core.prompts`
when an adapter is trained on it).

* ``iepile``: IEPile's own NER query, a JSON string, the schema split as IEPile splits it.
* ``explorer``: the prompt our Pile-NER explorer was trained on.
* ``authors_explorer``: the authors' explorer layout (one instruction, the schema as a list).
* ``zero_shot``: a plain instruction for a model nobody tuned.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from core.prompts import authors_explorer_prompt, explorer_prompt
from core.registry import Registry
from core.templates import user_content

Contents = Callable[[Sequence[str], str, Any], list[tuple[list[str], str]]]
PROMPT_FORMATS: Registry[Contents] = Registry("prompt format")


def anchor_content(instruction: str, types: Sequence[str], text: str) -> str:
    """IEPile's NER query: the whole user turn is one JSON string."""
    return json.dumps({"instruction": instruction, "schema": list(types), "input": text},
                      ensure_ascii=False)


def type_chunks(types: Sequence[str], size: int | None) -> list[list[str]]:
    """IEPile's NER schema split (``multischema_split_by_num_test``): chunks of ``size`` types;
    a remainder of at least ``max(1, size // 2)`` types is a chunk of its own, a shorter one joins
    the last chunk (size 6: 13 types -> [6, 7], 8 -> [8], 9 -> [6, 3]). ``None`` = no split,
    the whole list in one query (the authors' code)."""
    types = list(types)
    if size is None or len(types) < size:
        return [types]
    full = len(types) // size * size
    chunks = [types[i:i + size] for i in range(0, full, size)]
    if len(types) - full >= max(1, size // 2):
        chunks.append(types[full:])
    else:
        chunks[-1].extend(types[full:])
    return chunks


@PROMPT_FORMATS.register("iepile")
def _iepile_contents(types: Sequence[str], text: str, config: Any) -> list[tuple[
        list[str], str]]:
    """IEPile's NER query, one per chunk of IEPile's schema split: the user turn is JSON."""
    return [(chunk, anchor_content(config.iepile.instruction, chunk, text))
            for chunk in type_chunks(types, config.iepile.split_num)]


@PROMPT_FORMATS.register("explorer")
def _explorer_contents(types: Sequence[str], text: str, config: Any
                       ) -> list[tuple[list[str], str]]:
    """The prompt our explorer was trained on (core.prompts, shared with its SFT data)."""
    return [(list(types), user_content(*explorer_prompt(types, text)))]


@PROMPT_FORMATS.register("authors_explorer")
def _authors_explorer_contents(types: Sequence[str], text: str, config: Any
                               ) -> list[tuple[list[str], str]]:
    """The authors' explorer layout (core.prompts, shared with its SFT data): the user turn is
    the instruction alone; the answer is the same ``{type: [mentions]}`` object."""
    return [(list(types), user_content(*authors_explorer_prompt(types, text)))]


ZERO_SHOT_INSTRUCTION = (
    "List the named entities of the types below that occur in the text. Answer with one JSON "
    "object that maps each type to the list of its entities, each copied exactly as it is "
    "written in the text; a type without entities maps to an empty list. Answer with the JSON "
    "object only."
)


@PROMPT_FORMATS.register("zero_shot")
def _zero_shot_contents(types: Sequence[str], text: str, config: Any
                        ) -> list[tuple[list[str], str]]:
    """A plain instruction for an untuned model (e.g. the base model as a third extractor)."""
    return [(list(types), f"{ZERO_SHOT_INSTRUCTION}\nTypes: "
             f"{json.dumps(list(types), ensure_ascii=False)}\nText: {text}")]
