"""Per-stage diagnostics on a hand-made run, every figure computed by hand."""

from __future__ import annotations

import pytest

from core.io import write_jsonl
from core.records import Sentence, Span
from eval.diagnostics import csv_rows, domain_diagnostics, markdown, plot
from eval.score import load_predictions


def sentence(sid: str, text: str, spans: list[tuple[int, int, str]]) -> Sentence:
    tokens = text.split()
    return Sentence(sid, "music", tokens, [Span(s, e, t, " ".join(tokens[s:e]))
                                           for s, e, t in spans])


GOLD = [
    sentence("s1", "Trent Reznor founded Nine Inch Nails in Ohio",
             [(0, 2, "musicalartist"), (3, 6, "band"), (7, 8, "location")]),
    sentence("s2", "Hello world", []),
]


@pytest.fixture
def run_domain(tmp_path):
    write_jsonl(tmp_path / "stage1_discovery.jsonl", [
        {"id": "s1", "found": {"anchor": ["Nine Inch Nails", "Cleveland"],
                               "explorer": ["Trent Reznor", "founded", "Ohio"]},
         "consensus_dropped": ["founded", "Ohio"], "not_in_sentence": ["Cleveland"],
         "mentions": ["Nine Inch Nails", "Trent Reznor"]},
        {"id": "s2", "found": {"anchor": [], "explorer": ["world"]},
         "consensus_dropped": ["world"], "not_in_sentence": [], "mentions": []},
    ])
    write_jsonl(tmp_path / "stage2_archetypes.jsonl", [
        {"id": "s1", "tagged": "...", "archetypes": [["Trent Reznor", "person"],
                                                     ["Nine Inch Nails", "organization"]]}])
    write_jsonl(tmp_path / "predictions.jsonl", [
        {"id": "s1", "entities": [{"text": "Trent Reznor", "type": "person"},
                                  {"text": "Nine Inch Nails", "type": "band"}]},
        {"id": "s2", "entities": []}])
    return tmp_path


def test_diagnostics_by_hand(run_domain):
    preds = load_predictions([run_domain / "predictions.jsonl"])
    diag = domain_diagnostics(run_domain, GOLD, preds)
    # anchor: {NIN, Cleveland} vs gold {TR, NIN, Ohio}: TP 1, FP 1, FN 2
    # explorer: s1 {TR, founded, Ohio}: TP 2 FP 1 FN 1; s2 {world}: FP 1 -> TP 2 FP 2 FN 1
    # consensus: {NIN, TR}: TP 2, FP 0, FN 1
    got = {who: (c["tp"], c["fp"], c["fn"]) for who, c in diag["mentions"].items()}
    assert got == {"anchor": (1, 1, 2), "explorer": (2, 2, 1), "consensus": (2, 0, 1)}
    assert list(diag["mentions"]) == ["anchor", "explorer", "consensus"]
    assert diag["mentions"]["explorer"]["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert diag["mentions"]["consensus"]["f1"] == pytest.approx(0.8)
    assert (diag["consensus_dropped"], diag["consensus_dropped_gold"]) == (3, 1)  # Ohio
    assert diag["archetypes"] == {"person": 1, "organization": 1}
    # NIN typed band (right), TR typed person (gold: musicalartist)
    assert diag["typing"] == {"right_mentions": 2, "right_type": 1, "accuracy": 0.5}
    assert diag["sentences"] == 2


def test_diagnostics_outputs(run_domain):
    preds = load_predictions([run_domain / "predictions.jsonl"])
    diag = domain_diagnostics(run_domain, GOLD, preds)
    md = "\n".join(markdown("music", diag))
    assert "| extractor `anchor` | 50.0 | 33.3 | 40.0 | 1 | 1 | 2 |" in md
    assert "| **after consensus** | 100.0 | 66.7 | 80.0 | 2 | 0 | 1 |" in md
    assert "consensus dropped 3 mentions, 1 of them gold mentions" in md
    assert "typing accuracy given the right mention: 50.0 % (1 of 2)" in md
    rows = csv_rows({"music": diag})
    assert [r["what"] for r in rows] == ["mentions:anchor", "mentions:explorer",
                                         "mentions:consensus", "typing_given_right_mention",
                                         "consensus_dropped_gold"]
    assert plot("music", diag).startswith(b"\x89PNG")
