"""Stage 1, entity discovery: any number of extractors, then a consensus rule.

Extractors are data (``extractors`` in the inference config); each is asked in one of the
:data:`core.prompt_formats.PROMPT_FORMATS` (IEPile's own query for the anchor, our
explorer's prompt, the authors' explorer layout, a plain zero-shot instruction).

Their mention lists are joined by the configured rule of :mod:`eval.consensus` (the paper's CCR
by default). Stage 1 is type-agnostic: a mention filed under a key outside the schema is still a
mention (kept, and counted as ``off_schema_mentions``). The result per sentence is a
de-duplicated list of mention strings; mentions that do not occur in the sentence (as a whole
word) are dropped and counted. Request keys are ``<sentence id>#<chunk>``, private to this module.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.mappings import Domain
from core.messages import Completion, Request
from core.parsing import parse_type_mentions
from core.prompt_formats import PROMPT_FORMATS
from core.records import Sentence
from core.tagging import find_mention
from core.templates import get_template, prompt_token_ids
from eval import consensus
from eval.config import InferenceConfig


def extractor_types(domain: Domain, config: InferenceConfig) -> list[str]:
    """The type names every extractor is asked for: every label but misc (SPEC), as each
    label's ``extract_as`` or ``name`` or, with ``extraction.type_names=raw_tag``, its raw tag."""
    raw = config.extraction.type_names == "raw_tag"
    return [tag if raw else (label.extract_as or label.name)
            for tag, label in domain.labels.items() if tag != "misc"]


def _literal(value: str) -> str:
    """An EBNF string literal that matches ``value`` JSON-encoded (quotes included)."""
    return json.dumps(json.dumps(value, ensure_ascii=False), ensure_ascii=False)


def _span_rules(text: str, max_words: int | None) -> list[str]:
    """EBNF rules: ``span`` matches a JSON string holding a run of consecutive words of
    ``text`` (at most ``max_words`` of them; None = any number).

    A chain - rule ``w{i}_{d}`` is word i, optionally followed by a space and ``w{i+1}_{d-1}`` -
    keeps the grammar linear in the sentence length; listing every n-gram as one alternative
    made xgrammar compile ~7x slower (31 vs 4 ms a sentence, measured on CPU), and vLLM
    compiles one grammar per request before that request can start.
    """
    words = [json.dumps(w, ensure_ascii=False)[1:-1] for w in text.split()]
    if not words:
        return ['span ::= "\\"\\""']
    n = len(words)

    def depth(i: int) -> int:  # longest run that may start at word i
        return n - i if max_words is None else min(max_words, n - i)

    def name(i: int, d: int) -> str:  # unbounded runs need one rule per word, not per depth
        return f"w{i}" if max_words is None else f"w{i}_{d}"

    starts = " | ".join(name(i, depth(i)) for i in range(n))
    rules = [f'span ::= "\\"" ( {starts} ) "\\""']
    for i, word in enumerate(words):
        for d in ([depth(i)] if max_words is None else range(1, depth(i) + 1)):
            more = f' ( " " {name(i + 1, d - 1)} )?' if d > 1 else ""
            rules.append(f"{name(i, d)} ::= {json.dumps(word, ensure_ascii=False)}{more}")
    return rules


def span_grammar(types: Sequence[str], text: str, config: InferenceConfig) -> str | None:
    """EBNF for ``{"type": [span, ...], ...}`` (every type, in order, no whitespace) whose
    mentions are word spans of ``text``; None when the config does not constrain extraction.

    A grammar rather than a JSON schema: JSON schemas let a weak model pad with whitespace until
    max_tokens, which xgrammar's whitespace switches did not stop in vLLM 0.28 (seen on CPU).
    """
    extraction = config.extraction
    if not extraction.constrain_to_spans:
        return None
    items = "span"
    for _ in range(extraction.max_mentions_per_type - 1):
        items = f'span ( "," {items} )?'
    members = ' "," '.join(f'{_literal(t)} ":" list' for t in types)
    return "\n".join([
        f'root ::= "{{" {members} "}}"',
        f'list ::= "[" ( {items} )? "]"',
        *_span_rules(text, extraction.max_span_words),
    ])


def extractor_requests(name: str, sentences: Sequence[Sentence], types: Sequence[str],
                       config: InferenceConfig, tokenizer) -> list[Request]:
    """One extractor's requests: one per sentence, or per schema chunk (iepile)."""
    extractor = config.extractors[name]
    contents = PROMPT_FORMATS[extractor.prompt]
    stop = get_template(extractor.template).stop
    return [  # adapter = the extractor's name; one without a LoRA is the base model itself
        Request(f"{s.id}#{k}", prompt_token_ids(tokenizer, extractor.template, content),
                name, config.sampling.max_tokens_extract, stop,
                grammar=span_grammar(chunk, s.text, config), sentence=s.id)
        for s in sentences for k, (chunk, content) in enumerate(contents(types, s.text, config))
    ]


def parse_extraction(types: Sequence[str]):
    """A parse function for the store: ``{type: [mentions]}`` → flat, de-duplicated mentions."""

    def parse(request: Request, completion: Completion) -> tuple[dict, str]:
        by_type, status, unknown = parse_type_mentions(completion.text, types)
        mentions = list(dict.fromkeys(m for ms in by_type.values() for m in ms))
        off_schema = sum(len(by_type.get(key, ())) for key in unknown)
        return {"mentions": mentions, "by_type": by_type, "unknown_types": unknown,
                "off_schema_mentions": off_schema}, str(status)

    return parse


def collect(records: Mapping[str, Mapping[str, Any]], sentences: Sequence[Sentence]
            ) -> dict[str, list[str]]:
    """One extractor's mentions per sentence, its chunks' answers merged in order."""
    found: dict[str, list[str]] = {s.id: [] for s in sentences}
    for record in records.values():
        found[record["id"]] += record["parsed"]["mentions"]
    return {sid: list(dict.fromkeys(mentions)) for sid, mentions in found.items()}


@dataclass
class Discovery:
    id: str
    found: dict[str, list[str]] = field(default_factory=dict)  # extractor -> its mentions
    consensus_dropped: list[str] = field(default_factory=list)
    not_in_sentence: list[str] = field(default_factory=list)
    mentions: list[str] = field(default_factory=list)


def discover(sentence: Sentence, found: Mapping[str, list[str]], settings: Any) -> Discovery:
    """The consensus rule's mentions (eval.consensus) that occur in the sentence."""
    result = Discovery(sentence.id, {name: list(m) for name, m in found.items()})
    kept, result.consensus_dropped = consensus.apply(result.found, settings)
    for mention in kept:
        if find_mention(sentence.text, mention) >= 0:
            result.mentions.append(mention)
        else:
            result.not_in_sentence.append(mention)
    return result


def discovery_counts(results: Sequence[Discovery]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for r in results:
        for name, mentions in r.found.items():
            counts[f"mentions_{name}"] += len(mentions)
        counts["consensus_dropped"] += len(r.consensus_dropped)
        counts["not_in_sentence"] += len(r.not_in_sentence)
        counts["discovered"] += len(r.mentions)
    return counts
