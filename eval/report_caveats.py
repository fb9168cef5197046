"""What a run's own files say about its numbers: why they are NOT paper numbers, what is worth
knowing. Read from the saved ``config.yaml`` (model, backend, limit, ablations) and ``run.json``
(the label definitions the calibrator was shown), so a table is never read without its caveats.
"""

from __future__ import annotations

from typing import Any

from core.backbones import BACKBONES, backbone_of, normalise
from eval.config import CalibrationConfig, ConsensusConfig, ExtractorConfig

PAPER_RULE = "ccr"  # the paper's consensus rule (CCR); any other rule is an ablation


def model_warnings(config: dict[str, Any] | None) -> tuple[list[str], list[str]]:
    """(warnings, notes) from the run's saved config: tiny/fake/unknown models, ablations, limit.
    A key the config lacks takes :mod:`eval.config`'s default, as the run itself did."""
    if config is None:
        return ["no config.yaml in the run dir: not a SAM-NER pipeline run "
                "(e.g. the train-split gazetteer baseline)"], []
    warnings, notes = [], []
    model = str(config.get("model") or "")
    engine = config.get("engine") or {}
    key = normalise(model)
    if engine.get("backend") == "fake":
        warnings.append("engine.backend is 'fake' (test backend)")
    if "tiny" in key or not key:
        warnings.append(f"model {model or '(none)'!r} is a tiny/CPU test model")
    elif backbone_of(model) is None:
        names = ", ".join(b.name for b in BACKBONES.values())
        warnings.append(f"model {model!r} is not one of the paper's backbones ({names})")
    if config.get("limit"):
        warnings.append(f"limit={config['limit']}: only the first sentences of each domain ran")
    rule = (config.get("consensus") or {}).get("rule", ConsensusConfig.rule)
    if rule != PAPER_RULE:
        notes.append(f"consensus.rule={rule!r}, not the paper's CCR (paper Table 3 'w/o CCR' "
                     "for rule 'union')")
    if config.get("typing") == "direct":
        notes.append("typing: direct - the paper's w/o-calibration ablation: a classifier trained "
                     "on IEPile's own type names picks the target label, no calibration (paper "
                     "Table 6: Avg 56.2 w/o calibration)")
    elif not (config.get("calibration") or {}).get("enabled", CalibrationConfig.enabled):
        notes.append("calibration disabled: archetypes mapped to labels by each domain's "
                     "archetype_fallback lookup (ABLATION=archetype-lookup); NOT the paper's "
                     "w/o-calibration ablation, and no paper number belongs beside it")
    for name, extractor in (config.get("extractors") or {}).items():
        if not (extractor or {}).get("enabled", ExtractorConfig.enabled):
            notes.append(f"extractor {name} disabled (an ablation, see paper Table 6)")
    return warnings, notes


def definitions_caveats(run_record: dict[str, Any] | None) -> tuple[list[str], str | None]:
    """(warnings, summary line) from ``run.json``'s ``definitions`` and ``domains``: a run whose
    definitions are not the paper's setting (the train-examples variant, a file of the user's
    such as the authors', a domain file refined by ``make refine``), or whose definitions quote
    gold mentions of a scored domain, says so first."""
    warnings = []
    for domain, covered in ((run_record or {}).get("domains") or {}).items():
        refined = (covered or {}).get("refined") if isinstance(covered, dict) else None
        if isinstance(refined, dict):  # a domain file written by make refine (eval/refine.py)
            warnings.append(f"{domain}: definitions refined by make refine ({refined.get('run')}"
                            f", round {refined.get('round')}, pilot {refined.get('pilot')}): "
                            "beyond the paper, not its setting")
    record = (run_record or {}).get("definitions")
    if not isinstance(record, dict):
        return warnings, None
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
