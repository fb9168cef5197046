"""Stage 3, definition-guided calibration: the frozen base model picks each mention's target label.

One request per mention (paper eq. 12) whose answer is constrained to the domain's label names
(vLLM structured outputs, ``choice``), so an answer outside the target labels cannot happen. The
prompt puts what is constant for the whole domain first (task, label definitions, which labels
are more specific), then the sentence, then the mention with its archetype and that archetype's
definition, so prefix caching shares everything but the tail.

Without calibration (ablation) a mention's archetype is mapped by the domain's
``archetype_fallback`` table; an archetype it does not list becomes ``misc``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from core.mappings import Domain
from core.messages import Completion, Request
from core.templates import prompt_token_ids
from eval.config import InferenceConfig

MISC = "misc"

TASK = (
    "You assign entity types. Each question gives a sentence, one entity mention from it and the "
    "coarse archetype the mention was classified as. Answer with the one type from the list below "
    "that fits the mention best in this sentence. When several types fit, answer the most "
    "specific one."
)


def domain_preamble(domain: Domain) -> str:
    """The part of every calibration prompt that is constant within a domain."""
    lines = [TASK, "", "Types:"]
    lines += [f"- {label.name}: {label.definition}" for label in domain.labels.values()]
    if domain.more_specific:
        lines += ["", "More specific types win over the general types they refine:"]
        lines += [f"- {domain.labels[tag].name} over "
                  + ", ".join(domain.labels[g].name for g in general)
                  for tag, general in domain.more_specific.items()]
    return "\n".join(lines)


def calibration_content(preamble: str, sentence: str, mention: str, archetype: str,
                        archetype_definition: str) -> str:
    return (f"{preamble}\n\nSentence: {sentence}\nMention: {mention}\n"
            f"Archetype: {archetype} ({archetype_definition})\nType:")


def request_key(sentence_id: str, mention: str) -> str:
    """A calibration answer belongs to its mention (never to a position in a list that may
    change when discovery does)."""
    return f"{sentence_id}#{mention}"


def calibration_requests(items: Sequence[tuple[str, str, Sequence[tuple[str, str]]]],
                         domain: Domain, archetype_definitions: Mapping[str, str],
                         config: InferenceConfig, tokenizer) -> list[Request]:
    """``items`` = (sentence id, text, [(mention, archetype)]); one request per mention."""
    preamble = domain_preamble(domain)
    names = tuple(label.name for label in domain.labels.values())
    requests = []
    for sid, text, pairs in items:
        for mention, archetype in pairs:
            content = calibration_content(preamble, text, mention, archetype,
                                          archetype_definitions.get(archetype, ""))
            requests.append(Request(
                request_key(sid, mention),
                prompt_token_ids(tokenizer, config.calibrator_template, content),
                None, config.sampling.max_tokens_calibrate, choices=names, sentence=sid))
    return requests


def label_parser(domain: Domain):
    """Map the chosen label name back to the raw tag; anything else is counted as invalid."""
    by_name = domain.tag_lookup()

    def parse(request: Request, completion: Completion) -> tuple[str | None, str]:
        tag = by_name.get(completion.text.strip().lower())
        return (tag, "ok") if tag else (None, "invalid")

    return parse


def collect(records: Mapping[str, Mapping[str, Any]] | None,
            assigned: Mapping[str, Sequence[tuple[str, str]]], domain: Domain,
            counts: Counter[str]) -> dict[str, list[str | None]]:
    """The target label of each assigned mention: the calibrator's answer, or (no records:
    calibration off; or an invalid answer, counted) the archetype's fallback label; None =
    dropped (see :func:`fallback_label`)."""
    labels: dict[str, list[str | None]] = {}
    for sid, pairs in assigned.items():
        labels[sid] = []
        for mention, archetype in pairs:
            tag = records[request_key(sid, mention)]["parsed"] if records is not None else None
            if tag is None:
                if records is not None:
                    counts["invalid_label_to_fallback"] += 1
                tag = fallback_label(domain, archetype, counts)
            labels[sid].append(tag)
    return labels


def fallback_label(domain: Domain, archetype: str, counts: Counter[str]) -> str | None:
    """The domain's label for an archetype; else misc; else (a domain without misc, e.g. MIT)
    None: the mention is dropped and counted rather than forced onto an arbitrary label."""
    label = domain.archetype_fallback.get(archetype)
    if label is not None:
        return label
    if MISC in domain.labels:
        counts["fallback_to_misc"] += 1
        return MISC
    counts["fallback_dropped"] += 1
    return None
