"""Stage 2, abstract mediation: the archetype classifier labels each discovered mention.

The sentence is shown with every discovered mention wrapped in ``<ENT>``/``</ENT>`` (the format
the classifier was trained on, :mod:`core.tagging`) and the schema is all 14 archetypes; no target
label is shown. A tagged mention the classifier omits becomes ``misc``; an archetype outside the
14 is counted and becomes ``misc``; answers about mentions that were not tagged are counted and
ignored.

Direct typing (``typing: direct``, the paper's w/o-calibration ablation) replaces the archetypes
and stage 3: one request per sentence with tagged mentions goes to the direct-typing classifier
(trained on IEPile's own fine type names, ``data_prep.iepile --target direct``) with the target
domain's label names as the schema, ``misc`` included. Each answer is mapped to a raw tag by
label name or raw tag, case-insensitively. A tagged mention the answer omits
(``omitted_to_misc``) or types outside the candidates (``unknown_type_to_misc``) becomes
``misc``; in a domain without ``misc`` it is dropped instead (``omitted_dropped``,
``unknown_type_dropped``). ``typed`` counts the mentions the answer typed with a candidate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from core.mappings import Domain
from core.messages import Completion, Request
from core.parsing import parse_mention_labels
from core.prompts import classifier_prompt, direct_typing_prompt
from core.tagging import tag_mentions
from core.templates import get_template, prompt_token_ids, user_content
from eval.config import InferenceConfig

MISC = "misc"


def tag_sentence(text: str, mentions: Sequence[str]) -> tuple[str, list[str]]:
    """Tagged text and the mentions actually tagged, in text order."""
    tagged, found = tag_mentions(text, mentions)
    order = {m: tagged.find(f"<ENT>{m}</ENT>") for m in found}
    return tagged, sorted(found, key=order.__getitem__)


def _requests(items: Sequence[tuple[str, str]], prompt: Callable[[str], tuple[str, str]],
              role: str, template: str, config: InferenceConfig, tokenizer) -> list[Request]:
    """One request per (sentence id, tagged text) to the stage-2 adapter ``role``."""
    return [
        Request(sid, prompt_token_ids(tokenizer, template, user_content(*prompt(tagged))),
                role, config.sampling.max_tokens_classify, get_template(template).stop,
                sentence=sid)
        for sid, tagged in items
    ]


def classifier_requests(items: Sequence[tuple[str, str]], archetypes: Sequence[str],
                        config: InferenceConfig, tokenizer) -> list[Request]:
    """``items`` = (sentence id, tagged text) for sentences with at least one mention."""
    return _requests(items, lambda tagged: classifier_prompt(tagged, archetypes), "classifier",
                     config.classifier_adapter.template, config, tokenizer)


def direct_requests(items: Sequence[tuple[str, str]], domain: Domain,
                    config: InferenceConfig, tokenizer) -> list[Request]:
    """Direct typing: the domain's label names (misc included) as the schema."""
    names = [label.name for label in domain.labels.values()]
    return _requests(items, lambda tagged: direct_typing_prompt(tagged, names),
                     "direct_classifier", config.direct_classifier_adapter.template, config,
                     tokenizer)


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


def assign_labels(tagged: Sequence[str], answer: Sequence[Sequence[str]],
                  known: Mapping[str, str], fallback: str | None, counts: Counter[str],
                  unknown: str, typed: str | None = None) -> list[tuple[str, str | None]]:
    """One label per tagged mention: the answer's (its first about the mention), looked up
    lower-cased in ``known``. An omitted mention or an unknown label gets ``fallback`` (None:
    dropped), counted as ``omitted_<outcome>`` / ``<unknown>_<outcome>`` (outcome ``to_misc``
    or ``dropped``); answers about mentions that were not tagged are counted and ignored."""
    by_mention: dict[str, str] = {}
    tagged_set = set(tagged)
    for mention, label in answer:
        if mention not in tagged_set:
            counts["answer_mention_not_tagged"] += 1
            continue
        by_mention.setdefault(mention, label)
    outcome = f"to_{fallback}" if fallback else "dropped"
    result: list[tuple[str, str | None]] = []
    for mention in tagged:
        label = by_mention.get(mention)
        if label is not None and label.lower() in known:
            if typed:
                counts[typed] += 1
            result.append((mention, known[label.lower()]))
            continue
        counts[f"{'omitted' if label is None else unknown}_{outcome}"] += 1
        result.append((mention, fallback))
    return result


def assign_archetypes(tagged: Sequence[str], answer: Sequence[Sequence[str]],
                      archetypes: Sequence[str], counts: Counter[str]) -> list[tuple[str, str]]:
    """One archetype per tagged mention, by the rules in the module docstring."""
    known = {a.lower(): a for a in archetypes}
    pairs = assign_labels(tagged, answer, known, MISC, counts, "unknown_archetype")
    return [(mention, label or MISC) for mention, label in pairs]


def collect_direct(records: Mapping[str, Mapping[str, Any]],
                   tagged: Mapping[str, tuple[str, list[str]]], domain: Domain,
                   counts: Counter[str]) -> dict[str, list[tuple[str, str | None]]]:
    """Direct typing: (mention, raw tag or None = dropped) per tagged sentence from the direct
    classifier's records (keyed by sentence id), by the rules in the module docstring."""
    known = domain.tag_lookup()
    fallback = MISC if MISC in domain.labels else None
    labelled = {}
    for sid, (_, mentions) in tagged.items():
        counts["mentions_tagged"] += len(mentions)
        labelled[sid] = assign_labels(mentions, records[sid]["parsed"], known, fallback, counts,
                                      "unknown_type", typed="typed")
    return labelled
