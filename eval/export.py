"""Predictions in the formats other tools load: a spaCy DocBin, or CoNLL-style BIO.

    python -m eval.export --predictions OUT/predictions.jsonl --format docbin|conll --out FILE
                          [--lang xx] [--no-comments]

Reads ``make predict``'s records (``text``, ``entities`` with character offsets, ``tokens`` for
pre-tokenised input). A record's id is its ``id``, else its ``line``, else its 1-based position.
``tokens`` are the token strings, as the input gave them (found in ``text`` in order, only
whitespace between: :func:`core.text.align_tokens`), or their ``[start, end]`` spans in ``text``.

docbin  a ``spacy.tokens.DocBin`` (``store_user_data=True``) of one ``Doc`` per record, built on
        ``spacy.blank(LANG)`` (no model download), the record id in ``doc.user_data["id"]``.
        Load it with ``DocBin().from_disk(FILE).get_docs(spacy.blank("xx").vocab)``.
        Pre-tokenised records keep their tokens (whitespace between them kept as spaCy does:
        a trailing space, or a whitespace token), so every entity aligns exactly. Plain text is
        split by the blank tokenizer; an entity that is not a run of its tokens ("York" inside
        "Yorkshire") is widened to the tokens it touches (``alignment_mode="expand"``) and
        counted as expanded; one that still cannot be placed (it would overlap an entity already
        placed; exact spans are placed first) is counted as not placed. Nothing is dropped
        silently: the counts are returned and the command line prints them.
conll   one ``token<TAB>tag`` line per token, tags ``O``/``B-<type>``/``I-<type>``, a blank line
        after each document, and ``# id = <id>`` before it (the comment line CoNLL-U-aware tools
        accept; ``--no-comments`` omits it for readers that take every line as a token)::

            # id = doc-1
            Ada	B-person
            Lovelace	I-person
            met	O

        Types are kept as given, except that whitespace in a type becomes ``_`` (readers split
        the line on whitespace). Needs pre-tokenised records; a record with no tokens at all
        (an empty line) is left out and counted. An entity off the token boundaries is an error.

Both files are written atomically (complete or absent).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.cli import make_parser, run
from core.io import DataError, ProjectError, atomic_writer, iter_jsonl
from core.text import TokenError, align_tokens

FORMATS = ("docbin", "conll")
MAX_NOTES = 20  # notes printed by the command line; the counts cover every one


@dataclass
class ExportCounts:
    """What was written; ``expanded`` entities are in ``entities`` too, ``not_placed`` are not."""

    documents: int = 0
    entities: int = 0
    expanded: int = 0
    not_placed: int = 0
    empty_skipped: int = 0
    problems: list[str] = field(default_factory=list)  # one line per expanded/unplaced entity

    def summary(self) -> str:
        text = f"{self.documents} documents, {self.entities} entities"
        if self.expanded or self.not_placed:
            text += f" ({self.expanded} expanded to token boundaries, {self.not_placed} not placed)"
        if self.empty_skipped:
            text += f", {self.empty_skipped} documents without tokens left out"
        return text


def _checked(records: Iterable[Mapping[str, Any]]
             ) -> Iterator[tuple[Any, str, list[dict], Mapping[str, Any]]]:
    """``(id, text, entities sorted by start, record)`` per record. A broken entity is an error:
    a bad file fails here, not as a misplaced label in someone's training data."""
    for position, record in enumerate(records, start=1):
        rid = record.get("id", record.get("line", position))
        text = record.get("text")
        if not isinstance(text, str):
            raise ProjectError(f"record {rid}: no `text` string")
        entities = record.get("entities") or []
        for e in entities:
            start, end, label = e.get("start"), e.get("end"), e.get("type")
            if not (isinstance(start, int) and isinstance(end, int)
                    and 0 <= start < end <= len(text)):
                raise ProjectError(f"record {rid}: entity offsets {start}..{end} outside the text")
            if not isinstance(label, str) or not label.strip():
                raise ProjectError(f"record {rid}: entity at {start}..{end} has no `type`")
            if "text" in e and text[start:end] != e["text"]:
                raise ProjectError(f"record {rid}: entity {e['text']!r} at {start}..{end} reads "
                                   f"{text[start:end]!r}")
        yield rid, text, sorted(entities, key=lambda e: (e["start"], e["end"])), record


def record_token_spans(rid: Any, text: str, tokens: list) -> list:
    """A record's ``tokens`` as spans: strings are found in ``text`` (a mismatch is an error
    naming the record and token), spans are kept as given."""
    if not any(isinstance(token, str) for token in tokens):
        return tokens
    try:
        return align_tokens(text, tokens)
    except TokenError as exc:
        raise ProjectError(f"record {rid}: {exc}") from None


def _words_and_spaces(rid: Any, text: str, tokens: list) -> tuple[list[str], list[bool]]:
    """spaCy's ``words``/``spaces`` for the caller's tokens, rebuilding ``text`` exactly: one space
    after a token is its trailing space, any other whitespace becomes a whitespace token."""
    words: list[str] = []
    spaces: list[bool] = []
    cursor = 0
    for start, end in [*tokens, (len(text), len(text))]:
        gap = text[cursor:start]
        if start < cursor or gap.strip():
            raise ProjectError(f"record {rid}: tokens do not cover the text in order at {start}")
        if gap.startswith(" ") and words and not spaces[-1]:
            spaces[-1], gap = True, gap[1:]
        if gap:
            words.append(gap)
            spaces.append(False)
        if end > start:
            words.append(text[start:end])
            spaces.append(False)
        cursor = end
    return words, spaces


def to_docbin(records: Iterable[Mapping[str, Any]], path: str | Path,
              lang: str = "xx") -> ExportCounts:
    """Write the records as a spaCy DocBin at ``path``; see the module doc for alignment."""
    try:
        import spacy
        from spacy.tokens import Doc, DocBin
    except ImportError:
        raise ProjectError("DocBin export needs spaCy: pip install -r requirements-dev.txt") \
            from None
    try:
        nlp = spacy.blank(lang)
    except ImportError as exc:
        raise ProjectError(f"spaCy has no language {lang!r}: {exc}") from None
    counts = ExportCounts()
    docbin = DocBin(store_user_data=True)
    for rid, text, entities, record in _checked(records):
        if record.get("tokens") is not None:
            tokens = record_token_spans(rid, text, record["tokens"])
            words, spaces = _words_and_spaces(rid, text, tokens)
            doc = Doc(nlp.vocab, words=words, spaces=spaces)
        else:
            doc = nlp.make_doc(text)
        doc.user_data["id"] = rid
        placed: list = []
        taken: set[int] = set()
        # exact spans first, so a widened one never displaces an entity that fits its tokens
        for mode in ("strict", "expand"):
            for e in entities:
                exact = doc.char_span(e["start"], e["end"], alignment_mode="strict")
                if (mode == "strict") != (exact is not None):
                    continue
                span = doc.char_span(e["start"], e["end"], label=e["type"], alignment_mode=mode)
                where = f"record {rid}: {e['type']} {text[e['start']:e['end']]!r} at {e['start']}"
                if span is None or taken.intersection(range(span.start, span.end)):
                    counts.not_placed += 1
                    counts.problems.append(f"{where}: not placed (its tokens are taken)")
                    continue
                taken.update(range(span.start, span.end))
                placed.append(span)
                if mode == "expand":
                    counts.expanded += 1
                    counts.problems.append(f"{where}: widened to {span.text!r}")
        doc.ents = sorted(placed, key=lambda span: span.start)
        counts.entities += len(placed)
        counts.documents += 1
        docbin.add(doc)
    with atomic_writer(path, "wb") as handle:
        handle.write(docbin.to_bytes())
    return counts


def conll_tag_type(label: str) -> str:
    """A type as a CoNLL tag suffix: whitespace runs become ``_`` (readers split on it)."""
    return re.sub(r"\s+", "_", label.strip())


def conll_lines(rid: Any, text: str, entities: list[dict], tokens: list) -> list[str]:
    """The ``token<TAB>tag`` lines of one document."""
    starts = {start: i for i, (start, _) in enumerate(tokens)}
    ends = {end: i for i, (_, end) in enumerate(tokens)}
    tags = ["O"] * len(tokens)
    for e in entities:
        first, last = starts.get(e["start"]), ends.get(e["end"])
        if first is None or last is None:
            raise ProjectError(f"record {rid}: entity {text[e['start']:e['end']]!r} at "
                               f"{e['start']}..{e['end']} is not on token boundaries")
        label = conll_tag_type(e["type"])
        tags[first:last + 1] = [f"B-{label}"] + [f"I-{label}"] * (last - first)
    words = [text[start:end] for start, end in tokens]
    for word in words:
        if not word or any(ch.isspace() for ch in word):
            raise ProjectError(f"record {rid}: token {word!r} is empty or holds whitespace")
    return [f"{word}\t{tag}" for word, tag in zip(words, tags, strict=True)]


def to_conll(records: Iterable[Mapping[str, Any]], path: str | Path,
             comments: bool = True) -> ExportCounts:
    """Write pre-tokenised records as CoNLL BIO at ``path``; see the module doc for the layout."""
    counts = ExportCounts()
    with atomic_writer(path) as handle:
        for rid, text, entities, record in _checked(records):
            tokens = record.get("tokens")
            if tokens is None:
                raise ProjectError("CoNLL BIO output needs pre-tokenised input (`tokens`); "
                                   f"record {rid} has none")
            if not tokens:
                counts.empty_skipped += 1
                continue
            lines = conll_lines(rid, text, entities, record_token_spans(rid, text, tokens))
            if comments:
                if len(f"{rid}x".splitlines()) > 1:
                    raise ProjectError(f"record {rid!r}: an id with a line break cannot be a "
                                       "`# id =` comment line (use comments=False)")
                handle.write(f"# id = {rid}\n")
            handle.write("\n".join(lines) + "\n\n")
            counts.documents += 1
            counts.entities += len(entities)
    return counts


def read_predictions(path: str | Path) -> Iterator[dict[str, Any]]:
    """Records of a predictions file; a line that is not a JSON object fails naming file:line."""
    for number, value in iter_jsonl(path):
        if not isinstance(value, dict):
            raise DataError(path, number, "expected a JSON object (a prediction record)")
        yield value


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--predictions", required=True, type=Path, help="predictions.jsonl")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", required=True, type=Path, help="file to write")
    parser.add_argument("--lang", default="xx", help="docbin: blank spaCy language (default xx)")
    parser.add_argument("--no-comments", action="store_true", help="conll: no `# id =` lines")
    args = parser.parse_args(argv)

    def body() -> None:
        records = read_predictions(args.predictions)
        if args.format == "docbin":
            counts = to_docbin(records, args.out, lang=args.lang)
        else:
            counts = to_conll(records, args.out, comments=not args.no_comments)
        for line in counts.problems[:MAX_NOTES]:
            print(f"note: {line}")
        if len(counts.problems) > MAX_NOTES:
            print(f"note: ... and {len(counts.problems) - MAX_NOTES} more")
        print(f"wrote {args.out} ({args.format}): {counts.summary()}")

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
