"""The one data model for "a sentence with entity spans", shared by converters, pipeline and scorer.

On disk a sentence is one JSON line::

    {"id": "music-test-0", "domain": "music", "tokens": [...], "text": "tok tok ...",
     "entities": [{"start": 3, "end": 5, "type": "song", "text": "tok tok"}]}

``start``/``end`` are token offsets (``end`` exclusive) and ``text`` is the space-joined tokens,
so a span's ``text`` is always ``" ".join(tokens[start:end])``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from core.io import DataError, iter_jsonl, write_jsonl


@dataclass(frozen=True, order=True)
class Span:
    start: int
    end: int
    type: str
    text: str = field(compare=False, default="")

    def key(self) -> tuple[int, int, str]:
        return (self.start, self.end, self.type)


@dataclass
class Sentence:
    id: str
    domain: str
    tokens: list[str]
    entities: list[Span] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(self.tokens)

    def span_text(self, start: int, end: int) -> str:
        return " ".join(self.tokens[start:end])

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "domain": self.domain,
            "tokens": self.tokens,
            "text": self.text,
            "entities": [
                {"start": s.start, "end": s.end, "type": s.type, "text": s.text}
                for s in self.entities
            ],
        }

    @classmethod
    def from_json(cls, record: Any) -> Sentence:
        """Build and validate a sentence; raises ``ValueError`` with what is wrong."""
        if not isinstance(record, dict):
            raise ValueError(f"expected a JSON object, got {type(record).__name__}")
        for key in ("id", "tokens"):
            if key not in record:
                raise ValueError(f"missing key {key!r}")
        tokens = record["tokens"]
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError("'tokens' must be a list of strings")
        if not tokens:
            raise ValueError("'tokens' is empty")
        for i, token in enumerate(tokens):
            # ``text`` joins tokens with spaces: such a token's spans could never match again.
            if not token or any(ch.isspace() for ch in token):
                raise ValueError(f"token #{i} {token!r} is empty or contains whitespace")
        sentence = cls(id=str(record["id"]), domain=str(record.get("domain", "")), tokens=tokens)
        for i, ent in enumerate(record.get("entities") or []):
            try:
                start, end, etype = int(ent["start"]), int(ent["end"]), str(ent["type"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"entity #{i} needs integer 'start', 'end' and a 'type'") from None
            if not 0 <= start < end <= len(tokens):
                raise ValueError(f"entity #{i} [{start}, {end}) is outside {len(tokens)} tokens")
            text = sentence.span_text(start, end)
            if "text" in ent and ent["text"] != text:
                raise ValueError(f"entity #{i} text {ent['text']!r} != tokens {text!r}")
            sentence.entities.append(Span(start, end, etype, text))
        return sentence


def load_sentences(path: str | os.PathLike[str]) -> list[Sentence]:
    """Read a sentences JSONL file; any bad record fails with ``file:line``."""
    return list(iter_sentences(path))


def iter_sentences(path: str | os.PathLike[str]) -> Iterator[Sentence]:
    """The sentences of a JSONL file; a file without any fails naming it (an empty gold file
    would otherwise score, or run, as a silent 0-sentence domain)."""
    seen: set[str] = set()
    for line, record in iter_jsonl(path):
        try:
            sentence = Sentence.from_json(record)
        except ValueError as exc:
            raise DataError(path, line, str(exc)) from None
        if sentence.id in seen:
            raise DataError(path, line, f"duplicate id {sentence.id!r}")
        seen.add(sentence.id)
        yield sentence
    if not seen:
        raise DataError(path, None, "no sentences: the file is empty or blank")


def save_sentences(path: str | os.PathLike[str], sentences: Iterable[Sentence]) -> int:
    return write_jsonl(path, (s.to_json() for s in sentences))
