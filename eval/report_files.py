"""The report's files: ``report.md``, ``scores.csv``, ``peers.csv``, ``scores.json``, the plots and
the diagnostics, each written atomically into the output dir (see :mod:`eval.report`)."""

from __future__ import annotations

import csv
import io
import json
import textwrap
from pathlib import Path
from typing import Any

from core.backbones import BACKBONES
from core.io import atomic_writer, write_text_atomic
from core.sources import dataset_sources
from eval.diagnostics import CSV_FIELDS as DIAGNOSTICS_CSV_FIELDS
from eval.diagnostics import csv_rows as diagnostics_csv_rows
from eval.diagnostics import plot as diagnostics_plot
from eval.report_build import AVG, RunReport, number_time_labels
from eval.report_render import answer_quality, peer_groups, render_markdown
from eval.score import SCORER_VERSION

# Paper rows drawn in the plots beside ours after the SAM-NER backbones' (core.backbones): three
# baselines.
PLOT_BASELINES = ("gliner_large", "uniner_13b", "iepile_llama3_8b")
CSV_FIELDS = ("setting", "mode", "misc", "domain", "precision", "recall", "f1", "tp", "fp", "fn",
              "not_found", "sentences", "paper_f1", "scorer_version")
PEER_CSV_FIELDS = ("peer", "label", "domain", "peer_f1", "our_f1", "setting", "mode", "misc",
                   "convention")

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
    """PNG bytes: our F1 in every setting beside the paper's rows for ``domain``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values, colors = [], [], []
    for name, report in r.reports.items():
        labels.append(f"ours\n{name}")
        values.append(report.domains[domain].total.f1 * 100)
        colors.append("tab:blue")
    backbone_rows = [b.paper_row for b in BACKBONES.values()]
    for key in (*backbone_rows, *PLOT_BASELINES):
        row = r.paper.rows.get(key)
        if row is not None and domain in row.f1:
            labels.append("paper\n" + "\n".join(textwrap.wrap(row.label, 12)))
            values.append(row.f1[domain])
            colors.append("tab:orange" if key in backbone_rows else "tab:gray")
    fig, ax = plt.subplots(figsize=(max(6.0, 1.25 * len(labels)), 4.8))
    bars = ax.bar(range(len(labels)), values, color=colors)
    ax.bar_label(bars, labels=[f"{v:.1f}" for v in values], fontsize=8)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylim(0, 100)
    ax.set_ylabel("F1 (%)")
    ax.set_xlabel("paper: authors' string mode, misc kept", fontsize=8)
    info = r.domains[domain]
    sources = dataset_sources()
    crossner = domain in sources and sources[domain].dataset == "crossner"
    corpus = "CrossNER " if crossner else ""
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


