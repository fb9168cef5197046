"""The evaluation report of one run: our scores in every scoring setting beside the paper's.

    python -m eval.report --run RUN [--data data] [--paper recipes/paper_results.yaml]
                          [--out RUN/report]

Scores every ``RUN/<domain>/predictions.jsonl`` with :mod:`eval.score` in the four settings
(string/span mode x misc off/on) and writes, each file atomically, into ``OUT``:

``report.md``     one table per setting (domains + "Avg." = mean of domain F1, the paper's
                  convention) with the paper's F1 beside ours, the run's caveats, stage failures;
                  a per-type table per domain (main setting); the peers, each beside ours in the
                  setting closest to its scoring convention
``scores.csv``    long format, one row per (setting, domain); P/R/F1 and paper_f1 in %
``peers.csv``     one row per (peer, domain): its F1, ours in the setting it is compared in, and
                  its convention
``scores.json``   the four ``ScoreReport.to_json()`` (fractions, as the scorer gives) + metadata
``plot_<domain>.png``  our F1 in the four settings next to the paper's rows, y axis 0-100
``diagnostics.csv``, ``diagnostics_<domain>.png``  per-stage diagnostics of a pipeline run
                  (:mod:`eval.diagnostics`): each extractor's and the consensus output's mention
                  P/R/F1, consensus drops that were gold, archetypes, typing accuracy

Zero-shot is said only where it holds. A domain whose file in ``mappings/domains`` has a
``not_zero_shot`` reason (MIT Movie and MIT Restaurant: IEPile's training mix, and so the public
IEPile anchor, holds their train splits) is marked with that reason wherever it appears, and the
"Avg." row then covers the zero-shot domains only (CrossNER: the headline); "Avg. (all N)" is
beside it.

Only gold sentences that have a prediction record are scored: a ``LIMIT=N`` run covers the first N
sentences, and scoring the rest as empty predictions would report a meaningless recall. Fewer
sentences than the published test split is therefore flagged loudly as "NOT paper numbers", and so
is a run whose saved ``config.yaml`` names a tiny/fake model (or is missing: not a pipeline run).

The paper's numbers were scored in the authors' string-set mode (our ``string`` mode) with
``misc`` counted: the authors' calibration offers misc as a candidate, their scorer does not filter
it, and the paper compares with GLiNER's with-misc numbers. So the main setting, the one printed
first and compared with the paper, is ``string`` mode with misc; the other three are beside it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

import yaml

from core.cli import make_parser, run
from core.io import (
    ProjectError,
    atomic_writer,
    read_json_mapping,
    read_yaml_mapping,
    write_text_atomic,
)
from core.mappings import Domain, MappingError, load_archetypes, load_domain
from core.records import Sentence
from data_prep import mit
from data_prep.crossner import EXPECTED_TEST_COUNTS
from eval.diagnostics import CSV_FIELDS as DIAGNOSTICS_CSV_FIELDS
from eval.diagnostics import csv_rows as diagnostics_csv_rows
from eval.diagnostics import diagnostics
from eval.diagnostics import markdown as diagnostics_markdown
from eval.diagnostics import plot as diagnostics_plot
from eval.score import (
    SCORER_VERSION,
    Counts,
    Prediction,
    ScoreError,
    ScoreReport,
    load_gold,
    load_predictions,
    run_files,
    run_scope,
    score,
)

# (mode, misc); the first is the main setting, the paper's: the authors' string mode, misc kept.
SETTINGS: tuple[tuple[str, bool], ...] = (
    ("string", True), ("string", False), ("span", True), ("span", False))
AVG = "Avg."
DEFAULT_PAPER = Path(__file__).resolve().parents[1] / "recipes" / "paper_results.yaml"
# Paper rows drawn in the plots beside ours: the two SAM-NER backbones and three baselines.
PLOT_ROWS = ("sam_ner_llama3_8b", "sam_ner_qwen2_5_7b", "gliner_large", "uniner_13b",
             "iepile_llama3_8b")
LLAMA_ROW, QWEN_ROW = "sam_ner_llama3_8b", "sam_ner_qwen2_5_7b"
CSV_FIELDS = ("setting", "mode", "misc", "domain", "precision", "recall", "f1", "tp", "fp", "fn",
              "not_found", "sentences", "paper_f1", "scorer_version")
PEER_CSV_FIELDS = ("peer", "label", "domain", "peer_f1", "our_f1", "setting", "mode", "misc",
                   "convention")
# Published test-split sizes in sentences: a run that scored fewer is flagged.
FULL_SPLITS = {name: n for name, (n, _) in {**EXPECTED_TEST_COUNTS,
                                            **mit.EXPECTED_TEST_COUNTS}.items()}
NOT_ZERO_SHOT_MARK = "¹"


def setting_name(mode: str, misc: bool) -> str:
    return f"{mode}/misc-{'on' if misc else 'off'}"


# --------------------------------------------------------------------------- paper table


@dataclass
class PaperRow:
    key: str
    label: str
    f1: dict[str, float]  # domain -> F1 %, plus "avg" as printed
    avg_mismatch: str | None = None
    source: str = ""  # the primary source: paper and table, or repository and file


# A peer's scoring convention -> our closest setting (recipes/paper_results.yaml, `peers`).
PEER_MISC = {"kept": (True, "misc kept → misc-on"),
             "dropped": (False, "misc dropped → misc-off"),
             "unstated": (True, "misc not stated → misc-on (the paper's setting)")}
PEER_MATCHING = {
    "string": ("string", "string-set matching → string mode"),
    "strict": ("span", "strict entity matching → span mode"),
    "lenient": ("string", "LENIENT matching, looser than any of our modes → string mode, the "
                          "closest (still stricter than theirs)"),
    "unstated": ("string", "matching not stated → string mode (the paper's)"),
}


@dataclass
class Peer:
    """A published result of another system, with the convention it was scored in."""

    key: str
    label: str
    f1: dict[str, float]  # our domain name -> F1 %
    misc: str  # a PEER_MISC key
    matching: str  # a PEER_MATCHING key
    source: str
    note: str | None = None

    @property
    def setting(self) -> tuple[str, bool]:
        """Our (mode, misc) closest to this row's convention: the only one it is compared in."""
        return PEER_MATCHING[self.matching][0], PEER_MISC[self.misc][0]

    def convention(self) -> str:
        text = f"{PEER_MISC[self.misc][1]}; {PEER_MATCHING[self.matching][1]}"
        return f"{self.source}: {text}" + (f" ({self.note})" if self.note else "")


@dataclass
class Paper:
    source: str
    scoring: str
    domains: list[str]
    rows: dict[str, PaperRow]
    peers: dict[str, Peer] = field(default_factory=dict)
    peer_source: str = ""
    peer_notes: list[str] = field(default_factory=list)

    def avg_for(self, row: str, domains: list[str]) -> tuple[float | None, bool]:
        """The paper's Avg. comparable to our mean over ``domains``: the printed Avg when all five
        are present, else the mean of the paper's values for those domains (flag True)."""
        values = self.rows[row].f1
        if not domains or any(d not in self.domains for d in domains):
            return None, False
        if sorted(domains) == sorted(self.domains) and "avg" in values:
            return values["avg"], False
        return mean(values[d] for d in domains), True


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProjectError(f"{path}: invalid YAML ({exc})") from None


def load_paper(path: Path) -> Paper:
    """Read ``recipes/paper_results.yaml``; a malformed file is a one-line error, not a KeyError."""
    data = _read_yaml(path)
    try:
        domains = [str(d) for d in data["domains"]]
        rows = {key: PaperRow(key, str(row["label"]),
                              {str(k): float(v) for k, v in row["f1"].items()},
                              row.get("avg_mismatch"), str(row["source"]))
                for key, row in data["main"].items()}
        paper = Paper(str(data["source"]), str(data["scoring"]), domains, rows)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProjectError(f"{path}: not a paper results file ({exc!r})") from None
    for row in rows.values():
        missing = [d for d in domains if d not in row.f1]
        if missing:
            raise ProjectError(f"{path}: row {row.key!r} lacks {missing}")
    if data.get("peers") is not None:
        paper.peer_source, paper.peer_notes, paper.peers = _load_peers(path, data["peers"])
    return paper


def _load_peers(path: Path, data: Any) -> tuple[str, list[str], dict[str, Peer]]:
    """The ``peers`` table: columns mapped to our domain names, each row with its convention."""
    problems: list[str] = []
    peers: dict[str, Peer] = {}
    try:
        columns = {str(k): str(v) for k, v in data["columns"].items()}
        for key, row in data["rows"].items():
            unknown = [c for c in row["f1"] if c not in columns]
            misc, matching = str(row["misc"]), str(row["matching"])
            if unknown:
                problems.append(f"peers.rows.{key}: columns {unknown} are not in peers.columns")
            if misc not in PEER_MISC:
                problems.append(f"peers.rows.{key}.misc: {misc!r} is not one of {list(PEER_MISC)}")
            if matching not in PEER_MATCHING:
                problems.append(f"peers.rows.{key}.matching: {matching!r} is not one of "
                                f"{list(PEER_MATCHING)}")
            peers[str(key)] = Peer(str(key), str(row["label"]),
                                   {columns.get(c, c): float(v) for c, v in row["f1"].items()},
                                   misc, matching, str(row["source"]),
                                   str(row["note"]) if row.get("note") else None)
        source, notes = str(data["source"]), [str(n) for n in data.get("notes") or []]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProjectError(f"{path}: 'peers' is not a peers table ({exc!r})") from None
    if problems:
        raise ProjectError(f"{path}: " + "; ".join(problems))
    return source, notes, peers


# --------------------------------------------------------------------------- the run


@dataclass
class DomainInfo:
    name: str
    predictions: int  # prediction records in the file
    scored: int  # gold sentences with a prediction record: what was scored
    gold: int  # sentences in the gold file
    full_split: int  # published test-split size (CrossNER, MIT), else the gold file's size
    stats: dict[str, Any] | None = None
    definition: Domain | None = None  # mappings/domains/<name>.yaml, when there is one
    not_zero_shot: str | None = None  # why this domain's scores are not zero-shot


def domain_definition(name: str) -> Domain | None:
    try:
        return load_domain(name)
    except MappingError:
        return None


def not_zero_shot_reason(definition: Domain | None) -> str | None:
    """The domain file's ``not_zero_shot`` reason, e.g. MIT: the public anchor was trained on
    its train split (IEPile's mix holds it)."""
    if definition is None or definition.source is None:
        return None
    reason = read_yaml_mapping(definition.source).get("not_zero_shot")
    return " ".join(str(reason).split()) if reason else None


@dataclass
class RunReport:
    run_dir: Path
    data_dir: Path
    paper: Paper
    paper_row: str
    reports: dict[str, ScoreReport]  # setting name -> report, keyed by domain dir name
    domains: dict[str, DomainInfo]
    config: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)  # reasons these are NOT paper numbers
    notes: list[str] = field(default_factory=list)  # worth knowing, not disqualifying
    # per-stage diagnostics by domain (eval/diagnostics.py); only for pipeline runs
    diagnostics: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_record: dict[str, Any] = field(default_factory=dict)  # RUN/run.json, when there is one
    definitions: str | None = None  # which label definitions the calibrator was shown

    @property
    def names(self) -> list[str]:
        return list(self.domains)

    @property
    def avg_names(self) -> list[str]:
        """The domains of the Avg. row: the zero-shot ones, when the run has any (a domain with a
        ``not_zero_shot`` reason never enters the headline average), else all."""
        return [n for n, i in self.domains.items() if not i.not_zero_shot] or self.names

    def our_avg(self, setting: str) -> float:
        """Our Avg. F1 (fraction) in ``setting``: the mean over :attr:`avg_names`."""
        report = self.reports[setting]
        return mean(report.domains[n].total.f1 for n in self.avg_names)

    def shown(self, domain: str) -> str:
        """A domain's name as tables show it: marked when its scores are not zero-shot."""
        marked = self.domains[domain].not_zero_shot if domain in self.domains else None
        return f"{domain} {NOT_ZERO_SHOT_MARK}" if marked else domain

    def paper_f1(self, domain: str, row: str | None = None) -> float | None:
        if domain == AVG:
            return self.paper.avg_for(row or self.paper_row, self.avg_names)[0]
        return self.paper.rows[row or self.paper_row].f1.get(domain)


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def model_warnings(config: dict[str, Any] | None) -> tuple[list[str], list[str]]:
    """(warnings, notes) from the run's saved config: tiny/fake/unknown models, ablations, limit."""
    if config is None:
        return ["no config.yaml in the run dir: not a SAM-NER pipeline run "
                "(e.g. the train-split gazetteer baseline)"], []
    warnings, notes = [], []
    model = str(config.get("model") or "")
    engine = config.get("engine") or {}
    key = _normalise(model)
    if engine.get("backend") == "fake":
        warnings.append("engine.backend is 'fake' (test backend)")
    if "tiny" in key or not key:
        warnings.append(f"model {model or '(none)'!r} is a tiny/CPU test model")
    elif not ("llama38b" in key or "qwen257b" in key):
        warnings.append(f"model {model!r} is not one of the paper's backbones "
                        "(Llama3-8B-Instruct, Qwen2.5-7B-Instruct)")
    if config.get("limit"):
        warnings.append(f"limit={config['limit']}: only the first sentences of each domain ran")
    rule = (config.get("consensus") or {}).get("rule", "ccr")
    if rule != "ccr":
        notes.append(f"consensus.rule={rule!r}, not the paper's CCR (paper Table 3 'w/o CCR' "
                     "for rule 'union')")
    if config.get("typing") == "direct":
        notes.append("typing: direct - the paper's w/o-calibration ablation: a classifier trained "
                     "on IEPile's own type names picks the target label, no calibration (paper "
                     "Table 6: Avg 56.2 w/o calibration)")
    elif not (config.get("calibration") or {}).get("enabled", True):
        notes.append("calibration disabled: archetypes mapped to labels by each domain's "
                     "archetype_fallback lookup (ABLATION=archetype-lookup); NOT the paper's "
                     "w/o-calibration ablation, and no paper number belongs beside it")
    for name, extractor in (config.get("extractors") or {}).items():
        if not (extractor or {}).get("enabled", True):
            notes.append(f"extractor {name} disabled (an ablation, see paper Table 6)")
    return warnings, notes


def definitions_caveats(run_record: dict[str, Any] | None) -> tuple[list[str], str | None]:
    """(warnings, summary line) from ``run.json``'s ``definitions``: a run whose definitions are
    not the paper's setting (the train-examples variant, a file of the user's such as the
    authors'), or whose definitions quote gold mentions of a scored domain, says so first."""
    record = (run_record or {}).get("definitions")
    if not isinstance(record, dict):
        return [], None
    warnings = []
    if not record.get("paper_setting", True):
        warnings.append(f"{record.get('setting_means')} ({record.get('source')})")
    for domain, info in (record.get("domains") or {}).items():
        quoted = list((info or {}).get("gold_strings_quoted") or [])
        if quoted:
            shown = ", ".join(repr(q) for q in quoted[:5]) + (", ..." if len(quoted) > 5 else "")
            warnings.append(f"the definitions shown for {domain} quote {len(quoted)} gold "
                            f"mention(s) of its test file ({shown}): not zero-shot")
    origins = {d: (i or {}).get("from") for d, i in (record.get("domains") or {}).items()}
    defaults = sorted(d for d, o in origins.items() if o == "default")
    summary = f"definitions: {record.get('source')} (setting `{record.get('setting')}`)"
    if defaults and len(defaults) < len(origins):
        summary += f"; each domain file's own for {', '.join(defaults)}"
    return warnings, summary


def paper_row_for(config: dict[str, Any] | None) -> str:
    """Compare with the paper's row for the run's backbone; Llama3-8B (the main one) otherwise."""
    key = _normalise(str((config or {}).get("model") or ""))
    return QWEN_ROW if "qwen" in key else LLAMA_ROW


def _read_json(path: Path) -> dict[str, Any] | None:
    """A run file's JSON object, or None when the run has no such file."""
    return read_json_mapping(path) if path.exists() else None


def build(run_dir: Path, data_dir: Path, paper_path: Path = DEFAULT_PAPER) -> RunReport:
    """Score every domain of ``run_dir`` in the four settings and collect the run's caveats."""
    if not run_dir.is_dir():
        raise ScoreError(f"run dir {run_dir} does not exist")
    paper = load_paper(paper_path)
    config_path = run_dir / "config.yaml"
    config = None
    if config_path.exists():
        loaded = _read_yaml(config_path)
        config = loaded if isinstance(loaded, dict) else {}
    gold_paths, pred_paths = run_files(run_dir, data_dir)

    per_domain: dict[str, tuple[list[Sentence], dict[str, list[Prediction]]]] = {}
    infos: dict[str, DomainInfo] = {}
    for gold_path, pred_path in zip(gold_paths, pred_paths, strict=True):
        name = pred_path.parent.name
        gold = load_gold([gold_path])
        preds = load_predictions([pred_path])
        if not preds:
            raise ScoreError(f"{pred_path} holds no prediction records")
        scored = run_scope(gold, preds)  # the one rule, shared with `eval.score --run`
        full = FULL_SPLITS.get(name, len(gold))
        definition = domain_definition(name)
        infos[name] = DomainInfo(name, len(preds), len(scored), len(gold), full,
                                 _read_json(pred_path.parent / "stats.json"), definition,
                                 not_zero_shot_reason(definition))
        per_domain[name] = (scored, preds)

    reports: dict[str, ScoreReport] = {}
    for mode, misc in SETTINGS:
        domains = {}
        for name, (scored, preds) in per_domain.items():
            result = score(scored, preds, mode, misc)  # unknown prediction ids raise here
            if len(result.domains) != 1:
                raise ScoreError(f"gold for {name} mixes domains {sorted(result.domains)}")
            domains[name] = next(iter(result.domains.values()))
        reports[setting_name(mode, misc)] = ScoreReport(mode, misc, domains)

    warnings, notes = model_warnings(config)
    run_record = _read_json(run_dir / "run.json")
    definition_warnings, definitions_line = definitions_caveats(run_record)
    partial = [i for i in infos.values() if i.scored < i.full_split]
    if partial:
        shown = ", ".join(f"{i.name} {i.scored}/{i.full_split}" for i in partial)
        warnings.insert(0, f"fewer sentences scored than the full test split ({shown})")
    warnings = definition_warnings + warnings  # what the model was shown comes first
    missing = [d for d in paper.domains if d not in infos]
    if missing and any(d in paper.domains for d in infos):
        notes.append(f"domains not in this run: {', '.join(missing)}; the paper's Avg. beside "
                     "ours is the mean of its values for the domains present")
    diags = diagnostics(run_dir, {name: scored_preds for name, scored_preds in per_domain.items()
                                  if (run_dir / name / "stage1_discovery.jsonl").is_file()})
    return RunReport(run_dir, data_dir, paper, paper_row_for(config), reports, infos, config,
                     warnings, notes, diags, run_record or {}, definitions_line)


# --------------------------------------------------------------------------- outputs


def _pct(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.1f}"


def md_table(header: list[str], rows: list[list[str]], align: str = "") -> str:
    """A Markdown table; ``align`` is one l/r per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    aligns = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(aligns) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def setting_table(r: RunReport, name: str) -> str:
    """One setting: domains + Avg., our P/R/F1, the paper's F1 and the difference."""
    report = r.reports[name]
    label = r.paper.rows[r.paper_row].label
    rows = []
    for domain, d in report.domains.items():
        paper = r.paper_f1(domain)
        ours = d.total.f1 * 100
        delta = "–" if paper is None else f"{ours - paper:+.1f}"
        rows.append([r.shown(domain), str(d.sentences), _pct(d.total.precision * 100),
                     _pct(d.total.recall * 100), f"**{ours:.1f}**", _pct(paper), delta])
    paper_avg, subset = r.paper.avg_for(r.paper_row, r.avg_names)
    ours_avg = r.our_avg(name) * 100
    delta = "–" if paper_avg is None else f"{ours_avg - paper_avg:+.1f}"
    rows.append([AVG, "", "", "", f"**{ours_avg:.1f}**",
                 _pct(paper_avg) + ("†" if subset else ""), delta])
    if r.avg_names != r.names:
        rows.append([f"Avg. (all {len(r.names)})", "", "", "", f"{report.average_f1 * 100:.1f}",
                     "–", "–"])
    return md_table(["domain", "sentences", "P", "R", "F1", f"paper F1 ({label})", "Δ F1"], rows)


def number_time_labels(definition: Domain | None) -> set[str]:
    """Labels that name a number/time type IEPile's projection drops (``dropped_types``): no
    archetype stands for them, so only calibration can predict them (MIT's year, Price, ...)."""
    if definition is None:
        return set()
    dropped = {t.lower() for t in load_archetypes().dropped_types}
    return {tag for tag, label in definition.labels.items()
            if {tag.lower(), tag.lower().replace("_", " "), label.name.lower()} & dropped}


def per_type_table(r: RunReport, domain: str, setting: str) -> str:
    """One domain's labels in ``setting``: gold spans (TP + FN), P/R/F1, counts, and a note for
    number/time labels; labels in the domain's order, every one shown (zeros included)."""
    scores = r.reports[setting].domains[domain].per_type
    definition = r.domains[domain].definition
    labels = definition.labels if definition else {}
    numeric = number_time_labels(definition)
    misc = r.reports[setting].misc
    order = [t for t in labels if misc or t != "misc"]
    order += sorted(t for t in scores if t not in labels)
    rows = []
    for tag in order:
        c = scores.get(tag) or Counts()
        name = labels[tag].name if tag in labels else ""
        note = ("number/time: no archetype (IEPile's projection drops it); only calibration "
                "can predict it") if tag in numeric else ""
        rows.append([tag, name if name != tag else "", str(c.tp + c.fn), _pct(c.precision * 100),
                     _pct(c.recall * 100), _pct(c.f1 * 100), str(c.tp), str(c.fp), str(c.fn),
                     note])
    return md_table(["type", "name", "gold", "P", "R", "F1", "TP", "FP", "FN", "note"], rows,
                    "llrrrrrrrl")


def peer_columns(r: RunReport) -> list[str]:
    """The run's domains that some peer has a number for, in the run's order."""
    return [n for n in r.names if any(n in p.f1 for p in r.paper.peers.values())]


def peer_groups(r: RunReport) -> list[tuple[str, list[Peer]]]:
    """(setting name, peers compared in it), settings in :data:`SETTINGS` order; a peer with no
    number for any domain of the run is left out."""
    columns = peer_columns(r)
    groups = []
    for mode, misc in SETTINGS:
        peers = [p for p in r.paper.peers.values()
                 if p.setting == (mode, misc) and any(c in p.f1 for c in columns)]
        if peers:
            groups.append((setting_name(mode, misc), peers))
    return groups


def peers_markdown(r: RunReport) -> list[str]:
    """The peers section: one table per setting, ours first, each peer's convention below."""
    groups = peer_groups(r)
    if not groups:
        return []
    columns = peer_columns(r)
    lines = ["## Peers (published F1 %), each beside ours in the setting closest to its "
             "scoring convention", "",
             f"Source: {r.paper.peer_source}. A peer is compared only in one setting, chosen "
             "from its convention: misc dropped → our misc-off, kept → misc-on; strict entity "
             "match → span mode; string-set or lenient match → string mode (lenient matching "
             "is looser than any of our modes, so string mode still favours the peer).", ""]
    for setting, peers in groups:
        report = r.reports[setting]
        rows = [["**ours** (this run)",
                 *(f"**{report.domains[c].total.f1 * 100:.1f}**" for c in columns)]]
        rows += [[p.label, *(_pct(p.f1.get(c)) for c in columns)] for p in peers]
        lines += [f"### compared in {setting}", "",
                  md_table(["system", *(r.shown(c) for c in columns)], rows), ""]
        lines += [f"- {p.label}: {p.convention()}" for p in peers] + [""]
    lines += [f"- note: {n}" for n in r.paper.peer_notes]
    return lines + ([""] if r.paper.peer_notes else [])


def stats_table(info: DomainInfo) -> str:
    """Per-stage request, status and other counters of ``RUN/<domain>/stats.json``."""
    stages = (info.stats or {}).get("stages") or {}
    rows = []
    for stage, counters in stages.items():
        counters = counters if isinstance(counters, dict) else {}
        status = ", ".join(f"{k.removeprefix('status_')} {v}" for k, v in sorted(counters.items())
                           if k.startswith("status_"))
        other = ", ".join(f"{k} {v}" for k, v in sorted(counters.items())
                          if k != "requests" and not k.startswith("status_"))
        requests = counters.get("requests")
        rows.append([stage, "–" if requests is None else str(requests), status or "–",
                     other or "–"])
    return md_table(["stage", "requests", "status", "other counters"], rows, "lrll")


# A stage's parse statuses (core/parsing.py Status) as the report names them.
ANSWER_COLUMNS = (("status_ok", "parsed as is"), ("status_repaired", "needed JSON repair"),
                  ("status_empty", "empty"), ("status_invalid", "unusable"),
                  ("truncated", "cut at max_tokens"))


def answer_quality(r: RunReport) -> list[dict[str, Any]]:
    """Per domain and LLM stage: how many answers parsed as is, needed the lenient JSON repair
    (the authors' strict ``json.loads`` would have lost them), were empty or unusable, or were cut
    at max_tokens (greedy decoding without the authors' repetition penalty can loop)."""
    rows = []
    for info in r.domains.values():
        for stage, counters in ((info.stats or {}).get("stages") or {}).items():
            if not isinstance(counters, dict) or "requests" not in counters:
                continue  # not an LLM stage (discovery's consensus, the fallback lookup)
            rows.append({"domain": info.name, "stage": stage, "requests": counters["requests"],
                         **{key: int(counters.get(key, 0)) for key, _ in ANSWER_COLUMNS}})
    return rows


def answer_quality_markdown(r: RunReport) -> list[str]:
    rows = answer_quality(r)
    if not rows:
        return []
    table = md_table(["domain", "stage", "requests", *(name for _, name in ANSWER_COLUMNS)],
                     [[row["domain"], row["stage"], str(row["requests"]),
                       *(str(row[key]) for key, _ in ANSWER_COLUMNS)] for row in rows], "llrrrrrr")
    return ["## Answers per stage: parsed, repaired, cut", "",
            "Our parser repairs malformed JSON (fences, single quotes, a cut-off tail) where the "
            "authors' strict `json.loads` would have lost the answer; answers cut at max_tokens "
            "are often loops (greedy decoding, no repetition penalty). Calibration answers are a "
            "constrained choice and never need repair.", "", table, ""]


def render_markdown(r: RunReport) -> str:
    paper_row = r.paper.rows[r.paper_row]
    lines = ["# SAM-NER evaluation report", ""]
    if r.warnings:
        lines += ["> **WARNING: these are NOT paper numbers.**"]
        lines += [f"> - {w}" for w in r.warnings]
        lines += [""]
    lines += [
        f"- run dir: `{r.run_dir}`; gold: `{r.data_dir}`",
        f"- model: `{(r.config or {}).get('model', '(no config.yaml)')}`",
        f"- scorer: `{SCORER_VERSION}` (eval/score.py); P/R/F1 in %; Avg. = mean of the domain F1s "
        "(the paper's convention, not a pooled micro-F1)",
        f"- paper numbers: {r.paper.source}; row **{paper_row.label}**. The paper scored in the "
        "authors' string-set mode (our `string` mode) with `misc` counted (their calibration "
        "offers misc and their scorer keeps it), so `string` mode with misc is the comparable "
        "table; misc-off and span mode are beside it.",
        *([f"- {r.definitions}"] if r.definitions else []),
        "- sentences scored per domain: " + ", ".join(
            f"{i.name} {i.scored}/{i.full_split}" for i in r.domains.values()),
    ]
    lines += [f"- note: {n}" for n in r.notes]
    if paper_row.avg_mismatch:
        lines += [f"- note: the paper's Avg. for {paper_row.label} is inconsistent: "
                  f"{paper_row.avg_mismatch}"]
    lines += [""]
    for mode, misc in SETTINGS:
        name = setting_name(mode, misc)
        main = (" — main setting (the paper's: string mode, misc kept)"
                if (mode, misc) == SETTINGS[0] else "")
        lines += [f"## mode={mode}, misc={'on' if misc else 'off'}{main}", "",
                  f"`{SCORER_VERSION}` mode={mode} misc={'on' if misc else 'off'}", "",
                  setting_table(r, name), ""]
    if r.paper.avg_for(r.paper_row, r.avg_names)[1]:
        lines += ["† mean of the paper's values for the domains present "
                  "(the paper's Avg. covers all five).", ""]
    marked = [i for i in r.domains.values() if i.not_zero_shot]
    if marked:
        lines += [f"{NOT_ZERO_SHOT_MARK} NOT zero-shot: {i.name}: {i.not_zero_shot}."
                  for i in marked]
        if r.avg_names != r.names:
            lines += [f"Avg. covers the zero-shot domains only ({', '.join(r.avg_names)}); "
                      f"Avg. (all {len(r.names)}) includes the domains marked "
                      f"{NOT_ZERO_SHOT_MARK}."]
        lines += [""]
    main_setting = setting_name(*SETTINGS[0])
    lines += [f"## Per type ({main_setting}, the main setting)", "",
              "`gold` = gold spans (TP + FN) in this mode; number/time labels have no "
              "archetype and are reachable only through calibration (with calibration off, "
              "the ablation, they are never predicted).", ""]
    for domain in r.names:
        lines += [f"### {r.shown(domain)}", "", per_type_table(r, domain, main_setting), ""]
    lines += peers_markdown(r)
    lines += ["## Sentences", "",
              md_table(["domain", "prediction records", "scored", "gold file", "full test split"],
                       [[i.name, str(i.predictions), str(i.scored), str(i.gold),
                         str(i.full_split)] for i in r.domains.values()]), ""]
    covered = [d for d in r.names if d in r.paper.domains] or r.names
    lines += ["## The paper's table (F1 %) and where each row comes from", "",
              md_table(["method", *covered, "Avg."],
                       [[row.label, *(_pct(row.f1.get(d)) for d in covered),
                         _pct(row.f1.get("avg")) + ("‡" if row.avg_mismatch else "")]
                        for row in r.paper.rows.values()]), ""]
    lines += [f"- {row.label}: {row.source}" for row in r.paper.rows.values()] + [""]
    lines += [f"‡ {row.label}: {row.avg_mismatch} (kept as printed)."
              for row in r.paper.rows.values() if row.avg_mismatch]
    lines += [""] if any(row.avg_mismatch for row in r.paper.rows.values()) else []
    if r.diagnostics:
        lines += ["## Where F1 is lost: per-stage diagnostics", "",
                  "Stage 1 as type-agnostic mention strings per sentence (each extractor, then "
                  "the consensus output), against gold mentions of every type; stage 3 as typing "
                  "accuracy on the predicted mentions that are gold mentions. Low mention recall "
                  "after consensus = discovery loses F1; low typing accuracy = typing does.", ""]
        for domain, diag in r.diagnostics.items():
            lines += diagnostics_markdown(domain, diag)
    lines += answer_quality_markdown(r)
    with_stats = [i for i in r.domains.values() if i.stats is not None]
    if with_stats:
        lines += ["## Pipeline stages (stats.json)", ""]
        for info in with_stats:
            lines += [f"### {info.name} ({info.stats.get('sentences', '?')} sentences)", "",
                      stats_table(info), ""]
    return "\n".join(lines)


def csv_rows(r: RunReport) -> list[dict[str, Any]]:
    """One row per (setting, domain) plus an Avg. row per setting (F1 only)."""
    rows: list[dict[str, Any]] = []
    for name, report in r.reports.items():
        base = {"setting": name, "mode": report.mode, "misc": report.misc,
                "scorer_version": report.version}
        for domain, d in report.domains.items():
            c = d.total
            rows.append({**base, "domain": domain, "precision": c.precision * 100,
                         "recall": c.recall * 100, "f1": c.f1 * 100, "tp": c.tp, "fp": c.fp,
                         "fn": c.fn, "not_found": d.not_found, "sentences": d.sentences,
                         "paper_f1": r.paper_f1(domain)})
        rows.append({**base, "domain": AVG, "f1": r.our_avg(name) * 100,
                     "sentences": sum(report.domains[n].sentences for n in r.avg_names),
                     "paper_f1": r.paper_f1(AVG)})
        if r.avg_names != r.names:
            rows.append({**base, "domain": f"Avg. (all {len(r.names)})",
                         "f1": report.average_f1 * 100,
                         "sentences": sum(d.sentences for d in report.domains.values())})
    return rows


def peer_rows(r: RunReport) -> list[dict[str, Any]]:
    """One row per (peer, domain of the run it has a number for), with ours in its setting."""
    rows = []
    for setting, peers in peer_groups(r):
        report = r.reports[setting]
        for p in peers:
            rows += [{"peer": p.key, "label": p.label, "domain": d, "peer_f1": p.f1[d],
                      "our_f1": report.domains[d].total.f1 * 100, "setting": setting,
                      "mode": report.mode, "misc": report.misc, "convention": p.convention()}
                     for d in r.names if d in p.f1]
    return rows


def to_json(r: RunReport) -> dict[str, Any]:
    return {
        "scorer_version": SCORER_VERSION,
        "run_dir": str(r.run_dir),
        "data_dir": str(r.data_dir),
        "model": (r.config or {}).get("model"),
        "not_paper_numbers": bool(r.warnings),
        "warnings": r.warnings,
        "notes": r.notes,
        "definitions": r.run_record.get("definitions"),
        "paper": {"source": r.paper.source, "scoring": r.paper.scoring, "row": r.paper_row,
                  "label": r.paper.rows[r.paper_row].label,
                  "f1": r.paper.rows[r.paper_row].f1},
        "domains": {i.name: {"predictions": i.predictions, "scored": i.scored, "gold": i.gold,
                             "full_split": i.full_split, "stats": i.stats,
                             "zero_shot": not i.not_zero_shot,
                             "not_zero_shot": i.not_zero_shot,
                             "number_time_labels": sorted(number_time_labels(i.definition))}
                    for i in r.domains.values()},
        "avg_domains": r.avg_names,
        "settings": {name: report.to_json() for name, report in r.reports.items()},
        "peers": {"source": r.paper.peer_source, "notes": r.paper.peer_notes,
                  "compared": peer_rows(r)},
        "diagnostics": r.diagnostics,
        "answers": answer_quality(r),
    }


def plot_domain(r: RunReport, domain: str) -> bytes:
    """PNG bytes: our F1 in the four settings beside the paper's rows for ``domain``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values, colors = [], [], []
    for name, report in r.reports.items():
        labels.append(f"ours\n{name}")
        values.append(report.domains[domain].total.f1 * 100)
        colors.append("tab:blue")
    for key in PLOT_ROWS:
        row = r.paper.rows.get(key)
        if row is not None and domain in row.f1:
            labels.append("paper\n" + "\n".join(textwrap.wrap(row.label, 12)))
            values.append(row.f1[domain])
            colors.append("tab:orange" if key in (LLAMA_ROW, QWEN_ROW) else "tab:gray")
    fig, ax = plt.subplots(figsize=(max(6.0, 1.25 * len(labels)), 4.8))
    bars = ax.bar(range(len(labels)), values, color=colors)
    ax.bar_label(bars, labels=[f"{v:.1f}" for v in values], fontsize=8)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylim(0, 100)
    ax.set_ylabel("F1 (%)")
    ax.set_xlabel("paper: authors' string mode, misc kept", fontsize=8)
    info = r.domains[domain]
    corpus = "CrossNER " if domain in EXPECTED_TEST_COUNTS else ""
    title = f"{corpus}{domain}: {info.scored}/{info.full_split} sentences"
    if info.not_zero_shot:
        title += " (NOT zero-shot: anchor trained on its train split)"
    if r.warnings:
        title += " — NOT paper numbers"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def write(r: RunReport, out: Path) -> Path:
    """Write report.md, scores.csv, scores.json and the plots; returns report.md's path."""
    out.mkdir(parents=True, exist_ok=True)
    report_md = out / "report.md"
    write_text_atomic(report_md, render_markdown(r) + "\n")
    with atomic_writer(out / "scores.csv") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(csv_rows(r))
    with atomic_writer(out / "peers.csv") as handle:
        writer = csv.DictWriter(handle, fieldnames=PEER_CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(peer_rows(r))
    write_text_atomic(out / "scores.json", json.dumps(to_json(r), indent=2) + "\n")
    for domain in r.domains:
        png = plot_domain(r, domain)
        with atomic_writer(out / f"plot_{domain}.png", "wb") as handle:
            handle.write(png)
    if r.diagnostics:
        with atomic_writer(out / "diagnostics.csv") as handle:
            writer = csv.DictWriter(handle, fieldnames=DIAGNOSTICS_CSV_FIELDS,
                                    lineterminator="\n")
            writer.writeheader()
            writer.writerows(diagnostics_csv_rows(r.diagnostics))
        for domain, diag in r.diagnostics.items():
            with atomic_writer(out / f"diagnostics_{domain}.png", "wb") as handle:
                handle.write(diagnostics_plot(domain, diag))
    return report_md


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--run", type=Path, required=True, help="run dir with <domain>/predictions")
    parser.add_argument("--data", type=Path, default=Path("data"),
                        help="data root, when the run's run.json names no gold: gold is "
                             "DATA/<domain>/test.jsonl or the domain's `sentences` under DATA")
    parser.add_argument("--paper", type=Path, default=DEFAULT_PAPER,
                        help="the paper's numbers (recipes/paper_results.yaml)")
    parser.add_argument("--out", type=Path, help="output dir (default RUN/report)")
    args = parser.parse_args(argv)

    def body() -> None:
        r = build(args.run, args.data, args.paper)
        path = write(r, args.out or args.run / "report")
        print(path)
        if r.warnings:
            print("WARNING: NOT paper numbers: " + "; ".join(r.warnings))
        mode, misc = SETTINGS[0]
        print(f"{SCORER_VERSION}  mode={mode}  misc={'on' if misc else 'off'}  (F1 in %)")
        print(setting_table(r, setting_name(mode, misc)))

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
