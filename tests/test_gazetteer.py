"""The train-split gazetteer baseline on a hand-checked toy case and on real CrossNER."""

from __future__ import annotations

import json

from core.records import Sentence, Span, save_sentences
from eval import gazetteer
from eval.score import load_gold, load_predictions, score
from eval.score import main as score_main


def s(sid, text, spans):
    tokens = text.split()
    return Sentence(sid, "toy", tokens, [Span(a, b, t, " ".join(tokens[a:b])) for a, b, t in spans])


def test_longest_match_and_majority_type():
    """'New York' is location twice and organisation once → location; 'New York Times' (3 tokens)
    beats 'New York' where both match; 'Bo' ties person/band 1:1 → alphabetical 'band'."""
    train = [s("a", "New York", [(0, 2, "location")]), s("b", "New York", [(0, 2, "location")]),
             s("c", "New York", [(0, 2, "organisation")]),
             s("d", "New York Times", [(0, 3, "organisation")]),
             s("e", "Bo Bo", [(0, 1, "person"), (1, 2, "band")])]
    gaz = gazetteer.Gazetteer(train)
    tokens = ["I", "read", "the", "New", "York", "Times", "in", "New", "York", "with", "Bo"]
    assert gaz.tag(tokens) == [(3, 6, "organisation"), (7, 9, "location"), (10, 11, "band")]


def test_cli_on_real_music_beats_nothing_and_scores(tmp_path, converted_crossner):
    out = tmp_path / "run"
    assert gazetteer.main(["--data", str(converted_crossner), "--out", str(out),
                           "--domains", "music"]) == 0
    gold = load_gold([converted_crossner / "music" / "test.jsonl"])
    preds = load_predictions([out / "music" / "predictions.jsonl"])
    assert len(preds) == len(gold) == 465
    result = score(gold, preds, "span").domains["music"]
    # Every predicted string was copied from the sentence's own tokens, so none can be missing.
    assert result.not_found == 0
    assert result.total.tp > 0 and 0 < result.total.f1 < 1


def test_missing_split_is_a_one_line_error(tmp_path, capsys):
    save_sentences(tmp_path / "toy" / "test.jsonl", [s("x", "a", [])])
    assert gazetteer.main(["--data", str(tmp_path), "--out", str(tmp_path / "o"),
                           "--domains", "toy"]) == 2
    assert "train.jsonl" in capsys.readouterr().err


def test_score_cli_finds_domains_of_a_run(tmp_path, converted_crossner, capsys):
    out = tmp_path / "run"
    gazetteer.run(converted_crossner, out, ["ai", "science"])
    assert score_main(["--run", str(out), "--data", str(converted_crossner), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(report["domains"]) == ["ai", "science"]
    assert report["average_f1"] == (report["domains"]["ai"]["f1"]
                                    + report["domains"]["science"]["f1"]) / 2
    assert score_main(["--run", str(tmp_path / "empty"), "--data", str(converted_crossner)]) == 2
