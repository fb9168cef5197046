"""A score mode is one registered function: a toy mode written in a module of its own (outside the
project) is scored by the scorer and the CLI and gets its own tables in the report.

The toy mode "lowercase" compares (mention, type) strings case-insensitively. Two sentences of
domain ai, every number by hand:

ai-0 "Apple hired Tim Cook": gold Apple/organisation, Tim Cook/person;
     predicted apple/organisation, Tim Cook/person, Cook/organisation
ai-1 "IBM sold PCs to NASA": gold IBM/organisation, NASA/organisation;
     predicted ibm/organisation, Nasa/location

lowercase: ai-0 TP 2 (apple, tim cook) FP 1 (cook) FN 0; ai-1 TP 1 (ibm) FP 1 (nasa/location)
  FN 1 (nasa/organisation) -> TP 3 FP 2 FN 1: P 3/5, R 3/4, F1 2/3.
  organisation TP 2 FP 1 FN 1; person TP 1; location FP 1.
string (case kept): ai-0 TP 1 (Tim Cook) FP 2 FN 1; ai-1 TP 0 FP 2 FN 2 -> TP 1 FP 4 FN 3:
  P 1/5, R 1/4, F1 2/9.
not_found (mentions matched case-sensitively against the tokens): apple, ibm, Nasa -> 3.
No misc anywhere: misc on and off agree.
"""

from __future__ import annotations

import importlib
import json
import sys
import textwrap

import pytest

from core.records import Sentence, Span
from eval.report_build import build, setting_name, settings
from eval.report_render import render_markdown
from eval.score import MODES, load_gold, load_predictions, main, score

TOY = '''
from eval.score import Matched, score_mode


@score_mode("lowercase", "strings compared case-insensitively")
def lowercase_keys(m: Matched):
    gold = {(s.text.strip().lower(), s.type) for s in m.gold}
    return gold, {(text.lower(), etype) for text, etype in m.pairs}
'''


def sent(sid: str, text: str, spans: list[tuple[int, int, str]]) -> Sentence:
    tokens = text.split()
    return Sentence(sid, "ai", tokens, [Span(s, e, t, " ".join(tokens[s:e])) for s, e, t in spans])


GOLD = [sent("ai-0", "Apple hired Tim Cook", [(0, 1, "organisation"), (2, 4, "person")]),
        sent("ai-1", "IBM sold PCs to NASA", [(0, 1, "organisation"), (4, 5, "organisation")])]
PRED = {"ai-0": [("apple", "organisation"), ("Tim Cook", "person"), ("Cook", "organisation")],
        "ai-1": [("ibm", "organisation"), ("Nasa", "location")]}


@pytest.fixture
def toy_mode(tmp_path):
    """The toy mode, registered by importing its module from a folder outside the project;
    unregistered (and the module forgotten) whatever the test does."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "toy_lowercase_mode.py").write_text(textwrap.dedent(TOY), encoding="utf-8")
    sys.path.insert(0, str(folder))
    try:
        importlib.import_module("toy_lowercase_mode")
        yield MODES["lowercase"]
    finally:
        if "lowercase" in MODES:
            MODES.remove("lowercase")
        sys.modules.pop("toy_lowercase_mode", None)
        sys.path.remove(str(folder))


@pytest.fixture
def run_dir(tmp_path):
    """DATA/ai/test.jsonl and RUN/ai/predictions.jsonl of the two sentences (no config.yaml)."""
    data, run = tmp_path / "data", tmp_path / "run"
    (data / "ai").mkdir(parents=True)
    (run / "ai").mkdir(parents=True)
    (data / "ai" / "test.jsonl").write_text(
        "".join(json.dumps(s.to_json()) + "\n" for s in GOLD), encoding="utf-8")
    (run / "ai" / "predictions.jsonl").write_text("".join(
        json.dumps({"id": sid, "entities": [{"text": t, "type": ty} for t, ty in pairs]}) + "\n"
        for sid, pairs in PRED.items()), encoding="utf-8")
    return run, data


def counts(report) -> tuple[int, int, int]:
    total = report.domains["ai"].total
    return total.tp, total.fp, total.fn


def test_the_toy_mode_scores_by_hand(toy_mode):
    assert toy_mode.name == "lowercase" and not toy_mode.main
    assert MODES.names() == ("span", "string", "lowercase")
    report = score(GOLD, PRED, "lowercase")
    total = report.domains["ai"].total
    assert counts(report) == (3, 2, 1)
    assert (total.precision, total.recall, total.f1) == pytest.approx((3 / 5, 3 / 4, 2 / 3))
    per_type = {t: (c.tp, c.fp, c.fn) for t, c in report.domains["ai"].per_type.items()}
    assert per_type == {"organisation": (2, 1, 1), "person": (1, 0, 0), "location": (0, 1, 0)}
    assert report.domains["ai"].not_found == 3
    string = score(GOLD, PRED, "string")
    assert counts(string) == (1, 4, 3)
    assert string.domains["ai"].total.f1 == pytest.approx(2 / 9)


def test_the_cli_offers_the_toy_mode(toy_mode, run_dir, capsys):
    run, data = run_dir
    assert main(["--gold", str(data / "ai" / "test.jsonl"), "--pred",
                 str(run / "ai" / "predictions.jsonl"), "--mode", "lowercase", "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["mode"] == "lowercase"
    assert [scored["domains"]["ai"][k] for k in ("tp", "fp", "fn")] == [3, 2, 1]
    gold = load_gold([data / "ai" / "test.jsonl"])
    assert counts(score(gold, load_predictions([run / "ai" / "predictions.jsonl"]),
                        "lowercase")) == (3, 2, 1)


def test_the_report_gets_the_toy_modes_tables(toy_mode, run_dir):
    run, data = run_dir
    assert settings()[-2:] == [("lowercase", True), ("lowercase", False)]
    report = build(run, data)
    assert list(report.reports) == ["string/misc-on", "string/misc-off", "span/misc-on",
                                    "span/misc-off", "lowercase/misc-on", "lowercase/misc-off"]
    for misc in (True, False):
        assert counts(report.reports[setting_name("lowercase", misc)]) == (3, 2, 1)
    assert counts(report.reports["string/misc-on"]) == (1, 4, 3)
    md = render_markdown(report)
    headers = [line for line in md.splitlines() if line.startswith("## mode=")]
    assert headers == [
        "## mode=string, misc=on — main setting (the paper's: string mode, misc kept)",
        "## mode=string, misc=off", "## mode=span, misc=on", "## mode=span, misc=off",
        "## mode=lowercase, misc=on", "## mode=lowercase, misc=off"]
    toy = md.split("## mode=lowercase, misc=on")[1].split("## ")[0]
    # ours F1 2/3 = 66.7 beside the paper's ai (58.2): +8.5; the Avg. is ai alone (†: not five)
    assert "| ai | 2 | 60.0 | 75.0 | **66.7** | 58.2 | +8.5 |" in toy
    assert "| Avg. |  |  |  | **66.7** | 58.2† | +8.5 |" in toy
    main_table = md.split("## mode=string, misc=on")[1].split("## ")[0]
    assert "| ai | 2 | 20.0 | 25.0 | **22.2** | 58.2 | -36.0 |" in main_table


def test_the_toy_mode_is_gone_afterwards():
    """The fixture's cleanup ran: the shipped modes alone, the report's four settings."""
    assert MODES.names() == ("span", "string")
    assert [setting_name(*s) for s in settings()] == [
        "string/misc-on", "string/misc-off", "span/misc-on", "span/misc-off"]
