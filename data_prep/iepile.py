"""IEPile NER → archetype-classifier SFT data (stage 2): tagged sentence in, mention→archetype out.

IEPile's ``train.json`` is JSON Lines of ``{"task", "source", "instruction", "output"}`` where
``instruction`` is a JSON string ``{"instruction", "schema", "input"}`` and ``output`` a JSON
string ``{type: [mentions]}``. The file is several GB, so it is streamed line by line and the
output is written as it is produced: memory stays flat whatever the input size.

Per record: keep ``task == "NER"``; drop it when no type has a mention; drop the number/time types
(``dropped_types`` in ``mappings/archetypes.yaml``); project every other fine type onto its
archetype; wrap the mentions in ``<ENT></ENT>`` (:func:`eval.tagging.tag_mentions`). The answer
lists ``{mention: archetype}`` for the tagged mentions in text order; the schema is the record's
own archetype subset (the projection of all its kept schema types, negative ones included), in
``archetypes.yaml`` order. A mention under two types whose archetypes differ keeps the first and
is counted as a conflict; a mention not found in the sentence is dropped and counted, and a
record left with no tagged mention is dropped and counted.

A fine type the table does not know is never guessed: by default the pass is finished, nothing
is written, and the run fails listing every unknown type (most frequent first) so the table can
be extended; ``--skip-unmapped`` drops those types' mentions instead and reports them. A line
that is not valid JSON (or a record with malformed fields) fails with ``file:line``, or is
skipped and counted with ``--skip-bad``. A record without a ``task`` is malformed too, not
"not NER": every IEPile record names its task, so a missing one means a different layout (the
authors' converter read a key ``item`` that no record has, and silently kept nothing); under
``--skip-bad`` it is counted apart, as ``missing_task``. A file without records, or one that
yields no training record, fails naming the file: an empty training set is never registered.

Records whose ``source`` (the IEPile dataset a record comes from) is in ``--exclude-sources``
are skipped and counted per source, before anything else is read from them. By default that is
MIT Movie and MIT Restaurant (:data:`DEFAULT_EXCLUDED_SOURCES`): IEPile's mix holds their train
splits, and they are two of the seven zero-shot test sets, so a classifier trained on them would
not be zero-shot there. Names match case-insensitively and ignoring punctuation and spaces
(``mit-movie`` = ``MIT Movie`` = ``mit_movie``); ``--exclude-sources`` with no name keeps every
source.

    python -m data_prep.iepile --src iepile/train.json --out data/train/classifier.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from data_prep.cli import make_parser, run
from data_prep.io import DataError, ProjectError
from data_prep.mappings import Archetypes, load_archetypes
from data_prep.register import write_alpaca
from eval.prompts import classifier_prompt, classifier_target
from eval.tagging import tag_mentions

# IEPile's ``source`` is the name of the folder its converter read the dataset from
# (ie2instruction/convert_func.py: ``src_path.split('/')[-2]``); the Hugging Face release keeps
# MIT Movie and MIT Restaurant in ``IE-en/NER/mit-movie`` and ``IE-en/NER/mit-restaurant``.
DEFAULT_EXCLUDED_SOURCES = ("mit-movie", "mit-restaurant")


def source_key(name: str) -> str:
    """How source names are compared: lower-case, letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


@dataclass
class IEPileStats:
    lines_read: int = 0
    bad_lines: int = 0  # skipped with --skip-bad
    excluded_source: int = 0  # records of an --exclude-sources dataset (any task)
    missing_task: int = 0  # no string "task": malformed, skipped with --skip-bad
    not_ner: int = 0  # task != "NER"
    no_entity: int = 0  # every type's list empty
    no_mention_left: int = 0  # all mentions were of dropped/unmapped types
    no_tagged_mention: int = 0  # none of the mentions found in the sentence
    records_written: int = 0
    mentions_read: int = 0
    dropped_type_mentions: int = 0
    unmapped_mentions: int = 0
    empty_mentions: int = 0
    duplicate_mentions: int = 0  # same mention again, same archetype
    conflicts: int = 0  # same mention under another archetype: first kept
    mentions_not_found: int = 0
    mentions_tagged: int = 0
    unmapped_records: Counter[str] = field(default_factory=Counter)  # type -> records
    unmapped_mention_counts: Counter[str] = field(default_factory=Counter)  # type -> mentions
    excluded_by_source: Counter[str] = field(default_factory=Counter)  # source -> records

    def unmapped_report(self) -> list[str]:
        """One line per unknown type, most frequent (by records, then mentions) first."""
        order = sorted(self.unmapped_records, key=lambda t: (
            -self.unmapped_records[t], -self.unmapped_mention_counts[t], t))
        return [f"{t!r}: {self.unmapped_records[t]:,} records, "
                f"{self.unmapped_mention_counts[t]:,} mentions" for t in order]

    def summary(self) -> str:
        lines = [f"  {key:<22} {value:>9,}" for key, value in vars(self).items()
                 if isinstance(value, int)]
        lines += [f"    excluded source {name!r}: {count:,} records"
                  for name, count in sorted(self.excluded_by_source.items())]
        unmapped = self.unmapped_report()
        if unmapped:
            lines.append(f"  unmapped types ({len(unmapped)}):")
            lines += [f"    {line}" for line in unmapped]
        return "\n".join(lines)


class UnmappedTypesError(ProjectError):
    """Fine types missing from ``archetypes.yaml``; carries the stats of the finished pass."""

    def __init__(self, stats: IEPileStats) -> None:
        self.stats = stats
        report = "\n  ".join(stats.unmapped_report())
        super().__init__(
            f"{len(stats.unmapped_records)} IEPile types are neither projected nor dropped in "
            f"mappings/archetypes.yaml (nothing written; extend the table or pass "
            f"--skip-unmapped):\n  {report}")


class MissingTask(ValueError):
    """A record without a string ``task``: malformed, counted apart from other bad lines."""


def _parse_record(record: Any) -> tuple[str, str, list[str], dict[str, list[str]]]:
    """(task, sentence, schema types, {type: mentions}); raises ``ValueError`` if malformed."""
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    task = record.get("task")
    if not isinstance(task, str):
        raise MissingTask("no string 'task' (IEPile records name their task, e.g. \"NER\")")
    if task != "NER":
        return task, "", [], {}
    try:
        instruction = json.loads(record["instruction"])
        output = json.loads(record["output"])
    except KeyError as exc:
        raise ValueError(f"missing key {exc.args[0]!r}") from None
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"'instruction'/'output' is not a JSON string ({exc})") from None
    if not isinstance(instruction, dict) or not isinstance(instruction.get("input"), str):
        raise ValueError("'instruction' must encode an object with a string 'input'")
    schema = instruction.get("schema") or []
    if not isinstance(schema, list) or not all(isinstance(t, str) for t in schema):
        raise ValueError("'schema' must be a list of type names")
    if not isinstance(output, dict):
        raise ValueError("'output' must encode an object {type: [mentions]}")
    for type_name, mentions in output.items():
        if not isinstance(mentions, list) or not all(isinstance(m, str) for m in mentions):
            raise ValueError(f"'output' type {type_name!r} must map to a list of strings")
    return task, instruction["input"], schema, output


def convert_record(text: str, schema: list[str], output: dict[str, list[str]],
                   archetypes: Archetypes, rank: dict[str, int],
                   stats: IEPileStats) -> dict[str, str] | None:
    """One NER record with at least one entity → alpaca record, or ``None`` (counted why)."""
    types = list(dict.fromkeys([*schema, *output]))
    archetype_of: dict[str, str] = {}
    schema_archetypes: set[str] = set()
    for type_name in types:
        mentions = output.get(type_name, [])
        stats.mentions_read += len(mentions)
        if archetypes.is_dropped(type_name):
            stats.dropped_type_mentions += len(mentions)
            continue
        archetype = archetypes.project(type_name)
        if archetype is None:
            stats.unmapped_records[type_name] += 1
            stats.unmapped_mention_counts[type_name] += len(mentions)
            stats.unmapped_mentions += len(mentions)
            continue
        schema_archetypes.add(archetype)
        for mention in mentions:
            known = archetype_of.get(mention)
            if not mention.strip():
                stats.empty_mentions += 1
            elif known is None:
                archetype_of[mention] = archetype
            elif known == archetype:
                stats.duplicate_mentions += 1
            else:
                stats.conflicts += 1
    if not archetype_of:
        stats.no_mention_left += 1
        return None
    tagged_text, tagged = tag_mentions(text, archetype_of)
    stats.mentions_not_found += len(archetype_of) - len(tagged)
    stats.mentions_tagged += len(tagged)
    if not tagged:
        stats.no_tagged_mention += 1
        return None
    schema_out = sorted(schema_archetypes, key=rank.__getitem__)
    instruction, query = classifier_prompt(tagged_text, schema_out)
    target = classifier_target((m, archetype_of[m]) for m in tagged)
    return {"instruction": instruction, "input": query, "output": target}


def iter_records(src: str | os.PathLike[str], archetypes: Archetypes, stats: IEPileStats, *,
                 skip_unmapped: bool = False, skip_bad: bool = False,
                 limit: int | None = None,
                 exclude_sources: Iterable[str] = DEFAULT_EXCLUDED_SOURCES,
                 ) -> Iterator[dict[str, str]]:
    """Stream alpaca records from ``src``; raises :class:`UnmappedTypesError` at the very end
    (after the last record) when unknown types were met and ``skip_unmapped`` is off."""
    rank = {name: i for i, name in enumerate(archetypes.names)}
    excluded = {source_key(name) for name in exclude_sources}
    size = Path(src).stat().st_size
    with open(src, "rb") as handle, tqdm(total=size, unit="B", unit_scale=True,
                                         desc="iepile", disable=None) as progress:
        pending = 0
        for number, raw in enumerate(handle, start=1):
            pending += len(raw)
            if pending >= 1 << 20:
                progress.update(pending)
                pending = 0
            if not raw.strip():
                continue
            stats.lines_read += 1
            try:
                record = json.loads(raw)
                source = record.get("source") if isinstance(record, dict) else None
                if isinstance(source, str) and source_key(source) in excluded:
                    stats.excluded_source += 1
                    stats.excluded_by_source[source] += 1
                    continue
                task, text, schema, output = _parse_record(record)
            except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
                if not skip_bad:
                    raise DataError(src, number, str(exc)) from None
                if isinstance(exc, MissingTask):
                    stats.missing_task += 1
                else:
                    stats.bad_lines += 1
                continue
            if task != "NER":
                stats.not_ner += 1
                continue
            if not any(output.values()):
                stats.no_entity += 1
                continue
            record = convert_record(text, schema, output, archetypes, rank, stats)
            if record is not None:
                stats.records_written += 1
                yield record
                if limit is not None and stats.records_written >= limit:
                    break
        progress.update(pending)
    if stats.unmapped_records and not skip_unmapped:
        raise UnmappedTypesError(stats)
    if not stats.records_written:  # raised inside the writer: no empty file is left behind
        if not stats.lines_read:
            raise DataError(src, None, "no records: the file is empty or blank")
        skipped = ("bad_lines", "missing_task", "excluded_source", "not_ner", "no_entity",
                   "no_mention_left", "no_tagged_mention")
        why = ", ".join(f"{k} {getattr(stats, k):,}" for k in skipped if getattr(stats, k))
        raise DataError(src, None, f"no training record among {stats.lines_read:,} records "
                                   f"({why}): nothing to train on")


def convert(src: str | os.PathLike[str], out: str | os.PathLike[str], *,
            skip_unmapped: bool = False, skip_bad: bool = False, limit: int | None = None,
            archetypes: Archetypes | None = None,
            exclude_sources: Iterable[str] = DEFAULT_EXCLUDED_SOURCES) -> IEPileStats:
    """Convert ``src`` into ``out`` (.json array or .jsonl) atomically; returns the stats.

    On unknown types (without ``skip_unmapped``) ``out`` is left untouched and
    :class:`UnmappedTypesError` is raised after the whole pass. Records of ``exclude_sources``
    (default: MIT Movie and MIT Restaurant, test sets of ours) are skipped and counted.
    """
    archetypes = archetypes or load_archetypes()
    stats = IEPileStats()
    records = iter_records(src, archetypes, stats, skip_unmapped=skip_unmapped,
                           skip_bad=skip_bad, limit=limit, exclude_sources=exclude_sources)
    write_alpaca(out, records)
    return stats


def add_exclude_sources(parser: argparse.ArgumentParser) -> None:
    """``--exclude-sources [NAME ...]``, shared by this CLI and ``data_prep.train_data``."""
    parser.add_argument(
        "--exclude-sources", nargs="*", metavar="NAME", default=list(DEFAULT_EXCLUDED_SOURCES),
        help="skip IEPile records of these sources (case and punctuation ignored); default: "
             f"{' '.join(DEFAULT_EXCLUDED_SOURCES)} (our MIT test sets); give it no name to keep "
             "every source")


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--src", required=True, help="IEPile train.json (JSON Lines)")
    parser.add_argument("--out", required=True, help="output .json (array) or .jsonl")
    parser.add_argument("--archetypes", default=None,
                        help="archetypes YAML (default: mappings/archetypes.yaml)")
    parser.add_argument("--skip-unmapped", action="store_true",
                        help="drop mentions of types missing from the projection, report them")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip and count malformed lines instead of failing")
    parser.add_argument("--limit", type=int, default=None, help="write at most N records")
    add_exclude_sources(parser)
    args = parser.parse_args(argv)

    def body() -> None:
        archetypes = load_archetypes(args.archetypes)
        try:
            stats = convert(args.src, args.out, skip_unmapped=args.skip_unmapped,
                            skip_bad=args.skip_bad, limit=args.limit, archetypes=archetypes,
                            exclude_sources=args.exclude_sources)
        except UnmappedTypesError as exc:
            print(f"{args.src}: stats of the pass (nothing written)\n{exc.stats.summary()}")
            raise
        print(f"{args.src} -> {args.out}\n{stats.summary()}")

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
