"""Pile-NER → explorer SFT data: one alpaca record per passage, all its types in one JSON answer.

Input layouts (``--format``):

``sharegpt`` (default)
    Universal-NER/Pile-NER-type, a JSON array (or JSON Lines) of ``{"conversations": [...]}``:
    ``human "Text: <passage>"``, ``gpt`` (the acknowledgement), then pairs
    ``human "What describes <type> in the text?"`` / ``gpt "[\\"m1\\", ...]"``. UniNER's
    evaluation files use the same layout with one type per row; ``--group-by-text`` merges rows
    that carry the same passage text into one passage.
``slimer``
    SLIMER's per-type JSON Lines (keys ``doc_question_pairID`` = ``"<row>:<question>"``,
    ``tagName``, ``input``, ``output``), regrouped by Pile-NER row.

Each passage becomes ``{"instruction", "input", "output"}`` built by :mod:`core.prompts`: the
schema lists the passage's types in an order shuffled per passage (``random.Random(f"{seed}:
{index}")``, so a record does not change when others are added after it) and the answer maps
every type, negative ones included, to its mentions. An answer that is not a JSON list of strings
becomes ``[]`` and is counted; a type asked twice is merged; repeated mentions of a type are kept
once (the explorer's output is a set of strings).

``--prompt-format authors`` writes the layout of the authors' explorer data (DMIRLAB-Group/SAM-NER)
instead (:func:`core.prompts.authors_explorer_prompt`): one instruction string, empty input; the
schema lists every asked type (a type asked twice appears twice) in the same seeded per-passage
order; the answer's keys follow the order the types were first asked, each mapped to its answer
as parsed (repeated mentions kept; a later answer to the same type replaces the earlier one; an
answer that is not JSON becomes ``[]``); the passage is the text with a leading ``Q:`` line (the
Pile's Q&A passages) removed and surrounding whitespace stripped, as their converter does.

A malformed conversation (no ``Text: `` turn, wrong roles, an unpaired question, an unknown
question form) stops the run with file and record index, or is skipped and counted with
``--skip-bad``; so does a byte that is not UTF-8 (in both prompt formats; the authors' converter
did not check). A passage without a question is skipped in both. A file without records, or whose
records yield no passage, fails naming the file: an empty training set is never written, let
alone registered.

    python -m data_prep.pile_ner --src pile-ner.json --out data/train/explorer.json
    python -m data_prep.pile_ner --format slimer --src slimer_validation.jsonl --out x.jsonl
    python -m data_prep.pile_ner --group-by-text --src CrossNER_AI.json --out ai.jsonl
    python -m data_prep.pile_ner --prompt-format authors --src pile-ner.json \
        --out data/train/explorer_authors.json
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import Any

from tqdm import tqdm

from core.cli import make_parser, run
from core.io import DataError, is_json_array, iter_lines, read_json_or_jsonl
from core.prompts import (
    authors_explorer_prompt,
    authors_explorer_target,
    explorer_prompt,
    explorer_target,
)
from core.register import write_alpaca

DEFAULT_SEED = 42
TEXT_PREFIX = "Text: "
QUESTION = re.compile(r"What describes (.+) in the text\?", re.DOTALL)
FORMATS = ("sharegpt", "slimer")
PROMPT_FORMATS = ("explorer", "authors")  # ours (core.prompts.explorer_prompt) | the authors'
# the authors' passage: "Text:" and a "Q:" line opening it removed (their StackExchange passages)
AUTHORS_QA_PREFIX = re.compile(r"Q:\s*\n", re.IGNORECASE)
AUTHORS_TEXT_PREFIX = re.compile(r"Text:\s*", re.IGNORECASE)


@dataclass
class RawPassage:
    """A passage and its questions as read: ``qa`` = [(type, answer string as written)]."""

    text: str
    qa: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class PileNerStats:
    records_read: int = 0  # input rows (sharegpt) or lines (slimer)
    bad_records: int = 0  # malformed, skipped with --skip-bad
    merged_records: int = 0  # rows folded into an earlier passage by --group-by-text
    passages_written: int = 0
    passages_without_type: int = 0  # no question at all: nothing to learn, skipped
    questions: int = 0
    duplicate_types: int = 0  # a type asked twice for one passage (merged; authors: 2nd answer)
    unparseable_answers: int = 0  # not a JSON list of strings (authors: not JSON): became []
    mentions_read: int = 0  # strings in the answers that are JSON lists of strings
    duplicate_mentions: int = 0  # repeats within one type's answer, written once (authors: kept)
    empty_mentions: int = 0  # blank strings, dropped (authors: kept)
    replaced_mentions: int = 0  # authors: an earlier answer's, replaced by the type's later one
    odd_answers_kept: int = 0  # authors: JSON but not a list of strings, written as parsed
    passages_trimmed: int = 0  # authors: passage text changed by the prefix/whitespace trim

    @property
    def mentions_written(self) -> int:
        return (self.mentions_read - self.duplicate_mentions - self.empty_mentions
                - self.replaced_mentions)

    def summary(self) -> str:
        rows = {**asdict(self), "mentions_written": self.mentions_written}
        return "\n".join(f"  {key:<22} {value:>9,}" for key, value in rows.items())


def parse_conversation(row: Any) -> RawPassage:
    """One Pile-NER ShareGPT row → passage; raises ``ValueError`` saying what is malformed."""
    turns = row.get("conversations") if isinstance(row, dict) else None
    if not isinstance(turns, list) or len(turns) < 2:
        raise ValueError("expected 'conversations' with at least the text and its reply")
    for i, turn in enumerate(turns):
        if not (isinstance(turn, dict) and isinstance(turn.get("value"), str)
                and turn.get("from") == ("human" if i % 2 == 0 else "gpt")):
            role = "human" if i % 2 == 0 else "gpt"
            raise ValueError(f"turn {i} must be a {role!r} turn with a string 'value'")
    if len(turns) % 2:
        raise ValueError(f"turn {len(turns) - 1} (a question) has no answer")
    first = turns[0]["value"]
    if not first.startswith(TEXT_PREFIX):
        raise ValueError(f"turn 0 must start with {TEXT_PREFIX!r}, got {first[:40]!r}")
    passage = RawPassage(first[len(TEXT_PREFIX):])
    for i in range(2, len(turns), 2):
        match = QUESTION.fullmatch(turns[i]["value"].strip())
        type_name = match.group(1).strip() if match else ""
        if not type_name:
            raise ValueError(f"turn {i} is not 'What describes <type> in the text?'")
        passage.qa.append((type_name, turns[i + 1]["value"]))
    return passage


def iter_records(path: str | os.PathLike[str], stats: PileNerStats,
                 skip_bad: bool = False) -> Iterator[tuple[int | None, Any]]:
    """``(line, record)`` from a JSON array or JSON Lines file; ``--skip-bad`` also skips lines
    that are not JSON (a broken JSON array cannot be read past its error and always fails)."""
    if is_json_array(path):
        yield from read_json_or_jsonl(path)
        return
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if not skip_bad:
                message = f"invalid JSON ({exc.msg} at column {exc.colno})"
                raise DataError(path, number, message) from None
            stats.records_read += 1
            stats.bad_records += 1
            continue
        yield number, record


def read_sharegpt(path: str | os.PathLike[str], stats: PileNerStats,
                  skip_bad: bool = False) -> Iterator[RawPassage]:
    for index, (line, row) in enumerate(iter_records(path, stats, skip_bad)):
        stats.records_read += 1
        try:
            yield parse_conversation(row)
        except ValueError as exc:
            if not skip_bad:
                raise DataError(path, line, f"record {index}: {exc}") from None
            stats.bad_records += 1


def _slimer_fields(record: Any) -> tuple[str, int, str, str, str]:
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    values = [record.get(k) for k in ("doc_question_pairID", "tagName", "input", "output")]
    if not all(isinstance(v, str) for v in values):
        raise ValueError("needs string keys doc_question_pairID, tagName, input, output")
    pair_id, tag, text, answer = values
    row, sep, question = pair_id.partition(":")
    if not sep or not row or not question.isdigit():
        raise ValueError(f"doc_question_pairID {pair_id!r} is not '<row>:<question>'")
    if not tag.strip():
        raise ValueError("empty tagName")
    return row, int(question), tag.strip(), text, answer


def read_slimer(path: str | os.PathLike[str], stats: PileNerStats,
                skip_bad: bool = False) -> list[RawPassage]:
    """SLIMER's (passage, type) lines regrouped per Pile-NER row, questions in index order."""
    rows: dict[str, tuple[str, list[tuple[int, str, str]]]] = {}
    for line, record in iter_records(path, stats, skip_bad):
        stats.records_read += 1
        try:
            row, question, tag, text, answer = _slimer_fields(record)
            known = rows.setdefault(row, (text, []))
            if known[0] != text:
                raise ValueError(f"row {row} carries two different passages")
        except ValueError as exc:
            if not skip_bad:
                raise DataError(path, line, str(exc)) from None
            stats.bad_records += 1
            continue
        known[1].append((question, tag, answer))
    return [RawPassage(text, [(tag, answer) for _, tag, answer in sorted(qs, key=lambda q: q[0])])
            for text, qs in rows.values()]


def group_by_text(passages: Iterable[RawPassage], stats: PileNerStats) -> list[RawPassage]:
    """Merge passages with identical text, in first-seen order (UniNER: one row per type)."""
    merged: dict[str, RawPassage] = {}
    for passage in passages:
        if passage.text in merged:
            merged[passage.text].qa.extend(passage.qa)
            stats.merged_records += 1
        else:
            merged[passage.text] = RawPassage(passage.text, list(passage.qa))
    return list(merged.values())


def parse_answer(answer: str) -> list[str] | None:
    """The mentions of one answer, or ``None`` when it is not a JSON list of strings."""
    try:
        value = json.loads(answer)
    except json.JSONDecodeError:
        return None
    return value if _is_mention_list(value) else None


def _is_mention_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(m, str) for m in value)


def shuffled_schema(types: Iterable[str], seed: int, index: int) -> list[str]:
    """``types`` in passage ``index``'s schema order: shuffled by ``random.Random(f"{seed}:
    {index}")``, so a record does not change when others are added after it."""
    schema = list(types)
    random.Random(f"{seed}:{index}").shuffle(schema)
    return schema


def authors_passage_text(text: str) -> str:
    """The passage as the authors' converter keeps it: ``text`` (turn 0 after ``Text: ``) with
    leading whitespace and a ``Q:`` opening (``Q:`` + whitespace up to its last newline) removed,
    then a ``Text:`` left at the start after that, then surrounding whitespace stripped."""
    text = text.lstrip()
    if match := AUTHORS_QA_PREFIX.match(text):
        text = text[match.end():]
        if again := AUTHORS_TEXT_PREFIX.match(text):
            text = text[again.end():]
    return text.strip()


def _authors_answer(answer: str, stats: PileNerStats) -> object:
    """One answer as the authors keep it: parsed JSON as is, ``[]`` when it is not JSON."""
    try:
        value = json.loads(answer)
    except (json.JSONDecodeError, RecursionError):
        stats.unparseable_answers += 1
        return []
    if _is_mention_list(value):
        stats.mentions_read += len(value)
    else:
        stats.odd_answers_kept += 1
    return value


def _authors_record(passage: RawPassage, index: int, seed: int,
                    stats: PileNerStats) -> dict[str, str]:
    """The authors' layout of one passage (see the module doc)."""
    answers: list[tuple[str, object]] = []
    latest: dict[str, object] = {}
    for type_name, answer in passage.qa:
        stats.questions += 1
        value = _authors_answer(answer, stats)
        if type_name in latest:
            stats.duplicate_types += 1
            earlier = latest[type_name]
            if _is_mention_list(earlier):
                stats.replaced_mentions += len(earlier)
        latest[type_name] = value
        answers.append((type_name, value))
    text = authors_passage_text(passage.text)
    stats.passages_trimmed += text != passage.text
    schema = shuffled_schema((type_name for type_name, _ in answers), seed, index)
    instruction, query = authors_explorer_prompt(schema, text)
    return {"instruction": instruction, "input": query, "output": authors_explorer_target(answers)}


def build_record(passage: RawPassage, index: int, seed: int, stats: PileNerStats,
                 prompt_format: str = "explorer") -> dict[str, str] | None:
    """The alpaca record of one passage, or ``None`` when it asks no type."""
    if not passage.qa:
        stats.passages_without_type += 1
        return None
    if prompt_format == "authors":
        return _authors_record(passage, index, seed, stats)
    by_type: dict[str, list[str]] = {}
    for type_name, answer in passage.qa:
        stats.questions += 1
        mentions = parse_answer(answer)
        if mentions is None:
            stats.unparseable_answers += 1
            mentions = []
        if type_name in by_type:
            stats.duplicate_types += 1
        bucket = by_type.setdefault(type_name, [])
        stats.mentions_read += len(mentions)
        for mention in mentions:
            if not mention.strip():
                stats.empty_mentions += 1
            elif mention in bucket:
                stats.duplicate_mentions += 1
            else:
                bucket.append(mention)
    types = shuffled_schema(by_type, seed, index)
    instruction, query = explorer_prompt(types, passage.text)
    return {"instruction": instruction, "input": query, "output": explorer_target(by_type, types)}


def convert(src: str | os.PathLike[str], out: str | os.PathLike[str], *,
            fmt: str = "sharegpt", seed: int = DEFAULT_SEED, limit: int | None = None,
            group: bool = False, skip_bad: bool = False,
            prompt_format: str = "explorer") -> PileNerStats:
    """Convert ``src`` and write ``out`` (.json array or .jsonl) atomically; returns the stats."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (expected one of {FORMATS})")
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"unknown prompt format {prompt_format!r} "
                         f"(expected one of {PROMPT_FORMATS})")
    stats = PileNerStats()
    reader = read_slimer if fmt == "slimer" else read_sharegpt
    passages = list(reader(src, stats, skip_bad))
    if not stats.records_read:
        raise DataError(src, None, "no records: the file is empty or blank")
    if group:
        passages = group_by_text(passages, stats)
    progress = tqdm(passages, desc="pile-ner", unit="passage", disable=None)
    built = (build_record(p, i, seed, stats, prompt_format) for i, p in enumerate(progress))
    records = islice((r for r in built if r is not None), limit)
    stats.passages_written = write_alpaca(out, _at_least_one(records, src, stats))
    return stats


def _at_least_one(records: Iterable[dict[str, str]], src: str | os.PathLike[str],
                  stats: PileNerStats) -> Iterator[dict[str, str]]:
    """``records``, failing at the end if there were none: raised inside the writer, so no
    empty training file is left behind."""
    written = False
    for record in records:
        written = True
        yield record
    if not written:
        why = (f"{stats.records_read:,} records, {stats.bad_records:,} skipped as bad, "
               f"{stats.passages_without_type:,} passages without a type")
        raise DataError(src, None, f"no passage to train on ({why})")


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--src", required=True, help="Pile-NER JSON/JSONL (or SLIMER JSONL)")
    parser.add_argument("--out", required=True, help="output .json (array) or .jsonl")
    parser.add_argument("--format", choices=FORMATS, default="sharegpt", dest="fmt")
    parser.add_argument("--prompt-format", choices=PROMPT_FORMATS, default="explorer",
                        help="explorer: ours (default); authors: the authors' explorer layout")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="schema shuffle seed")
    parser.add_argument("--limit", type=int, default=None, help="write at most N passages")
    parser.add_argument("--group-by-text", action="store_true",
                        help="merge rows with the same passage text (UniNER eval layout)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip and count malformed records instead of failing")
    args = parser.parse_args(argv)

    def body() -> None:
        stats = convert(args.src, args.out, fmt=args.fmt, seed=args.seed, limit=args.limit,
                        group=args.group_by_text, skip_bad=args.skip_bad,
                        prompt_format=args.prompt_format)
        print(f"{args.src} -> {args.out}\n{stats.summary()}")

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
