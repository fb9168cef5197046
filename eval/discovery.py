"""Stage 1, entity discovery: anchor and explorer extractors, then CCR denoising.

* anchor (precision): the public IEPile LoRA, asked in IEPile's own NER format - a JSON string
  ``{"instruction", "schema", "input"}`` - with the schema split as IEPile splits it
  (:func:`type_chunks`); the chunks' answers are merged.
* explorer (recall): our Pile-NER LoRA, asked with the prompt it was trained on
  (:func:`eval.prompts.explorer_prompt`).
* CCR: the explorer over-generates generic one-word nouns; under the authors' rule a one-token
  explorer mention is kept only if the anchor found the same string (any type).

Stage 1 is type-agnostic: a mention the model files under a key outside the schema is still a
mention (kept, and counted as ``off_schema_mentions``). The result per sentence is a de-duplicated
list of mention strings; mentions that do not occur in the sentence (as a whole word) are dropped
and counted.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from data_prep.mappings import Domain
from data_prep.records import Sentence
from eval.config import InferenceConfig
from eval.engine import Completion, Request
from eval.parsing import parse_type_mentions
from eval.prompts import explorer_prompt
from eval.tagging import find_mention
from eval.templates import get_template, prompt_token_ids, user_content


def extractor_types(domain: Domain, config: InferenceConfig) -> list[str]:
    """The type names both extractors are asked for: every label but misc (SPEC), as each
    label's ``extract_as`` or ``name`` or, with ``extraction.type_names=raw_tag``, its raw tag."""
    raw = config.extraction.type_names == "raw_tag"
    return [tag if raw else (label.extract_as or label.name)
            for tag, label in domain.labels.items() if tag != "misc"]


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


def anchor_requests(sentences: Sequence[Sentence], types: Sequence[str], config: InferenceConfig,
                    tokenizer) -> list[Request]:
    template = config.anchor_adapter.template
    chunks = type_chunks(types, config.anchor.split_num)
    return [
        Request(f"{s.id}#{k}", prompt_token_ids(
            tokenizer, template, anchor_content(config.anchor.instruction, chunk, s.text)),
            "anchor", config.sampling.max_tokens_extract, get_template(template).stop,
            grammar=span_grammar(chunk, s.text, config))
        for s in sentences for k, chunk in enumerate(chunks)
    ]


def explorer_requests(sentences: Sequence[Sentence], types: Sequence[str],
                      config: InferenceConfig, tokenizer) -> list[Request]:
    template = config.explorer_adapter.template

    def ids(text: str) -> list[int]:
        return prompt_token_ids(tokenizer, template, user_content(*explorer_prompt(types, text)))

    stop = get_template(template).stop
    return [Request(s.id, ids(s.text), "explorer", config.sampling.max_tokens_extract, stop,
                    grammar=span_grammar(types, s.text, config))
            for s in sentences]


def parse_extraction(types: Sequence[str]):
    """A parse function for the store: ``{type: [mentions]}`` → flat, de-duplicated mentions."""

    def parse(request: Request, completion: Completion) -> tuple[dict, str]:
        by_type, status, unknown = parse_type_mentions(completion.text, types)
        mentions = list(dict.fromkeys(m for ms in by_type.values() for m in ms))
        off_schema = sum(len(by_type.get(key, ())) for key in unknown)
        return {"mentions": mentions, "by_type": by_type, "unknown_types": unknown,
                "off_schema_mentions": off_schema}, str(status)

    return parse


def corroborated(mention: str, anchor: set[str], rule: str) -> bool:
    """Whether CCR keeps an explorer mention (see :data:`eval.config.CCR_RULES`)."""
    if rule == "none":
        return True
    if rule == "all":
        return mention in anchor
    return len(mention.split()) > 1 or mention in anchor  # authors' rule


@dataclass
class Discovery:
    id: str
    anchor: list[str] = field(default_factory=list)
    explorer: list[str] = field(default_factory=list)
    ccr_dropped: list[str] = field(default_factory=list)
    not_in_sentence: list[str] = field(default_factory=list)
    mentions: list[str] = field(default_factory=list)


def discover(sentence: Sentence, anchor: list[str] | None, explorer: list[str] | None,
             rule: str) -> Discovery:
    """Union of anchor mentions and CCR-kept explorer mentions that occur in the sentence.

    Without an anchor (the "w/o anchor" ablation) nothing can corroborate, so CCR is skipped.
    """
    result = Discovery(sentence.id, list(anchor or []), list(explorer or []))
    anchor_set = set(result.anchor)
    kept = []
    for mention in result.explorer:
        if anchor is None or corroborated(mention, anchor_set, rule):
            kept.append(mention)
        else:
            result.ccr_dropped.append(mention)
    for mention in dict.fromkeys(result.anchor + kept):
        if find_mention(sentence.text, mention) >= 0:
            result.mentions.append(mention)
        else:
            result.not_in_sentence.append(mention)
    return result


def discovery_counts(results: Sequence[Discovery]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for r in results:
        counts["anchor_mentions"] += len(r.anchor)
        counts["explorer_mentions"] += len(r.explorer)
        counts["ccr_dropped"] += len(r.ccr_dropped)
        counts["not_in_sentence"] += len(r.not_in_sentence)
        counts["discovered"] += len(r.mentions)
    return counts
