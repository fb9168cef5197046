"""Stage 2, abstract mediation: the archetype classifier labels each discovered mention.

The sentence is shown with every discovered mention wrapped in ``<ENT>``/``</ENT>`` (the format
the classifier was trained on, :mod:`eval.tagging`) and the schema is all 14 archetypes; no target
label is shown. A tagged mention the classifier omits becomes ``misc``; an archetype outside the
14 is counted and becomes ``misc``; answers about mentions that were not tagged are counted and
ignored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from eval.config import InferenceConfig
from eval.engine import Completion, Request
from eval.parsing import parse_mention_labels
from eval.prompts import classifier_prompt
from eval.tagging import tag_mentions
from eval.templates import get_template, prompt_token_ids, user_content

MISC = "misc"


def tag_sentence(text: str, mentions: Sequence[str]) -> tuple[str, list[str]]:
    """Tagged text and the mentions actually tagged, in text order."""
    tagged, found = tag_mentions(text, mentions)
    order = {m: tagged.find(f"<ENT>{m}</ENT>") for m in found}
    return tagged, sorted(found, key=order.__getitem__)


def classifier_requests(items: Sequence[tuple[str, str]], archetypes: Sequence[str],
                        config: InferenceConfig, tokenizer) -> list[Request]:
    """``items`` = (sentence id, tagged text) for sentences with at least one mention."""
    template = config.classifier_adapter.template
    return [
        Request(sid, prompt_token_ids(tokenizer, template,
                                      user_content(*classifier_prompt(tagged, archetypes))),
                "classifier", config.sampling.max_tokens_classify, get_template(template).stop,
                sentence=sid)
        for sid, tagged in items
    ]


def collect(records: Mapping[str, Mapping[str, Any]],
            tagged: Mapping[str, tuple[str, list[str]]], archetypes: Sequence[str],
            counts: Counter[str]) -> dict[str, list[tuple[str, str]]]:
    """(mention, archetype) per tagged sentence from the classifier's records (keyed by
    sentence id); failures are counted into ``counts``."""
    return {sid: assign_archetypes(mentions, records[sid]["parsed"], archetypes, counts)
            for sid, (_, mentions) in tagged.items()}


def parse_classification(request: Request, completion: Completion) -> tuple[list, str]:
    pairs, status = parse_mention_labels(completion.text)
    return [list(p) for p in pairs], str(status)


def assign_archetypes(tagged: Sequence[str], answer: Sequence[Sequence[str]],
                      archetypes: Sequence[str], counts: Counter[str]) -> list[tuple[str, str]]:
    """One archetype per tagged mention, by the rules in the module docstring."""
    known = {a.lower(): a for a in archetypes}
    by_mention: dict[str, str] = {}
    tagged_set = set(tagged)
    for mention, label in answer:
        if mention not in tagged_set:
            counts["answer_mention_not_tagged"] += 1
            continue
        by_mention.setdefault(mention, label)
    result = []
    for mention in tagged:
        label = by_mention.get(mention)
        if label is None:
            counts["omitted_to_misc"] += 1
            label = MISC
        elif label.lower() not in known:
            counts["unknown_archetype_to_misc"] += 1
            label = MISC
        else:
            label = known[label.lower()]
        result.append((mention, label))
    return result
