"""Micro P/R/F1 for NER predictions given as strings, the way an LLM writes them.

Prediction records: ``{"id": ..., "entities": [{"text": mention, "type": label}, ...]}``. A gold
sentence whose id has no prediction record counts as predicting nothing; a prediction id that is
not in the gold files is an error (it means the wrong gold or prediction file).

Modes (every result names its mode, misc setting and :data:`SCORER_VERSION`), each registered in
:data:`MODES` beside its matching function, so ``--mode``, the report's tables and its peer
comparisons all follow the registry:

``string`` (default: the paper's and the SAM-NER authors' convention)
    Per sentence, the SET of (stripped mention, type) pairs of gold and prediction; repeated
    mentions collapse. ``not_found`` is still reported.
``span``
    Each distinct predicted (mention, type) becomes a span at EVERY token-aligned occurrence of
    the mention (its whitespace-split tokens equal a run of sentence tokens). Micro P/R/F1 over the
    sets of exact (start, end, type) spans. A mention found nowhere in the sentence is one false
    positive (and counted in ``not_found``).

``--no-misc`` drops the ``misc`` label from gold and prediction before counting.

    python -m eval.score --gold data/crossner/*/test.jsonl --pred runs/x/*/predictions.jsonl
    python -m eval.score --run runs/x --data data   # every domain with predictions

With ``--run`` (and in ``make eval``, which uses the same functions) a run is scored on the gold
sentences it ran: those with a prediction record in ``<domain>/predictions.jsonl`` (the pipeline
writes one per sentence, entities or not). A ``LIMIT=5`` run is scored on its 5 sentences and
says so, never on the whole test split with the rest as empty predictions. Gold files come from
the run's ``run.json`` (what the run read), else from ``--data``. With ``--gold``/``--pred``
every gold sentence counts: those files are taken as given.
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

from core.cli import make_parser, run
from core.io import DataError, ProjectError, iter_jsonl
from core.mappings import MappingError, load_domain
from core.records import Sentence, Span, iter_sentences
from core.registry import Registry
from core.text import find_occurrences

SCORER_VERSION = "samner-score/1.0"
MISC = "misc"

Prediction = tuple[str, str]  # (mention text, type)
Key = tuple[Any, ...]  # what a mode compares; its last element is the type


class ScoreError(ProjectError):
    """Gold and predictions do not fit together (e.g. a prediction id that is not in gold)."""


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1,
                "tp": self.tp, "fp": self.fp, "fn": self.fn}


@dataclass
class DomainScore:
    total: Counts = field(default_factory=Counts)
    per_type: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    not_found: int = 0
    sentences: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**self.total.to_json(), "not_found": self.not_found, "sentences": self.sentences,
                "per_type": {t: c.to_json() for t, c in sorted(self.per_type.items())}}


@dataclass
class ScoreReport:
    mode: str
    misc: bool
    domains: dict[str, DomainScore]
    version: str = SCORER_VERSION

    @property
    def average_f1(self) -> float:
        """Mean of the domain F1s, as the paper's "Avg." column (not a pooled micro-F1)."""
        return mean(d.total.f1 for d in self.domains.values()) if self.domains else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "mode": self.mode, "misc": self.misc,
                "domains": {name: d.to_json() for name, d in self.domains.items()},
                "average_f1": self.average_f1}


def tally(score: DomainScore, gold: set[Key], pred: set[Key]) -> None:
    """Add TP/FP/FN of one sentence; the last element of each key is the type."""
    for key in pred & gold:
        score.per_type[key[-1]].tp += 1
    for key in pred - gold:
        score.per_type[key[-1]].fp += 1
    for key in gold - pred:
        score.per_type[key[-1]].fn += 1
    score.total.add(Counts(len(pred & gold), len(pred - gold), len(gold - pred)))


@dataclass(frozen=True, slots=True)
class Matched:
    """One sentence as every mode sees it, misc already dropped when asked: a mode only picks
    which of these it compares."""

    sentence: Sentence
    gold: list[Span]
    pairs: set[Prediction]  # distinct (stripped mention, type)
    spans: set[tuple[int, int, str]]  # every token-aligned occurrence of a predicted pair
    not_found: list[Prediction]  # predicted pairs whose mention is nowhere in the sentence


KeysFn = Callable[[Matched], tuple[set[Key], set[Key]]]


@dataclass(frozen=True)
class ScoreMode:
    """A scoring mode: the keys it compares, and what the CLI and the report say about it."""

    name: str
    keys: KeysFn  # -> (gold keys, predicted keys)
    description: str  # one line for --help
    # recipes/paper_results.yaml peer ``matching`` conventions compared in this mode -> why
    peers: Mapping[str, str] = field(default_factory=dict)
    main: bool = False  # the paper's mode: the report's main setting and first tables


MODES: Registry[ScoreMode] = Registry("score mode")


def score_mode(name: str, description: str, peers: Mapping[str, str] | None = None,
               main: bool = False) -> Callable[[KeysFn], KeysFn]:
    """Register the decorated ``keys`` function as mode ``name`` (see :class:`ScoreMode`)."""
    def add(keys: KeysFn) -> KeysFn:
        MODES.add(name, ScoreMode(name, keys, description, dict(peers or {}), main))
        return keys
    return add


@score_mode("span", "exact token offsets",
            {"strict": "strict entity matching → span mode"})
def span_keys(m: Matched) -> tuple[set[Key], set[Key]]:
    """Exact (start, end, type) spans; a mention that is nowhere in the sentence cannot be a
    span: it stays a key of its own, one false positive each."""
    missing = {(None, text, etype) for text, etype in m.not_found}
    return {s.key() for s in m.gold}, set(m.spans) | missing


@score_mode("string", "the paper's string-set scoring", {
    "string": "string-set matching → string mode",
    "lenient": "LENIENT matching, looser than any of our modes → string mode, the closest (still "
               "stricter than theirs)",
    "unstated": "matching not stated → string mode (the paper's)"}, main=True)
def string_keys(m: Matched) -> tuple[set[Key], set[Key]]:
    """The sets of (stripped mention, type): the SAM-NER authors' scorer."""
    return {(s.text.strip(), s.type) for s in m.gold}, set(m.pairs)


def _unknown(mode: str) -> ScoreError:
    return ScoreError(f"unknown mode {mode!r}; choose one of {MODES.names()}")


def matched(sentence: Sentence, predicted: Iterable[Prediction], misc: bool = True) -> Matched:
    """One sentence as every mode sees it: the stripped (mention, type) pairs, the gold spans,
    and each pair placed at every token-aligned occurrence (or counted as found nowhere)."""
    pairs = {(text.strip(), etype) for text, etype in predicted if misc or etype != MISC}
    gold_spans = [s for s in sentence.entities if misc or s.type != MISC]
    not_found: list[Prediction] = []
    spans: set[tuple[int, int, str]] = set()
    for text, etype in pairs:
        mention_tokens = text.split()
        starts = find_occurrences(sentence.tokens, mention_tokens)
        if not starts:
            not_found.append((text, etype))
        spans.update((s, s + len(mention_tokens), etype) for s in starts)
    return Matched(sentence, gold_spans, pairs, spans, not_found)


def score_sentence(score: DomainScore, sentence: Sentence, predicted: Iterable[Prediction],
                   mode: str = "string", misc: bool = True) -> None:
    """Add one sentence's counts to ``score``."""
    if mode not in MODES:
        raise _unknown(mode)
    found = matched(sentence, predicted, misc)
    score.sentences += 1
    score.not_found += len(found.not_found)
    tally(score, *MODES[mode].keys(found))


def score(gold: Iterable[Sentence], predictions: Mapping[str, list[Prediction]],
          mode: str = "string", misc: bool = True) -> ScoreReport:
    """Score predictions (id → [(mention, type)]) against gold sentences, grouped by domain."""
    if mode not in MODES:
        raise _unknown(mode)
    domains: dict[str, DomainScore] = {}
    seen: set[str] = set()
    for sentence in gold:
        seen.add(sentence.id)
        domain = domains.setdefault(sentence.domain or "all", DomainScore())
        score_sentence(domain, sentence, predictions.get(sentence.id, ()), mode, misc)
    unknown = [pid for pid in predictions if pid not in seen]
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        raise ScoreError(f"{len(unknown)} prediction id(s) are not in the gold data, e.g. {shown}")
    return ScoreReport(mode, misc, domains)


def load_gold(paths: Iterable[str | os.PathLike[str]]) -> list[Sentence]:
    sentences: list[Sentence] = []
    ids: set[str] = set()
    for path in paths:
        for sentence in iter_sentences(path):
            if sentence.id in ids:
                raise DataError(path, None, f"id {sentence.id!r} also appears in another gold file")
            ids.add(sentence.id)
            sentences.append(sentence)
    return sentences


def parse_prediction_record(record: Any) -> tuple[str, list[Prediction]]:
    """Validate one prediction record; raises ``ValueError`` saying what is wrong."""
    if not isinstance(record, dict) or "id" not in record:
        raise ValueError("expected an object with an 'id'")
    entities = record.get("entities")
    if not isinstance(entities, list):
        raise ValueError("'entities' must be a list")
    pairs = []
    for i, ent in enumerate(entities):
        if not (isinstance(ent, dict) and isinstance(ent.get("text"), str)
                and isinstance(ent.get("type"), str)):
            raise ValueError(f"entity #{i} must be an object with string 'text' and 'type'")
        pairs.append((ent["text"], ent["type"]))
    return str(record["id"]), pairs


def load_predictions(paths: Iterable[str | os.PathLike[str]]) -> dict[str, list[Prediction]]:
    predictions: dict[str, list[Prediction]] = {}
    for path in paths:
        for line, record in iter_jsonl(path):
            try:
                pid, pairs = parse_prediction_record(record)
            except ValueError as exc:
                raise DataError(path, line, str(exc)) from None
            if pid in predictions:
                raise DataError(path, line, f"duplicate prediction id {pid!r}")
            predictions[pid] = pairs
    return predictions


def gold_file(domain: str, data_dir: Path) -> Path:
    """A domain's gold file: ``DATA/<domain>/test.jsonl``, else the sentences file that its
    definition in ``mappings/domains`` names, resolved under ``DATA`` as the data root (``data``:
    ``data/crossner/ai/test.jsonl``, ``data/mit_movie/test.jsonl``) or under ``DATA``'s parent
    (the older ``--data data/crossner``), so either spelling finds CrossNER and MIT alike."""
    path = data_dir / domain / "test.jsonl"
    if path.exists():
        return path
    try:
        definition = load_domain(domain)
        candidates = [definition.sentences_path(root) for root in (data_dir, data_dir.parent)]
    except MappingError:
        return path
    return next((c for c in candidates if c.exists()), candidates[0])


def run_files(run_dir: Path, data_dir: Path) -> tuple[list[Path], list[Path]]:
    """Gold and prediction files for every ``RUN/<domain>/predictions.jsonl``; gold as the
    run's ``run.json`` recorded it when there is one, domains in its order (the config's: the
    CrossNER five, then MIT), any other domain after them by name."""
    preds = sorted(run_dir.glob("*/predictions.jsonl"))
    if not preds:
        raise ScoreError(f"no <domain>/predictions.jsonl under {run_dir}")
    recorded: dict[str, Any] = {}
    if (run_dir / "run.json").is_file():
        try:
            recorded = json.loads((run_dir / "run.json").read_text()).get("domains") or {}
        except (json.JSONDecodeError, AttributeError):
            raise ScoreError(f"{run_dir / 'run.json'}: not a run record") from None
    order = {name: i for i, name in enumerate(recorded)}
    preds.sort(key=lambda p: (order.get(p.parent.name, len(order)), p.parent.name))

    def gold(name: str) -> Path:
        path = (recorded.get(name) or {}).get("gold")
        return Path(path) if path and Path(path).exists() else gold_file(name, data_dir)

    return [gold(p.parent.name) for p in preds], preds


def run_scope(gold: list[Sentence], predictions: Mapping[str, list[Prediction]]
              ) -> list[Sentence]:
    """The gold sentences a run is scored on: those it ran (that have a prediction record)."""
    return [s for s in gold if s.id in predictions]


def report_tables(report: ScoreReport):  # -> tuple[pd.DataFrame, pd.DataFrame]
    """The domain table (with an Avg. row) and the per-type table, as pandas DataFrames."""
    import pandas as pd  # deferred: the Python API must not pay pandas' import time

    rows = [{"domain": name, "P": d.total.precision * 100, "R": d.total.recall * 100,
             "F1": d.total.f1 * 100, "TP": d.total.tp, "FP": d.total.fp, "FN": d.total.fn,
             "not_found": d.not_found, "sentences": d.sentences}
            for name, d in report.domains.items()]
    domains = pd.DataFrame(rows).set_index("domain")
    if len(rows) > 1:
        domains.loc["Avg. (mean F1)"] = {"F1": report.average_f1 * 100}
    counts = ["TP", "FP", "FN", "not_found", "sentences"]
    domains[counts] = domains[counts].astype("Int64")  # stay integers beside the blank Avg. cells
    per_type = pd.DataFrame([
        {"domain": name, "type": etype, "P": c.precision * 100, "R": c.recall * 100,
         "F1": c.f1 * 100, "TP": c.tp, "FP": c.fp, "FN": c.fn}
        for name, d in report.domains.items() for etype, c in sorted(d.per_type.items())
    ])
    return domains, per_type


def format_report(report: ScoreReport, per_type: bool = True) -> str:
    import pandas as pd

    domains, types = report_tables(report)
    header = (f"{report.version}  mode={report.mode}  misc={'on' if report.misc else 'off'}  "
              f"(P/R/F1 in %)")
    def cell(value: object) -> object:
        if value is pd.NA or value != value:  # blank NA/NaN cells of the Avg. row
            return ""
        return f"{value:.1f}" if isinstance(value, float) else value

    cells = domains.astype(object).map(cell)  # Int64 counts stay integers
    parts = [header, cells.to_string()]
    if per_type and not types.empty:
        parts += ["", types.to_string(index=False, float_format=lambda v: f"{v:.1f}")]
    return "\n".join(parts)


def mode_help(default: str) -> str:
    """The modes' descriptions, the paper's first: ``string (default): ...; span: ...``."""
    modes = sorted(MODES.values(), key=lambda m: not m.main)
    return "; ".join(f"{m.name}{' (default)' if m.name == default else ''}: {m.description}"
                     for m in modes)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--gold", nargs="+", default=[], help="gold sentence JSONL file(s)")
    parser.add_argument("--pred", nargs="+", default=[], help="prediction JSONL file(s)")
    parser.add_argument("--run", type=Path,
                        help="run dir: score RUN/<domain>/predictions.jsonl for every domain there")
    parser.add_argument("--data", type=Path, default=Path("data"),
                        help="with --run, when run.json names no gold: the data root (gold is "
                             "DATA/<domain>/test.jsonl or the domain's `sentences` under DATA)")
    parser.add_argument("--mode", choices=MODES.names(), default="string",
                        help=mode_help("string"))
    parser.add_argument("--no-misc", action="store_true", help="drop misc from gold and prediction")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-per-type", action="store_true", help="omit the per-type table")
    args = parser.parse_args(argv)
    if bool(args.run) == bool(args.gold or args.pred):
        parser.error("give either --run (with --data) or both --gold and --pred")
    if not args.run and not (args.gold and args.pred):
        parser.error("--gold and --pred go together")

    def body() -> None:
        gold_paths, pred_paths = args.gold, args.pred
        if args.run:
            gold_paths, pred_paths = run_files(args.run, args.data)
        gold, predictions = load_gold(gold_paths), load_predictions(pred_paths)
        if args.run:
            scored = run_scope(gold, predictions)
            if len(scored) < len(gold):
                print(f"note: scoring the {len(scored)} of {len(gold)} gold sentences this run "
                      "predicted (a partial run: not comparable with full test-split numbers)",
                      file=sys.stderr)
            gold = scored
        report = score(gold, predictions, args.mode, misc=not args.no_misc)
        if args.json:
            print(json.dumps(report.to_json(), indent=2))
        else:
            print(format_report(report, per_type=not args.no_per_type))

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
