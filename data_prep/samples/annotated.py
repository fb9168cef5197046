"""Bracket-annotated sentences → sentence JSONL (the layout of :mod:`core.records`).

The authoring format is one sentence per line, tokens separated by spaces, each mention written
as ``[tokens of the mention|type]``::

    [Acme|company] ' s new phone , the [Zeta 5|product] , ships in [Oslo|location] .

A mention must stand alone between spaces (``[Acme|company]'s`` is refused: write
``[Acme|company] ' s``), may not nest, and ``[``, ``]`` and ``|`` may not appear outside
mentions. Blank lines and lines starting with ``#`` are skipped. Sentence ids are
``<domain>-<i>``, counting the sentences from 0 in file order, so the token offsets in the JSONL
are always derived, never typed by hand.

    python -m data_prep.samples.annotated --domain gadgets \\
        --src mappings/domains/gadgets/sentences.annotated.txt \\
        --out mappings/domains/gadgets/sentences.jsonl
    python -m data_prep.samples.annotated --domain gadgets --check ...  # exit 1 if out differs
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from core.cli import make_parser, run
from core.io import DataError, dumps_line, write_text_atomic
from core.records import Sentence, Span

MENTION = re.compile(r"\[([^\[\]|]*)\|([^\[\]|]*)\]")
RESERVED = re.compile(r"[\[\]|]")


def parse_line(line: str, sentence_id: str, domain: str) -> Sentence:
    """One annotated line → :class:`Sentence`; raises ``ValueError`` saying what is wrong."""
    tokens: list[str] = []
    entities: list[Span] = []
    pos = 0
    for match in MENTION.finditer(line):
        before = line[pos:match.start()]
        if RESERVED.search(before):
            raise ValueError(f"stray '[', ']' or '|' before column {match.start() + 1}")
        if match.start() > 0 and not line[match.start() - 1].isspace():
            raise ValueError(f"mention at column {match.start() + 1} is glued to the text before")
        if match.end() < len(line) and not line[match.end()].isspace():
            raise ValueError(f"mention at column {match.start() + 1} is glued to the text after")
        mention, label = match.group(1).split(), match.group(2).strip()
        if not mention or not label or " " in label:
            raise ValueError(f"mention at column {match.start() + 1} needs tokens and one label")
        tokens += before.split()
        start = len(tokens)
        tokens += mention
        entities.append(Span(start, len(tokens), label, " ".join(mention)))
        pos = match.end()
    rest = line[pos:]
    if RESERVED.search(rest):
        raise ValueError(f"stray '[', ']' or '|' after column {pos}")
    tokens += rest.split()
    if not tokens:
        raise ValueError("no tokens")
    return Sentence(sentence_id, domain, tokens, entities)


def parse_annotated(lines: Iterable[str], domain: str,
                    path: str | os.PathLike[str] = "<annotated>") -> list[Sentence]:
    """All sentences of an annotated text; a bad line raises :class:`DataError` (file:line)."""
    sentences = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            sentences.append(parse_line(line.strip(), f"{domain}-{len(sentences)}", domain))
        except ValueError as exc:
            raise DataError(path, number, str(exc)) from None
    return sentences


def read_annotated(path: str | os.PathLike[str], domain: str) -> list[Sentence]:
    with open(path, encoding="utf-8") as handle:
        return parse_annotated(handle, domain, path)


def render_jsonl(sentences: Iterable[Sentence]) -> str:
    """The exact text of the sentences JSONL (the project's JSON Lines writer, line by line)."""
    return "".join(dumps_line(sentence.to_json()) for sentence in sentences)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--src", required=True, help="bracket-annotated text file")
    parser.add_argument("--out", required=True, help="sentences JSONL to write (or --check)")
    parser.add_argument("--domain", required=True, help="domain name: ids and 'domain' field")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when --out differs from the generated text")
    args = parser.parse_args(argv)

    def body() -> int:
        sentences = read_annotated(args.src, args.domain)
        text = render_jsonl(sentences)
        if args.check:
            out = Path(args.out)
            current = out.read_text(encoding="utf-8") if out.exists() else None
            if current != text:
                print(f"{args.out} is not what {args.src} generates; regenerate it",
                      file=sys.stderr)
                return 1
            print(f"{args.out}: up to date ({len(sentences)} sentences)")
            return 0
        write_text_atomic(args.out, text)
        mentions = sum(len(s.entities) for s in sentences)
        print(f"{args.src} -> {args.out}: {len(sentences)} sentences, {mentions} entities")
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
