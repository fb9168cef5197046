"""The report's content, before any rendering: one run scored in every setting, with its caveats.

A setting is a registered score mode (:data:`eval.score.MODES`) with misc kept or dropped; the
settings are read from the registry when a report is built, so a mode registered anywhere shows
up in ``make eval``'s tables. The paper's mode comes first (misc on is the main setting, the
paper's), then the others in registration order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

from core.backbones import paper_row_for
from core.io import read_json_mapping, read_yaml_mapping
from core.mappings import Domain, MappingError, load_archetypes, load_domain
from core.records import Sentence
from core.sources import published_test_counts
from eval.confusion import Confusion, confusion
from eval.diagnostics import diagnostics
from eval.paper import DEFAULT_PAPER, Paper, load_paper
from eval.report_caveats import definitions_caveats, model_warnings
from eval.score import (
    MODES,
    Prediction,
    ScoreError,
    ScoreReport,
    load_gold,
    load_predictions,
    run_files,
    run_scope,
    score,
)

AVG = "Avg."
NOT_ZERO_SHOT_MARK = "¹"


def settings() -> list[tuple[str, bool]]:
    """Every (mode, misc) the report scores, the main setting (the paper's mode, misc on) first,
    then the main mode with misc off, then each other registered mode, misc on then off."""
    modes = sorted(MODES.values(), key=lambda m: not m.main)  # stable: registration order kept
    return [(m.name, misc) for m in modes for misc in (True, False)]


def setting_name(mode: str, misc: bool) -> str:
    return f"{mode}/misc-{'on' if misc else 'off'}"


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


def number_time_labels(definition: Domain | None) -> set[str]:
    """Labels that name a number/time type IEPile's projection drops (``dropped_types``): no
    archetype stands for them, so only calibration can predict them (MIT's year, Price, ...)."""
    if definition is None:
        return set()
    dropped = {t.lower() for t in load_archetypes().dropped_types}
    return {tag for tag, label in definition.labels.items()
            if {tag.lower(), tag.lower().replace("_", " "), label.name.lower()} & dropped}


Scored = dict[str, tuple[list[Sentence], dict[str, list[Prediction]]]]


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
    # the main setting's confusion matrix per domain (eval/confusion.py)
    confusion: dict[str, Confusion] = field(default_factory=dict)
    # per domain: the scored gold sentences and the predictions (for errors.html)
    scored: Scored = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.domains)

    @property
    def avg_names(self) -> list[str]:
        """The domains of the Avg. row: the zero-shot ones, when the run has any (a domain with a
        ``not_zero_shot`` reason never enters the headline average), else all."""
        return [n for n, i in self.domains.items() if not i.not_zero_shot] or self.names

    @property
    def main_setting(self) -> str:
        """The setting printed first and compared with the paper: its first report's."""
        return next(iter(self.reports))

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


def _collect(run_dir: Path, data_dir: Path) -> tuple[Scored, dict[str, DomainInfo]]:
    """Each domain's scored gold sentences and predictions, and what the report says of it."""
    full_splits = {name: n for name, (n, _) in published_test_counts().items()}
    per_domain: Scored = {}
    infos: dict[str, DomainInfo] = {}
    for gold_path, pred_path in zip(*run_files(run_dir, data_dir), strict=True):
        name = pred_path.parent.name
        gold = load_gold([gold_path])
        preds = load_predictions([pred_path])
        if not preds:
            raise ScoreError(f"{pred_path} holds no prediction records")
        scored = run_scope(gold, preds)  # the one rule, shared with `eval.score --run`
        stats_path = pred_path.parent / "stats.json"
        definition = domain_definition(name)
        infos[name] = DomainInfo(name, len(preds), len(scored), len(gold),
                                 full_splits.get(name, len(gold)),
                                 read_json_mapping(stats_path) if stats_path.exists() else None,
                                 definition, not_zero_shot_reason(definition))
        per_domain[name] = (scored, preds)
    return per_domain, infos


def _score_all(per_domain: Scored) -> dict[str, ScoreReport]:
    """One report per setting, each keyed by domain dir name."""
    reports: dict[str, ScoreReport] = {}
    for mode, misc in settings():
        domains = {}
        for name, (scored, preds) in per_domain.items():
            result = score(scored, preds, mode, misc)  # unknown prediction ids raise here
            if len(result.domains) != 1:
                raise ScoreError(f"gold for {name} mixes domains {sorted(result.domains)}")
            domains[name] = next(iter(result.domains.values()))
        reports[setting_name(mode, misc)] = ScoreReport(mode, misc, domains)
    return reports


def build(run_dir: Path, data_dir: Path, paper_path: Path = DEFAULT_PAPER) -> RunReport:
    """Score every domain of ``run_dir`` in every setting and collect the run's caveats."""
    if not run_dir.is_dir():
        raise ScoreError(f"run dir {run_dir} does not exist")
    paper = load_paper(paper_path)
    config_path, record_path = run_dir / "config.yaml", run_dir / "run.json"
    config = read_yaml_mapping(config_path) if config_path.exists() else None
    per_domain, infos = _collect(run_dir, data_dir)
    reports = _score_all(per_domain)

    warnings, notes = model_warnings(config)
    run_record = read_json_mapping(record_path) if record_path.exists() else None
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
    row = paper_row_for(str((config or {}).get("model") or ""))
    main = next(iter(reports.values()))
    matrices = {name: confusion(scored, preds, main.mode, main.misc,
                                list(infos[name].definition.labels) if infos[name].definition
                                else ())
                for name, (scored, preds) in per_domain.items()}
    return RunReport(run_dir, data_dir, paper, row, reports, infos, config, warnings, notes,
                     diags, run_record or {}, definitions_line, matrices, per_domain)
