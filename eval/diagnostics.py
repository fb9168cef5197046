"""Per-stage diagnostics of a run against gold: where did the F1 go, discovery or typing?

Read from a domain's run files (``stage1_discovery.jsonl``, ``stage2_archetypes.jsonl``) and
its predictions (as the scorer loaded them) for the gold sentences the run predicted, all
type-agnostic and per sentence on string sets, as the authors' scorer compares strings (misc
included: a mention is a mention whatever its type):

* mention P/R/F1 of every extractor and of the consensus output (the discovered mentions);
* how many mentions the consensus rule dropped, and how many of those were gold mentions;
* the archetype distribution of the discovered mentions (stage 2);
* typing accuracy given the right mention (stage 3): of the predicted mentions that are gold
  mentions of their sentence, the share whose predicted type is one of that mention's gold types.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.io import iter_jsonl
from core.records import Sentence
from eval.score import Counts

CONSENSUS = "consensus"


def _records(path: Path) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for _, r in iter_jsonl(path)} if path.is_file() else {}


def _tally(counts: Counts, found: set[str], gold: set[str]) -> None:
    counts.add(Counts(len(found & gold), len(found - gold), len(gold - found)))


def domain_diagnostics(run_domain: Path, gold: Sequence[Sentence],
                       predictions: Mapping[str, Sequence[tuple[str, str]]]) -> dict[str, Any]:
    """The diagnostics of one domain's run dir over ``gold`` (the sentences it predicted);
    ``predictions``: sentence id -> (mention, type), as :func:`eval.score.load_predictions`."""
    discovery = _records(run_domain / "stage1_discovery.jsonl")
    archetypes = _records(run_domain / "stage2_archetypes.jsonl")
    mention_counts: dict[str, Counts] = defaultdict(Counts)
    dropped = dropped_gold = 0
    by_archetype: Counter[str] = Counter()
    typed = typed_right = 0
    for sentence in gold:
        gold_types: dict[str, set[str]] = defaultdict(set)
        for span in sentence.entities:
            gold_types[span.text.strip()].add(span.type)
        gold_mentions = set(gold_types)
        found = discovery.get(sentence.id)
        if found is not None:
            for name, mentions in found["found"].items():
                _tally(mention_counts[name], set(mentions), gold_mentions)
            _tally(mention_counts[CONSENSUS], set(found["mentions"]), gold_mentions)
            dropped += len(found["consensus_dropped"])
            dropped_gold += len(set(found["consensus_dropped"]) & gold_mentions)
        by_archetype.update(a for _, a in archetypes.get(sentence.id, {}).get("archetypes", []))
        for text, etype in predictions.get(sentence.id, ()):
            mention = text.strip()
            if mention in gold_types:
                typed += 1
                typed_right += etype in gold_types[mention]
    order = [n for n in mention_counts if n != CONSENSUS] + [CONSENSUS]
    return {
        "sentences": len(gold),
        "mentions": {n: mention_counts[n].to_json() for n in order if n in mention_counts},
        "consensus_dropped": dropped, "consensus_dropped_gold": dropped_gold,
        "archetypes": dict(by_archetype.most_common()),
        "typing": {"right_mentions": typed, "right_type": typed_right,
                   "accuracy": typed_right / typed if typed else 0.0},
    }


def diagnostics(run_dir: Path, scored: Mapping[str, tuple[Sequence[Sentence], Mapping[
        str, Sequence[tuple[str, str]]]]]) -> dict[str, Any]:
    """Per domain (``scored``: domain -> (the gold sentences the run predicted, predictions))."""
    return {name: domain_diagnostics(run_dir / name, gold, preds)
            for name, (gold, preds) in scored.items()}


def markdown(name: str, diag: Mapping[str, Any]) -> list[str]:
    """One domain's diagnostics as report.md lines: a mention table and three facts."""
    lines = [f"### {name}: where F1 is lost (type-agnostic mention strings, misc included; "
             f"{diag['sentences']} sentences)", "",
             "| stage 1 output | P | R | F1 | TP | FP | FN |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for who, c in diag["mentions"].items():
        label = "**after consensus**" if who == CONSENSUS else f"extractor `{who}`"
        lines.append(f"| {label} | {100 * c['precision']:.1f} | {100 * c['recall']:.1f} | "
                     f"{100 * c['f1']:.1f} | {c['tp']} | {c['fp']} | {c['fn']} |")
    typing = diag["typing"]
    shares = ", ".join(f"{a} {n}" for a, n in diag["archetypes"].items()) or "none"
    lines += ["",
              f"- consensus dropped {diag['consensus_dropped']} mentions, "
              f"{diag['consensus_dropped_gold']} of them gold mentions",
              f"- typing accuracy given the right mention: {100 * typing['accuracy']:.1f} % "
              f"({typing['right_type']} of {typing['right_mentions']})",
              f"- archetypes of the discovered mentions (stage 2): {shares}", ""]
    return lines


def csv_rows(diags: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Long format: one row per (domain, stage-1 output), plus typing and drops per domain."""
    rows = []
    for domain, diag in diags.items():
        for who, c in diag["mentions"].items():
            rows.append({"domain": domain, "what": f"mentions:{who}", **{
                k: c[k] for k in ("precision", "recall", "f1", "tp", "fp", "fn")}})
        rows.append({"domain": domain, "what": "typing_given_right_mention",
                     "precision": diag["typing"]["accuracy"],
                     "tp": diag["typing"]["right_type"], "fn": diag["typing"]["right_mentions"]
                     - diag["typing"]["right_type"]})
        rows.append({"domain": domain, "what": "consensus_dropped_gold",
                     "tp": diag["consensus_dropped_gold"],
                     "fp": diag["consensus_dropped"] - diag["consensus_dropped_gold"]})
    return rows


CSV_FIELDS = ("domain", "what", "precision", "recall", "f1", "tp", "fp", "fn")


def plot(domain: str, diag: Mapping[str, Any]) -> bytes:
    """PNG: mention F1 of each extractor and after consensus, and typing accuracy."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [*diag["mentions"], "typing | right mention"]
    values = [100 * c["f1"] for c in diag["mentions"].values()]
    values.append(100 * diag["typing"]["accuracy"])
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(names), 3.2))
    bars = ax.bar(range(len(names)), values, color=["#7aa6c2"] * (len(names) - 2)
                  + ["#2f6b8f", "#d08c3a"])
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("%")
    ax.set_title(f"{domain}: mention F1 by stage-1 output; typing accuracy", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
