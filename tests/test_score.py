"""The scorer, on small cases whose P/R/F1 were computed by hand (see each docstring)."""

from __future__ import annotations

import json
import re

import pytest

from core.records import Sentence, Span
from eval.score import (
    MODES,
    SCORER_VERSION,
    DataError,
    DomainScore,
    ScoreError,
    find_occurrences,
    load_gold,
    load_predictions,
    main,
    score,
    score_sentence,
)
from tests.conftest import CROSSNER_DOMAINS


def sent(sid: str, text: str, spans: list[tuple[int, int, str]], domain: str = "d") -> Sentence:
    tokens = text.split()
    entities = [Span(s, e, t, " ".join(tokens[s:e])) for s, e, t in spans]
    return Sentence(sid, domain, tokens, entities)


def prf(report, domain="d"):
    d = report.domains[domain].total
    return (d.tp, d.fp, d.fn), (d.precision, d.recall, d.f1)


BOB = sent("s1", "Bob met Bob in Paris", [(0, 1, "person"), (2, 3, "person"), (4, 5, "location")])
BOB_PRED = {"s1": [("Bob", "person"), ("Bob", "person"), ("Paris", "person")]}


def test_repeated_mentions_span_mode():
    """'Bob' predicted twice → one pair → spans (0,1) and (2,3), both gold: TP 2.
    'Paris' as person: FP 1; gold Paris/location missed: FN 1. P = R = F1 = 2/3."""
    counts, (p, r, f) = prf(score([BOB], BOB_PRED, "span"))
    assert counts == (2, 1, 1)
    assert (p, r, f) == pytest.approx((2 / 3, 2 / 3, 2 / 3))


def test_repeated_mentions_string_mode():
    """Gold set {(Bob, person), (Paris, location)}, predicted {(Bob, person), (Paris, person)}:
    TP 1, FP 1, FN 1 → P = R = F1 = 1/2 (the repeated Bob collapses on both sides)."""
    counts, (p, r, f) = prf(score([BOB], BOB_PRED, "string"))
    assert counts == (1, 1, 1)
    assert (p, r, f) == pytest.approx((0.5, 0.5, 0.5))


def test_overlapping_mentions_each_judged_on_its_own_span():
    """Gold: 'New York City Ballet'/organisation (0,4). Predicted also 'New York'/location (0,2),
    which overlaps but is a different span: TP 1, FP 1, FN 0 → P 1/2, R 1, F1 2/3."""
    gold = [sent("s", "New York City Ballet performed", [(0, 4, "organisation")])]
    pred = {"s": [("New York City Ballet", "organisation"), ("New York", "location")]}
    counts, (p, r, f) = prf(score(gold, pred, "span"))
    assert counts == (1, 1, 0)
    assert (p, r, f) == pytest.approx((0.5, 1.0, 2 / 3))


def test_partial_span_is_wrong_in_span_mode():
    """'York City Ballet' is inside the gold span but not equal: FP 1, FN 1 → all zero."""
    gold = [sent("s", "New York City Ballet performed", [(0, 4, "organisation")])]
    counts, prfs = prf(score(gold, {"s": [("York City Ballet", "organisation")]}, "span"))
    assert counts == (0, 1, 1)
    assert prfs == (0.0, 0.0, 0.0)


def test_mention_not_in_sentence_is_one_false_positive_and_counted():
    """'London' is absent; "Clash's" is not token-aligned with 'Clash ' s'. Each is one FP and
    one not_found. The correct 'The Clash' is TP 1. FN 0 → P 1/3, R 1, F1 1/2."""
    gold = [sent("s", "The Clash ' s album", [(0, 2, "band")])]
    pred = {"s": [("The Clash", "band"), ("London", "location"), ("Clash's", "band")]}
    report = score(gold, pred, "span")
    counts, (p, r, f) = prf(report)
    assert counts == (1, 2, 0)
    assert report.domains["d"].not_found == 2
    assert (p, r, f) == pytest.approx((1 / 3, 1.0, 0.5))
    assert report.domains["d"].per_type["location"].fp == 1


def test_mention_found_twice_but_gold_once_costs_a_false_positive():
    """Span mode places 'Bob' at both occurrences; gold tags only the first: TP 1, FP 1."""
    gold = [sent("s", "Bob and Bob", [(0, 1, "person")])]
    counts, _ = prf(score(gold, {"s": [("Bob", "person")]}, "span"))
    assert counts == (1, 1, 0)


def test_empty_gold_and_empty_prediction():
    """Sentence 1: no gold, one predicted (found) mention → FP 1. Sentence 2: two gold spans, no
    prediction record at all → FN 2. Totals TP 0 → P = R = F1 = 0, no division error."""
    gold = [sent("a", "Paris is nice", []),
            sent("b", "Ann met Tom", [(0, 1, "person"), (2, 3, "person")])]
    counts, prfs = prf(score(gold, {"a": [("Paris", "location")]}, "span"))
    assert counts == (0, 1, 2)
    assert prfs == (0.0, 0.0, 0.0)


def test_nothing_at_all_scores_zero():
    counts, prfs = prf(score([sent("a", "nothing here", [])], {}, "span"))
    assert counts == (0, 0, 0)
    assert prfs == (0.0, 0.0, 0.0)


def test_misc_on_and_off():
    """Gold: English/misc (0,1), Anna/person (2,3). Predicted: English/misc, Anna/misc.
    misc on: TP 1 (English), FP 1 (Anna/misc), FN 1 (Anna/person) → P = R = F1 = 1/2.
    misc off: both misc pairs and the misc gold vanish: TP 0, FP 0, FN 1 → all 0."""
    gold = [sent("s", "English speaking Anna", [(0, 1, "misc"), (2, 3, "person")])]
    pred = {"s": [("English", "misc"), ("Anna", "misc")]}
    on = score(gold, pred, "span", misc=True)
    off = score(gold, pred, "span", misc=False)
    assert prf(on) == ((1, 1, 1), pytest.approx((0.5, 0.5, 0.5)))
    assert prf(off)[0] == (0, 0, 1)
    assert on.misc is True and off.misc is False
    for mode in ("span", "string"):
        assert "misc" not in score(gold, pred, mode, misc=False).domains["d"].per_type


def test_unknown_prediction_id_is_a_clear_error():
    with pytest.raises(ScoreError, match=r"not in the gold data.*'zzz'"):
        score([BOB], {"zzz": [("Bob", "person")]})


def test_unknown_mode_is_rejected():
    with pytest.raises(ScoreError, match=re.escape("unknown mode 'fuzzy'; choose one of "
                                                   "('span', 'string')")):
        score([BOB], {}, mode="fuzzy")
    with pytest.raises(ScoreError, match="unknown mode 'fuzzy'"):
        score_sentence(DomainScore(), BOB, [], mode="fuzzy")


def test_cli_modes_come_from_the_registry(capsys):
    """``--mode`` offers the registered modes, string the default; the help says what each is."""
    assert MODES.names() == ("span", "string")
    assert [m.name for m in MODES.values() if m.main] == ["string"]
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--mode {span,string}" in help_text
    assert ("string (default): the paper's string-set scoring; span: exact token offsets"
            in help_text)
    with pytest.raises(SystemExit) as exc:
        main(["--gold", "g", "--pred", "p", "--mode", "fuzzy"])
    assert exc.value.code == 2
    assert "invalid choice: 'fuzzy'" in capsys.readouterr().err


def test_average_is_the_mean_of_domain_f1s_not_pooled():
    """Domain x: TP 1 → F1 1. Domain y: FN 3 → F1 0. Avg 0.5 (pooled micro would be 0.4)."""
    gold = [sent("x1", "Ann", [(0, 1, "person")], "x"),
            sent("y1", "Bo Cy Di", [(0, 1, "person"), (1, 2, "person"), (2, 3, "person")], "y")]
    report = score(gold, {"x1": [("Ann", "person")]}, "span")
    assert report.domains["x"].total.f1 == 1.0
    assert report.domains["y"].total.f1 == 0.0
    assert report.average_f1 == 0.5


def test_per_type_breakdown_adds_up():
    """Bob case, span mode: person TP 2 FP 1 (Paris/person) FN 0; location TP 0 FP 0 FN 1."""
    per_type = score([BOB], BOB_PRED, "span").domains["d"].per_type
    assert (per_type["person"].tp, per_type["person"].fp, per_type["person"].fn) == (2, 1, 0)
    assert (per_type["location"].tp, per_type["location"].fp, per_type["location"].fn) == (0, 0, 1)


def test_mentions_are_stripped():
    gold = [sent("s", "in Paris today", [(1, 2, "location")])]
    for mode in ("span", "string"):
        assert prf(score(gold, {"s": [("  Paris ", "location")]}, mode))[0] == (1, 0, 0)


def test_find_occurrences():
    assert find_occurrences(["a", "b", "a", "b", "a"], ["a", "b"]) == [0, 2]
    assert find_occurrences(["a", "b"], []) == []
    assert find_occurrences(["a"], ["a", "b"]) == []


def write_lines(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_cli_json_report(tmp_path, capsys):
    gold = write_lines(tmp_path / "gold.jsonl", [BOB.to_json()])
    pred = write_lines(tmp_path / "pred.jsonl", [
        {"id": "s1", "entities": [{"text": t, "type": ty} for t, ty in BOB_PRED["s1"]]}])
    assert main(["--gold", str(gold), "--pred", str(pred), "--json", "--mode", "string"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["version"] == SCORER_VERSION and out["mode"] == "string" and out["misc"] is True
    assert out["domains"]["d"]["f1"] == pytest.approx(0.5)
    assert out["domains"]["d"]["not_found"] == 0
    assert out["average_f1"] == pytest.approx(0.5)
    assert out["domains"]["d"]["per_type"]["person"]["tp"] == 1


def test_cli_defaults_to_the_papers_string_mode_and_names_it(tmp_path, capsys):
    gold = write_lines(tmp_path / "gold.jsonl", [BOB.to_json()])
    pred = write_lines(tmp_path / "pred.jsonl", [])
    assert main(["--gold", str(gold), "--pred", str(pred), "--no-misc"]) == 0
    out = capsys.readouterr().out
    assert SCORER_VERSION in out and "mode=string" in out and "misc=off" in out
    row = next(line.split() for line in out.splitlines() if line.startswith("d "))
    # P R F1 as floats; TP FP FN not_found sentences as integers (no "701.0")
    assert row[1:4] == ["0.0", "0.0", "0.0"]
    fn = len({(s.text, s.type) for s in BOB.entities if s.type != "misc"})  # a set per sentence
    assert row[4:] == ["0", "0", str(fn), "0", "1"]


def test_bad_prediction_file_fails_with_file_and_line(tmp_path, capsys):
    gold = write_lines(tmp_path / "gold.jsonl", [BOB.to_json()])
    pred = tmp_path / "pred.jsonl"
    pred.write_text('{"id": "s1", "entities": []}\n{"id": "s1", "entities": [{"text": 3}]}\n')
    with pytest.raises(DataError, match=r"pred.jsonl:2: entity #0"):
        load_predictions([pred])
    assert main(["--gold", str(gold), "--pred", str(pred)]) == 2
    assert "pred.jsonl:2" in capsys.readouterr().err


def test_duplicate_prediction_id_is_rejected(tmp_path):
    pred = write_lines(tmp_path / "p.jsonl", [{"id": "a", "entities": []}] * 2)
    with pytest.raises(DataError, match=r"p\.jsonl:2: duplicate prediction id"):
        load_predictions([pred])


@pytest.mark.parametrize("domain", CROSSNER_DOMAINS)
def test_gold_as_prediction_on_real_crossner(converted_crossner, domain):
    """Every gold string sits at its gold span, so recall is exactly 1 in span mode; in string
    mode gold-vs-gold is perfect. Precision can fall below 1 in span mode only where the same
    string occurs unannotated (or with another type) elsewhere in the sentence."""
    gold = load_gold([converted_crossner / domain / "test.jsonl"])
    pred = {s.id: [(e.text, e.type) for e in s.entities] for s in gold}
    span = score(gold, pred, "span").domains[domain]
    assert span.total.recall == 1.0 and span.total.fn == 0 and span.not_found == 0
    assert span.total.tp == sum(len(s.entities) for s in gold)
    string = score(gold, pred, "string").domains[domain].total
    assert (string.precision, string.recall, string.fn, string.fp) == (1.0, 1.0, 0, 0)
