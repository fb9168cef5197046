"""The report as Markdown: one table per setting beside the paper's row, per-type tables, the
peers each in its closest setting, and the run's caveats, answers and stage counters.

Rendering only: every number comes from a built :class:`eval.report_build.RunReport`, and the
settings are its reports' (so a newly registered score mode gets its tables here too).
"""

from __future__ import annotations

import math
from typing import Any

from eval.confusion import MISSED, RULE, SPURIOUS
from eval.diagnostics import markdown as diagnostics_markdown
from eval.paper import Peer
from eval.report_build import (
    AVG,
    NOT_ZERO_SHOT_MARK,
    DomainInfo,
    RunReport,
    number_time_labels,
)
from eval.score import SCORER_VERSION, Counts


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


def confusion_table(r: RunReport, domain: str) -> list[str]:
    """One domain's confusion matrix (main setting): gold rows + spurious, predicted columns +
    missed; zeros as "·" so the off-diagonal counts stand out, the diagonal in bold."""
    c = r.confusion.get(domain)
    if c is None:
        return []
    if not c.labels:
        return ["No gold or predicted mention: no confusion matrix.", ""]
    rows = [[f"*{gold}*" if gold == SPURIOUS else gold,
             *(("·" if n == 0 else f"**{n}**" if gold == pred else str(n))
               for pred, n in zip(c.columns, counts, strict=True))]
            for gold, counts in zip(c.rows, c.matrix, strict=True)]
    header = ["gold \\ predicted", *(f"*{p}*" if p == MISSED else p for p in c.columns)]
    return [f"Confusion at the right boundaries ([plot](confusion_{domain}.png)):", "",
            md_table(header, rows), ""]


def peer_columns(r: RunReport) -> list[str]:
    """The run's domains that some peer has a number for, in the run's order."""
    return [n for n in r.names if any(n in p.f1 for p in r.paper.peers.values())]


def peer_groups(r: RunReport) -> list[tuple[str, list[Peer]]]:
    """(setting name, peers compared in it), settings in the report's order; a peer with no
    number for any domain of the run is left out."""
    columns = peer_columns(r)
    groups = []
    for name, report in r.reports.items():
        peers = [p for p in r.paper.peers.values()
                 if p.setting == (report.mode, report.misc) and any(c in p.f1 for c in columns)]
        if peers:
            groups.append((name, peers))
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
        f"- sentence by sentence ({r.main_setting}): [errors.html](errors.html), gold above the "
        "prediction, false positives, false negatives and wrong types marked, filterable by "
        "domain and label",
    ]
    lines += [f"- note: {n}" for n in r.notes]
    if paper_row.avg_mismatch:
        lines += [f"- note: the paper's Avg. for {paper_row.label} is inconsistent: "
                  f"{paper_row.avg_mismatch}"]
    lines += [""]
    for name, report in r.reports.items():
        mode, misc = report.mode, "on" if report.misc else "off"
        main = (f" — main setting (the paper's: {mode} mode, misc kept)"
                if name == r.main_setting else "")
        lines += [f"## mode={mode}, misc={misc}{main}", "",
                  f"`{SCORER_VERSION}` mode={mode} misc={misc}", "", setting_table(r, name), ""]
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
    main_setting = r.main_setting
    lines += [f"## Per type ({main_setting}, the main setting)", "",
              "`gold` = gold spans (TP + FN) in this mode; number/time labels have no "
              "archetype and are reachable only through calibration (with calibration off, "
              "the ablation, they are never predicted).", ""]
    if r.confusion:
        lines += ["Under each, the confusion matrix: gold label (row) against predicted label "
                  "(column) for the mentions with the right boundaries, plus *missed* (gold, "
                  "nothing predicted at its boundaries) and *spurious* (predicted, no gold at its "
                  f"boundaries); {RULE}", ""]
    for domain in r.names:
        lines += [f"### {r.shown(domain)}", "", per_type_table(r, domain, main_setting), ""]
        lines += confusion_table(r, domain)
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


