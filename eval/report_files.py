"""The report's files: ``report.md``, ``scores.csv``, ``peers.csv``, ``scores.json``, the plots,
the diagnostics, the confusion matrices and ``errors.html``, each written atomically into the
output dir (see :mod:`eval.report`)."""

from __future__ import annotations

import csv
import io
import json
import textwrap
from html import escape
from pathlib import Path
from typing import Any

from core.backbones import BACKBONES
from core.io import atomic_writer, write_text_atomic
from core.sources import dataset_sources
from eval.confusion import RULE, Confusion
from eval.diagnostics import CSV_FIELDS as DIAGNOSTICS_CSV_FIELDS
from eval.diagnostics import csv_rows as diagnostics_csv_rows
from eval.diagnostics import plot as diagnostics_plot
from eval.html_view import evaluation_items, evaluation_page
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
        "confusion": {"setting": r.main_setting, "rule": RULE,
                      "domains": {name: c.to_json() for name, c in r.confusion.items()}},
    }


def _figure_png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


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
    return _figure_png(fig)


def plot_confusion(r: RunReport, domain: str, c: Confusion) -> bytes:
    """PNG bytes: ``c`` drawn by scikit-learn's ConfusionMatrixDisplay, gold rows (+ spurious)
    against predicted columns (+ missed). Colour on a square-root scale, zeros blank: the
    diagonal dwarfs the errors on a linear one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import PowerNorm
    from sklearn.metrics import ConfusionMatrixDisplay

    matrix = np.array(c.matrix)
    norm = PowerNorm(0.5, vmin=0, vmax=max(1, int(matrix.max())))
    size = max(4.0, 0.55 * len(c.rows) + 2.5)
    fig, ax = plt.subplots(figsize=(size, size))
    display = ConfusionMatrixDisplay(matrix, display_labels=c.rows)
    display.plot(ax=ax, colorbar=False, values_format="d", cmap="Blues",
                 xticks_rotation="vertical", text_kw={"fontsize": 7}, im_kw={"norm": norm})
    for (i, j), text in np.ndenumerate(display.text_):
        text.set_text(str(matrix[i, j]) if matrix[i, j] else "")
        text.set_color("white" if norm(matrix[i, j]) > 0.5 else "black")
    ax.set_xticks(range(len(c.columns)), c.columns, fontsize=8)
    ax.set_yticks(range(len(c.rows)), c.rows, fontsize=8)
    ax.set_xlabel("predicted label (+ missed)")
    ax.set_ylabel("gold label (+ spurious)")
    title = f"{domain}: {r.main_setting}, right boundaries"
    ax.set_title(title + (" — NOT paper numbers" if r.warnings else ""), fontsize=9)
    fig.tight_layout()
    return _figure_png(fig)


def errors_page(r: RunReport) -> str:
    """errors.html: every scored sentence, gold above the prediction, as the main setting
    counts them (:func:`eval.html_view.evaluation_items`)."""
    main = r.reports[r.main_setting]
    items = [item for scored, preds in r.scored.values()
             for item in evaluation_items(scored, preds, main.mode, main.misc)]
    intro = (f"<p>run <code>{escape(str(r.run_dir))}</code>; scored as the main setting "
             f"<code>{escape(r.main_setting)}</code> ({escape(SCORER_VERSION)}); "
             f"{escape(RULE)}</p>")
    if r.warnings:
        intro += f"<p><b>NOT paper numbers:</b> {escape('; '.join(r.warnings))}</p>"
    return evaluation_page(items, f"SAM-NER errors: {r.run_dir.name}", intro)


def write(r: RunReport, out: Path) -> Path:
    """Write report.md, scores.csv, scores.json, the plots and errors.html; returns report.md's
    path."""
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
    for domain, c in r.confusion.items():
        if c.labels:
            with atomic_writer(out / f"confusion_{domain}.png", "wb") as handle:
                handle.write(plot_confusion(r, domain, c))
    write_text_atomic(out / "errors.html", errors_page(r))
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


