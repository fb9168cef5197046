"""BIO files (one ``token<TAB>tag`` per line, a blank line between sentences) → sentences.

The one reader of the benchmarks' BIO layout: the converters (:mod:`data_prep.crossner`,
:mod:`data_prep.mit`) write its sentences out, the leak check (:mod:`core.leakage`) reads test
gold mentions with it. Malformed input fails with ``file:line``.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from core.io import DataError, iter_lines
from core.records import Sentence, Span


@dataclass
class ConversionStats:
    sentences: int = 0
    entities: int = 0
    repaired_orphan_i: int = 0
    per_type: Counter[str] = field(default_factory=Counter)


def parse_bio(
    path: str | os.PathLike[str], domain: str, split: str, repair: bool = False,
    tag_first: bool = False,
) -> tuple[list[Sentence], ConversionStats]:
    """Parse one BIO file; ids are ``<domain>-<split>-<index>`` (stable, 0-based).

    Lines are ``token<TAB>tag`` (CrossNER) or, with ``tag_first``, ``tag<TAB>token`` (the
    original MIT Movie/Restaurant layout, :mod:`data_prep.mit`); every other rule is shared."""
    stats = ConversionStats()
    sentences: list[Sentence] = []
    tokens: list[str] = []
    spans: list[Span] = []
    open_start: int | None = None
    open_type: str | None = None
    layout = "tag<TAB>token" if tag_first else "token<TAB>tag"

    def close_entity() -> None:
        nonlocal open_start, open_type
        if open_start is not None and open_type is not None:
            spans.append(Span(open_start, len(tokens), open_type, " ".join(tokens[open_start:])))
        open_start, open_type = None, None

    def close_sentence() -> None:
        nonlocal tokens, spans
        close_entity()
        if tokens:
            sentence_id = f"{domain}-{split}-{len(sentences)}"
            sentences.append(Sentence(sentence_id, domain, tokens, spans))
            stats.entities += len(spans)
            stats.per_type.update(s.type for s in spans)
        tokens, spans = [], []

    for number, raw in iter_lines(path):
        line = raw.rstrip("\r\n")
        if not line.strip():
            close_sentence()
            continue
        if "\t" not in line:
            raise DataError(path, number, f"expected {layout!r}, got {line!r}")
        token, tag = line.split("\t", 1)
        if tag_first:
            tag, token = token, tag
        tag = tag.strip()
        if not token:
            raise DataError(path, number, "empty token")
        if any(ch.isspace() for ch in token):
            raise DataError(path, number, f"token {token!r} contains whitespace (tokens are "
                                          f"joined with spaces: its spans could never match)")
        if tag == "O":
            close_entity()
        elif tag[:2] in ("B-", "I-") and len(tag) > 2:
            kind, etype = tag[0], tag[2:]
            if kind == "I" and open_type != etype:
                if not repair:
                    after = f"'{open_type}' entity" if open_type else "no entity"
                    hint = "(use --repair to start one)"
                    raise DataError(path, number, f"tag {tag!r} continues {after} {hint}")
                stats.repaired_orphan_i += 1
                kind = "B"
            if kind == "B":
                close_entity()
                open_start, open_type = len(tokens), etype
        else:
            raise DataError(path, number, f"tag {tag!r} is not O, B-<type> or I-<type>")
        tokens.append(token)
    close_sentence()
    if not sentences:
        raise DataError(path, None, "no sentences: the file is empty or blank")
    stats.sentences = len(sentences)
    return sentences, stats
