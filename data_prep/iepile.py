"""IEPile NER → stage-2 classifier SFT data: tagged sentence in, mention → archetype out
(``--target archetypes``, the paper's classifier), or mention → the record's own type
(``--target direct``, the direct-typing classifier of the paper's w/o-calibration ablation).

IEPile's ``train.json`` is JSON Lines of ``{"task", "source", "instruction", "output"}`` where
``instruction`` is a JSON string ``{"instruction", "schema", "input"}`` and ``output`` a JSON
string ``{type: [mentions]}``. The file is several GB, so it is streamed line by line and the
output is written as it is produced: memory stays flat whatever the input size.

Per record: keep ``task == "NER"``; drop it when no type has a mention; drop the number/time types
(``dropped_types`` in ``mappings/archetypes.yaml``); project every other fine type onto its
archetype; wrap the mentions in ``<ENT></ENT>`` (:func:`core.tagging.tag_mentions`). The answer
lists ``{mention: archetype}`` for the tagged mentions in text order; the schema is the record's
own archetype subset (the projection of all its kept schema types, negative ones included), in
``archetypes.yaml`` order. A mention under two types whose archetypes differ keeps the first and
is counted as a conflict; a mention not found in the sentence is dropped and counted, and a
record left with no tagged mention is dropped and counted.

``--target direct`` reads the same records with the same filters (``task == "NER"``, records
without an entity, the number/time ``dropped_types``) and the same ``<ENT>`` tagging, but keeps
the fine types as they are, without projection: the candidates shown are the record's own kept
schema types (negatives included, in record order; a type the projection table does not know is
fine here) and the answer lists ``{mention: type}`` (:func:`core.prompts.direct_typing_prompt`).
A mention under two types keeps the first and is counted as a conflict. At inference the
candidates are a target domain's label names (``typing: direct`` in the inference config).

A fine type the table does not know is never guessed: by default the pass is finished, nothing
is written, and the run fails listing every unknown type (most frequent first) so the table can
be extended; ``--skip-unmapped`` drops those types' mentions instead and reports them. A line
that is not valid JSON (or a record with malformed fields) fails with ``file:line``, or is
skipped and counted with ``--skip-bad``. A record without a ``task`` is malformed too, not
"not NER": every IEPile record names its task, so a missing one means a different layout (the
authors' converter read a key ``item`` that no record has, and silently kept nothing); under
``--skip-bad`` it is counted apart, as ``missing_task``. A file without records, or one that
yields no training record, fails naming the file: an empty training set is never registered.

Every IEPile NER source is kept by default, as the paper did (its classifier was trained on
IEPile's whole NER subset, MIT Movie and MIT Restaurant included). Those two are among our test
sets, but SAM-NER's MIT scores are not zero-shot whatever this data holds: the public IEPile
anchor was trained on their train splits, and the report marks MIT rows as not zero-shot.
``--exclude-sources NAME ...`` is the opt-in for a stricter experiment: records whose ``source``
(the IEPile dataset a record comes from) is named are skipped and counted per source, before
anything else is read from them, e.g. ``--exclude-sources mit-movie mit-restaurant``
(:data:`MIT_SOURCES`). Names match case-insensitively and ignoring punctuation and spaces
(``mit-movie`` = ``MIT Movie`` = ``mit_movie``).

Beside its output the converter writes ``<out>.meta.json``
(:func:`core.register.write_data_meta`): the source file (and, through
``data_prep.train_data``, its Hub repo and revision), the target, the excluded sources, records
written per source, the stats below and the prompt version. ``tools.train`` copies it into every
adapter trained on the data.

    python -m data_prep.iepile --src iepile/train.json --out data/train/classifier.jsonl
    python -m data_prep.iepile --src iepile/train.json --out data/train/direct_classifier.jsonl \\
        --target direct
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.cli import make_parser, run
from core.io import DataError, ProjectError
from core.mappings import Archetypes, load_archetypes
from core.prompts import (
    PROMPT_VERSION,
    classifier_prompt,
    classifier_target,
    direct_typing_prompt,
)
from core.register import write_alpaca, write_data_meta
from core.tagging import tag_mentions

# IEPile's ``source`` is the name of the folder its converter read the dataset from
# (ie2instruction/convert_func.py: ``src_path.split('/')[-2]``); the Hugging Face release keeps
# MIT Movie and MIT Restaurant in ``IE-en/NER/mit-movie`` and ``IE-en/NER/mit-restaurant``.
MIT_SOURCES = ("mit-movie", "mit-restaurant")
DEFAULT_EXCLUDED_SOURCES: tuple[str, ...] = ()  # the paper's data: every NER source
# What the stage-2 answer names: the projected archetype (the paper's classifier) or the
# record's own fine type (the direct-typing classifier of the w/o-calibration ablation).
TARGETS = ("archetypes", "direct")
NO_SOURCE = "(no source)"


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
    written_by_source: Counter[str] = field(default_factory=Counter)  # source -> records written

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
        lines += [f"    written from source {name!r}: {count:,} records"
                  for name, count in sorted(self.written_by_source.items())]
        unmapped = self.unmapped_report()
        if unmapped:
            lines.append(f"  unmapped types ({len(unmapped)}):")
            lines += [f"    {line}" for line in unmapped]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """Every count (per-type and per-source counts as sorted mappings), for the sidecar."""
        return {key: dict(sorted(value.items())) if isinstance(value, Counter) else value
                for key, value in vars(self).items()}


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


def _own_type(type_name: str) -> str | None:
    """The direct target's "projection": a fine type names itself (None only when empty)."""
    return type_name.strip() or None


def _label_mentions(types: list[str], output: dict[str, list[str]], archetypes: Archetypes,
                    label_of: Callable[[str], str | None], stats: IEPileStats
                    ) -> tuple[dict[str, str], list[str]]:
    """Mention → label (``label_of`` of its first type) and the labels of every kept type in
    record order; dropped and unknown (``label_of`` None) types are counted and left out."""
    label_by_mention: dict[str, str] = {}
    labels: dict[str, None] = {}
    for type_name in types:
        mentions = output.get(type_name, [])
        stats.mentions_read += len(mentions)
        if archetypes.is_dropped(type_name):
            stats.dropped_type_mentions += len(mentions)
            continue
        label = label_of(type_name)
        if label is None:
            stats.unmapped_records[type_name] += 1
            stats.unmapped_mention_counts[type_name] += len(mentions)
            stats.unmapped_mentions += len(mentions)
            continue
        labels[label] = None
        for mention in mentions:
            known = label_by_mention.get(mention)
            if not mention.strip():
                stats.empty_mentions += 1
            elif known is None:
                label_by_mention[mention] = label
            elif known == label:
                stats.duplicate_mentions += 1
            else:
                stats.conflicts += 1
    return label_by_mention, list(labels)


def convert_record(text: str, schema: list[str], output: dict[str, list[str]],
                   archetypes: Archetypes, rank: dict[str, int],
                   stats: IEPileStats, target: str = "archetypes") -> dict[str, str] | None:
    """One NER record with at least one entity → alpaca record, or ``None`` (counted why)."""
    types = list(dict.fromkeys([*schema, *output]))
    direct = target == "direct"
    label_by_mention, labels = _label_mentions(types, output, archetypes,
                                               _own_type if direct else archetypes.project, stats)
    if not label_by_mention:
        stats.no_mention_left += 1
        return None
    tagged_text, tagged = tag_mentions(text, label_by_mention)
    stats.mentions_not_found += len(label_by_mention) - len(tagged)
    stats.mentions_tagged += len(tagged)
    if not tagged:
        stats.no_tagged_mention += 1
        return None
    if direct:  # the record's own types, in its order
        instruction, query = direct_typing_prompt(tagged_text, labels)
    else:  # the record's archetype subset, in archetypes.yaml order
        instruction, query = classifier_prompt(tagged_text, sorted(labels, key=rank.__getitem__))
    answer = classifier_target((m, label_by_mention[m]) for m in tagged)
    return {"instruction": instruction, "input": query, "output": answer}


def iter_records(src: str | os.PathLike[str], archetypes: Archetypes, stats: IEPileStats, *,
                 skip_unmapped: bool = False, skip_bad: bool = False,
                 limit: int | None = None,
                 exclude_sources: Iterable[str] = DEFAULT_EXCLUDED_SOURCES,
                 target: str = "archetypes") -> Iterator[dict[str, str]]:
    """Stream alpaca records from ``src``; raises :class:`UnmappedTypesError` at the very end
    (after the last record) when unknown types were met and ``skip_unmapped`` is off."""
    if target not in TARGETS:
        raise ProjectError(f"unknown target {target!r} (known: {', '.join(TARGETS)})")
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
            record = convert_record(text, schema, output, archetypes, rank, stats, target)
            if record is not None:
                stats.records_written += 1
                stats.written_by_source[source if isinstance(source, str) else NO_SOURCE] += 1
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
            exclude_sources: Iterable[str] = DEFAULT_EXCLUDED_SOURCES,
            target: str = "archetypes",
            source_info: Mapping[str, Any] | None = None) -> IEPileStats:
    """Convert ``src`` into ``out`` (.json array or .jsonl) atomically, then write its sidecar
    ``<out>.meta.json`` (``source_info``, e.g. the Hub repo and revision, joins its source
    entry); returns the stats.

    On unknown types (without ``skip_unmapped``) ``out`` is left untouched and
    :class:`UnmappedTypesError` is raised after the whole pass. Records of ``exclude_sources``
    (default: none) are skipped and counted.
    """
    archetypes = archetypes or load_archetypes()
    stats = IEPileStats()
    exclude_sources = list(exclude_sources)
    records = iter_records(src, archetypes, stats, skip_unmapped=skip_unmapped,
                           skip_bad=skip_bad, limit=limit, exclude_sources=exclude_sources,
                           target=target)
    write_alpaca(out, records)
    write_data_meta(out, {
        "converter": "data_prep.iepile", "target": target, "prompt_version": PROMPT_VERSION,
        "source": {"file": str(Path(src).resolve()), "bytes": Path(src).stat().st_size,
                   **(source_info or {})},
        "excluded_sources": exclude_sources, "limit": limit, "skip_unmapped": skip_unmapped,
        "skip_bad": skip_bad, "records_written": stats.records_written,
        "records_by_source": dict(sorted(stats.written_by_source.items())),
        "stats": stats.to_json()})
    return stats


def add_exclude_sources(parser: argparse.ArgumentParser) -> None:
    """``--exclude-sources [NAME ...]``, shared by this CLI and ``data_prep.train_data``."""
    parser.add_argument(
        "--exclude-sources", nargs="*", metavar="NAME", default=list(DEFAULT_EXCLUDED_SOURCES),
        help="skip IEPile records of these sources (case and punctuation ignored); default: "
             "none, every NER source is kept as in the paper; e.g. "
             f"--exclude-sources {' '.join(MIT_SOURCES)} for a classifier that never saw MIT")


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
    parser.add_argument("--target", choices=TARGETS, default="archetypes",
                        help="answer with the projected archetype (the paper's classifier) or "
                             "with the record's own type (direct: the w/o-calibration ablation)")
    add_exclude_sources(parser)
    args = parser.parse_args(argv)

    def body() -> None:
        archetypes = load_archetypes(args.archetypes)
        try:
            stats = convert(args.src, args.out, skip_unmapped=args.skip_unmapped,
                            skip_bad=args.skip_bad, limit=args.limit, archetypes=archetypes,
                            exclude_sources=args.exclude_sources, target=args.target)
        except UnmappedTypesError as exc:
            print(f"{args.src}: stats of the pass (nothing written)\n{exc.stats.summary()}")
            raise
        print(f"{args.src} -> {args.out}\n{stats.summary()}")

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
