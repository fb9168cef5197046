"""The run report on a tiny two-domain run whose P/R/F1 were computed by hand, and the paper table.

Gold and predictions (ai scores 2 of its 3 gold sentences: ai-2 has no prediction record):

ai-0 "Hinton works at Google": gold Hinton/researcher, Google/organisation;
     predicted Hinton/researcher, Google/misc
ai-1 "LSTM beats CNN": gold LSTM/algorithm, CNN/algorithm; predicted LSTM/algorithm, RNN/algorithm
     (RNN is not in the sentence: not_found 1)
music-0 "Bob met Bob in Paris": gold Bob/musicalartist twice, Paris/location;
        predicted Bob/musicalartist, Paris/location
music-1 "English song Yesterday": gold English/misc, Yesterday/song;
        predicted English/misc, Yesterday/album

ai, every setting: TP 2, FN 2; FP 1 with misc off, 2 with misc on (Google/misc); the two modes
agree (no repeated mention). misc off: P 2/3, R 1/2, F1 4/7; misc on: P = R = F1 = 1/2.
music string: Bob and Paris TP 2, Yesterday FP 1 + FN 1; misc on adds English TP → 3/1/1.
music span: Bob is two gold spans → TP 3 (misc off), 4 (misc on); FP 1, FN 1.
"""

from __future__ import annotations

import csv
import json
import re
from statistics import mean

import pytest
import yaml

from core.backbones import BACKBONES, paper_row_for
from core.io import ProjectError
from core.records import Sentence, Span
from eval.paper import DEFAULT_PAPER, load_paper
from eval.report import main
from eval.report_build import AVG, build, setting_name, settings
from eval.report_caveats import model_warnings
from eval.report_render import render_markdown
from eval.score import SCORER_VERSION

LLAMA_ROW = BACKBONES["llama3-8b"].paper_row
QWEN_ROW = BACKBONES["qwen2.5-7b"].paper_row

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# setting -> domain -> (tp, fp, fn)
EXPECTED = {
    "string/misc-off": {"ai": (2, 1, 2), "music": (2, 1, 1)},
    "string/misc-on": {"ai": (2, 2, 2), "music": (3, 1, 1)},
    "span/misc-off": {"ai": (2, 1, 2), "music": (3, 1, 1)},
    "span/misc-on": {"ai": (2, 2, 2), "music": (4, 1, 1)},
}
# Hand-computed F1 of each cell above.
EXPECTED_F1 = {
    "string/misc-off": {"ai": 4 / 7, "music": 2 / 3},
    "string/misc-on": {"ai": 1 / 2, "music": 3 / 4},
    "span/misc-off": {"ai": 4 / 7, "music": 3 / 4},
    "span/misc-on": {"ai": 1 / 2, "music": 4 / 5},
}


def sent(sid: str, domain: str, text: str, spans: list[tuple[int, int, str]]) -> Sentence:
    tokens = text.split()
    entities = [Span(s, e, t, " ".join(tokens[s:e])) for s, e, t in spans]
    return Sentence(sid, domain, tokens, entities)


def write_jsonl(path, records) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def pred(sid: str, *pairs: tuple[str, str]) -> dict:
    return {"id": sid, "entities": [{"text": t, "type": ty} for t, ty in pairs]}


@pytest.fixture
def tiny_run(tmp_path):
    """DATA/<domain>/test.jsonl and RUN/<domain>/predictions.jsonl for ai and music, a tiny CPU
    config (limit 2) and a stats.json for music."""
    data, run_dir = tmp_path / "data", tmp_path / "run"
    write_jsonl(data / "ai" / "test.jsonl", [s.to_json() for s in [
        sent("ai-0", "ai", "Hinton works at Google",
             [(0, 1, "researcher"), (3, 4, "organisation")]),
        sent("ai-1", "ai", "LSTM beats CNN", [(0, 1, "algorithm"), (2, 3, "algorithm")]),
        sent("ai-2", "ai", "Paris is a city", [(0, 1, "location")]),
    ]])
    write_jsonl(data / "music" / "test.jsonl", [s.to_json() for s in [
        sent("music-0", "music", "Bob met Bob in Paris",
             [(0, 1, "musicalartist"), (2, 3, "musicalartist"), (4, 5, "location")]),
        sent("music-1", "music", "English song Yesterday", [(0, 1, "misc"), (2, 3, "song")]),
    ]])
    write_jsonl(run_dir / "ai" / "predictions.jsonl", [
        pred("ai-0", ("Hinton", "researcher"), ("Google", "misc")),
        pred("ai-1", ("LSTM", "algorithm"), ("RNN", "algorithm")),
    ])
    write_jsonl(run_dir / "music" / "predictions.jsonl", [
        pred("music-0", ("Bob", "musicalartist"), ("Paris", "location")),
        pred("music-1", ("English", "misc"), ("Yesterday", "album")),
    ])
    (run_dir / "music" / "stats.json").write_text(json.dumps({"sentences": 2, "stages": {
        "stage1_anchor": {"requests": 2, "status_ok": 1, "status_invalid": 1, "truncated": 0},
        "stage1_discovery": {"ccr_dropped": 3}}}))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(
        {"model": "models/tiny-llama", "limit": 2, "engine": {"backend": "vllm"}}))
    return run_dir, data


def test_scores_in_all_four_settings(tiny_run):
    run_dir, data = tiny_run
    report = build(run_dir, data)
    assert list(report.reports) == [setting_name(m, x) for m, x in settings()]
    assert list(report.reports) == ["string/misc-on", "string/misc-off", "span/misc-on",
                                    "span/misc-off"]
    for name, domains in EXPECTED.items():
        for domain, counts in domains.items():
            total = report.reports[name].domains[domain].total
            assert (total.tp, total.fp, total.fn) == counts, (name, domain)
            assert total.f1 == pytest.approx(EXPECTED_F1[name][domain])
    assert report.reports["string/misc-off"].domains["ai"].not_found == 1
    assert {d: i.scored for d, i in report.domains.items()} == {"ai": 2, "music": 2}
    assert report.domains["ai"].gold == 3 and report.domains["ai"].full_split == 431


def test_csv_rows_and_numbers(tiny_run, tmp_path):
    run_dir, data = tiny_run
    out = tmp_path / "out"
    assert main(["--run", str(run_dir), "--data", str(data), "--out", str(out)]) == 0
    with open(out / "scores.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["setting", "mode", "misc", "domain", "precision", "recall", "f1",
                             "tp", "fp", "fn", "not_found", "sentences", "paper_f1",
                             "scorer_version"]
    assert len(rows) == 4 * 3  # (ai, music, Avg.) per setting
    by_key = {(r["setting"], r["domain"]): r for r in rows}
    for name, domains in EXPECTED.items():
        for domain, (tp, fp, fn) in domains.items():
            row = by_key[(name, domain)]
            assert (int(row["tp"]), int(row["fp"]), int(row["fn"])) == (tp, fp, fn)
            assert float(row["f1"]) == pytest.approx(100 * EXPECTED_F1[name][domain])
            assert int(row["sentences"]) == 2 and row["scorer_version"] == SCORER_VERSION
        avg = by_key[(name, AVG)]
        assert float(avg["f1"]) == pytest.approx(100 * mean(EXPECTED_F1[name].values()))
        assert float(avg["paper_f1"]) == pytest.approx((58.2 + 71.2) / 2)  # the domains present
    main_ai = by_key[("string/misc-off", "ai")]
    assert (main_ai["mode"], main_ai["misc"]) == ("string", "False")
    assert float(main_ai["precision"]) == pytest.approx(200 / 3)
    assert float(main_ai["recall"]) == pytest.approx(50.0)
    assert int(main_ai["not_found"]) == 1
    assert float(main_ai["paper_f1"]) == 58.2
    assert float(by_key[("string/misc-off", "music")]["paper_f1"]) == 71.2

    payload = json.loads((out / "scores.json").read_text())
    assert set(payload["settings"]) == set(EXPECTED)
    assert payload["settings"]["span/misc-on"]["domains"]["music"]["f1"] == pytest.approx(0.8)
    assert payload["not_paper_numbers"] is True and payload["scorer_version"] == SCORER_VERSION


def test_report_md_paper_numbers_warnings_stats_and_plots(tiny_run, tmp_path, capsys):
    run_dir, data = tiny_run
    out = tmp_path / "out"
    assert main(["--run", str(run_dir), "--data", str(data), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out.splitlines()
    assert stdout[0] == str(out / "report.md")
    # the main setting, printed first: the paper's (string mode, misc kept); ai P = R = F1 = 1/2
    assert any("mode=string" in line and "misc=on" in line for line in stdout)
    assert any(line.startswith("| ai |") and "**50.0**" in line and "58.2" in line
               for line in stdout)

    md = (out / "report.md").read_text()
    assert "NOT paper numbers" in md
    assert "ai 2/431" in md and "music 2/465" in md
    assert "tiny/CPU test model" in md and "limit=2" in md
    assert SCORER_VERSION in md and "with `misc` counted" in md
    assert "## mode=string, misc=on — main setting (the paper's: string mode, misc kept)" in md
    assert md.index("## mode=string, misc=on") < md.index("## mode=string, misc=off")
    for mode, misc in settings():
        assert f"## mode={mode}, misc={'on' if misc else 'off'}" in md
    # Paper F1 beside ours: ai 58.2, music 71.2, and their mean for the Avg. row.
    assert "| ai | 2 | 66.7 | 50.0 | **57.1** | 58.2 | -1.1 |" in md
    assert "| music | 2 | 66.7 | 66.7 | **66.7** | 71.2 | -4.5 |" in md
    # misc on (the main table): ai TP 2 FP 2 FN 2; music TP 3 FP 1 FN 1
    assert "| ai | 2 | 50.0 | 50.0 | **50.0** | 58.2 | -8.2 |" in md
    assert "| music | 2 | 75.0 | 75.0 | **75.0** | 71.2 | +3.8 |" in md
    assert "64.7†" in md
    assert "| stage1_anchor | 2 | invalid 1, ok 1 | truncated 0 |" in md
    assert "| stage1_discovery | – | – | ccr_dropped 3 |" in md

    for domain in ("ai", "music"):
        png = (out / f"plot_{domain}.png").read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) > 1000
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_default_out_dir_is_run_report(tiny_run):
    run_dir, data = tiny_run
    assert main(["--run", str(run_dir), "--data", str(data)]) == 0
    assert (run_dir / "report" / "report.md").exists()


def test_complete_run_of_a_paper_backbone_has_no_warning(tmp_path):
    """A non-CrossNER domain is complete at its gold file's size; no paper number exists for it."""
    data, run_dir = tmp_path / "data", tmp_path / "run"
    write_jsonl(data / "d" / "test.jsonl", [sent("d-0", "d", "Ann sings", [(0, 1, "person")])
                                            .to_json()])
    write_jsonl(run_dir / "d" / "predictions.jsonl", [pred("d-0", ("Ann", "person"))])
    (run_dir / "config.yaml").write_text(yaml.safe_dump(
        {"model": "meta-llama/Meta-Llama-3-8B-Instruct", "limit": None}))
    report = build(run_dir, data)
    assert report.warnings == [] and report.paper_row == LLAMA_ROW
    assert report.paper_f1("d") is None and report.paper_f1(AVG) is None
    assert main(["--run", str(run_dir), "--data", str(data)]) == 0
    md = (run_dir / "report" / "report.md").read_text()
    assert "NOT paper numbers" not in md
    assert "| d | 1 | 100.0 | 100.0 | **100.0** | – | – |" in md


def test_run_without_config_is_flagged(tiny_run):
    run_dir, data = tiny_run
    (run_dir / "config.yaml").unlink()
    report = build(run_dir, data)
    assert any("no config.yaml" in w for w in report.warnings)


def test_paper_row_follows_the_backbone(tiny_run):
    assert paper_row_for("Qwen/Qwen2.5-7B-Instruct") == QWEN_ROW
    assert paper_row_for("meta-llama/Meta-Llama-3-8B-Instruct") == LLAMA_ROW
    assert paper_row_for("") == LLAMA_ROW
    run_dir, data = tiny_run
    assert build(run_dir, data).paper_row == LLAMA_ROW  # models/tiny-llama: the Llama family
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"model": "models/qwen2.5-coder-0.5b"}))
    assert build(run_dir, data).paper_row == QWEN_ROW
    (run_dir / "config.yaml").unlink()
    assert build(run_dir, data).paper_row == LLAMA_ROW


def test_a_model_that_is_no_paper_backbone_is_named_with_the_backbones():
    warnings, _ = model_warnings({"model": "mistralai/Mistral-7B-Instruct"})
    assert warnings == ["model 'mistralai/Mistral-7B-Instruct' is not one of the paper's "
                        "backbones (Llama3-8B-Instruct, Qwen2.5-7B-Instruct)"]


@pytest.mark.parametrize("make", ["missing", "empty", "no_records"])
def test_run_dir_without_predictions_exits_2(tmp_path, capsys, make):
    run_dir = tmp_path / "run"
    if make != "missing":
        run_dir.mkdir()
    if make == "no_records":
        (run_dir / "ai").mkdir()
        (run_dir / "ai" / "predictions.jsonl").write_text("")
        write_jsonl(tmp_path / "data" / "ai" / "test.jsonl", [])
    assert main(["--run", str(run_dir), "--data", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
    assert not (run_dir / "report").exists()


def test_prediction_id_not_in_gold_exits_2(tiny_run, capsys):
    run_dir, data = tiny_run
    write_jsonl(run_dir / "ai" / "predictions.jsonl", [pred("zzz", ("x", "person"))])
    assert main(["--run", str(run_dir), "--data", str(data)]) == 2
    assert "not in the gold data" in capsys.readouterr().err


# ------------------------------------------------------------------ the paper's own table


PAPER = yaml.safe_load(DEFAULT_PAPER.read_text(encoding="utf-8"))
DOMAINS = ["ai", "literature", "music", "politics", "science"]


def test_paper_yaml_has_every_row_and_domain():
    paper = load_paper(DEFAULT_PAPER)
    assert paper.domains == DOMAINS
    assert len(paper.rows) == 7
    for row in paper.rows.values():
        assert set(row.f1) == {*DOMAINS, "avg"}
    assert paper.rows[LLAMA_ROW].f1["music"] == 71.2
    assert "2605.03706" in paper.source


@pytest.mark.parametrize("key", list(PAPER["main"]))
def test_paper_avg_is_the_mean_of_its_domains(key):
    """Each printed Avg. equals the mean of its five domains within 0.1 — except a row that the
    YAML flags with ``avg_mismatch`` (the paper's own inconsistency), which must really differ,
    so the flag can neither hide a typo of ours nor linger once fixed."""
    row = PAPER["main"][key]
    computed = mean(row["f1"][d] for d in DOMAINS)
    if "avg_mismatch" in row:
        assert abs(computed - row["f1"]["avg"]) > 0.1, f"{key}: flagged but consistent"
    else:
        assert computed == pytest.approx(row["f1"]["avg"], abs=0.1), f"{key}: mean {computed:.2f}"


def test_only_the_qwen_row_is_inconsistent_in_the_paper():
    """SAM-NER (Qwen2.5-7B): 57.9, 64.1, 69.3, 66.7, 62.1 average 64.02; the paper prints 64.3."""
    flagged = [k for k, row in PAPER["main"].items() if "avg_mismatch" in row]
    assert flagged == [QWEN_ROW]
    assert mean(PAPER["main"][QWEN_ROW]["f1"][d] for d in DOMAINS) == pytest.approx(64.02)


def test_ablation_tables_agree_with_the_main_row():
    main_row = PAPER["main"][LLAMA_ROW]["f1"]
    assert PAPER["table3_ccr"]["with_ccr"]["f1"] == {d: main_row[d] for d in DOMAINS}
    assert set(PAPER["table3_ccr"]["without_ccr"]["f1"]) == set(DOMAINS)
    assert PAPER["table6_ablation"]["avg_f1"]["all_stages"] == main_row["avg"]


def test_unreadable_config_is_a_one_line_error(tiny_run, capsys):
    run_dir, data = tiny_run
    (run_dir / "config.yaml").write_text("model: [unclosed\n")
    assert main(["--run", str(run_dir), "--data", str(data)]) == 2
    assert capsys.readouterr().err.startswith("error:")


@pytest.mark.parametrize("misc", [True, False])
def test_score_run_and_make_eval_agree_on_a_partial_run(tiny_run, capsys, misc):
    """One rule for both: a run is scored on the sentences it predicted. The ai gold has a third
    sentence (Paris/location) that the run never reached; counting it would add one FN."""
    from eval.score import main as score_main

    run_dir, data = tiny_run
    argv = ["--run", str(run_dir), "--data", str(data), "--mode", "string", "--json"]
    assert score_main(argv + ([] if misc else ["--no-misc"])) == 0
    captured = capsys.readouterr()
    scored = json.loads(captured.out)["domains"]
    assert "scoring the 4 of 5 gold sentences this run predicted" in captured.err
    expected = EXPECTED[f"string/misc-{'on' if misc else 'off'}"]
    assert {d: (v["tp"], v["fp"], v["fn"]) for d, v in scored.items()} == expected
    report = build(run_dir, data).reports[f"string/misc-{'on' if misc else 'off'}"]
    assert {d: (s.total.tp, s.total.fp, s.total.fn) for d, s in report.domains.items()} == expected


# ------------------------------------------------------------------ MIT and the peers
#
# A two-domain run, CrossNER ai + MIT Movie, every number by hand:
# ai-0 "Hinton works at Google": gold Hinton/researcher, Google/organisation;
#      predicted Hinton/researcher, Google/misc
# ai-1 "LeCun met LeCun": gold LeCun/researcher twice; predicted LeCun/researcher once
# mit_movie-0 "show me 1980 s movies with tom hanks": gold "1980 s"/YEAR, "tom hanks"/ACTOR;
#      predicted "1980 s"/YEAR, "tom hanks"/DIRECTOR
# ai string (LeCun collapses to one pair): misc on TP 2 FP 1 FN 1 -> F1 2/3; misc off TP 2 FP 0
#   FN 1 -> P 1, R 2/3, F1 4/5. ai span (LeCun is two spans): misc on TP 3 FP 1 FN 1 -> 3/4;
#   misc off TP 3 FP 0 FN 1 -> 6/7. mit_movie, every setting: TP 1 FP 1 FN 1 -> 1/2.
# mit_movie is not zero-shot (its domain file says so): Avg. = ai alone; Avg. (all 2) = mean.

SEVEN_F1 = {"string/misc-on": (2 / 3, 1 / 2), "string/misc-off": (4 / 5, 1 / 2),
            "span/misc-on": (3 / 4, 1 / 2), "span/misc-off": (6 / 7, 1 / 2)}  # (ai, mit_movie)
# Each peer row is compared only in the setting closest to its convention (paper_results.yaml).
PEER_SETTINGS = {
    "sam_ner_llama3_8b": "string/misc-on", "gner_t5_xxl": "span/misc-off",
    "gner_llama_7b": "span/misc-off", "reasoningner_qwen3_8b": "string/misc-off",
    "gliner_large_own": "string/misc-on", "gliner_large_gner": "span/misc-off",
    "uniner_7b_type": "string/misc-off", "gollie_7b": "string/misc-on",
    "knowcoder_7b": "string/misc-on", "qwen3_8b_untuned": "string/misc-off",
    "diziner": "string/misc-on"}
# shared/SPEC.md "Peer zero-shot results", restated by hand: ai lit music pol sci movie rest.
SPEC_PEERS = {
    "sam_ner_llama3_8b": (58.2, 68.7, 71.2, 68.2, 65.1, None, None),
    "gner_t5_xxl": (68.2, 68.7, 81.2, 75.1, 76.7, 62.5, 51.0),
    "gner_llama_7b": (63.1, 68.2, 75.7, 69.4, 69.9, 68.6, 47.5),
    "reasoningner_qwen3_8b": (71.0, 69.4, 78.7, 78.8, 75.8, 76.3, 56.8),
    "gliner_large_own": (57.2, 64.4, 69.6, 72.6, 62.6, 57.2, 42.9),
    "gliner_large_gner": (60.6, 68.4, 69.5, 74.8, 69.4, 57.2, 42.8),
    "uniner_7b_type": (53.5, 59.4, 65.0, 60.8, 61.1, 42.4, 31.7),
    "gollie_7b": (60.3, 67.1, 64.5, 60.8, 60.5, 63.0, 43.4),
    "knowcoder_7b": (60.3, 61.1, 70.0, 72.2, 59.1, 50.0, 48.2),
    "qwen3_8b_untuned": (61.2, 58.0, 71.0, 71.9, 68.6, 70.1, 57.4),
    "diziner": (71.1, 73.8, 82.9, 80.9, 75.4, 78.5, 68.1)}
SEVEN = ["ai", "literature", "music", "politics", "science", "mit_movie", "mit_restaurant"]


@pytest.fixture
def mit_run(tmp_path):
    data, run_dir = tmp_path / "data", tmp_path / "run"
    write_jsonl(data / "crossner" / "ai" / "test.jsonl", [s.to_json() for s in [
        sent("ai-0", "ai", "Hinton works at Google",
             [(0, 1, "researcher"), (3, 4, "organisation")]),
        sent("ai-1", "ai", "LeCun met LeCun", [(0, 1, "researcher"), (2, 3, "researcher")]),
    ]])
    write_jsonl(data / "mit_movie" / "test.jsonl", [sent(
        "mit_movie-0", "mit_movie", "show me 1980 s movies with tom hanks",
        [(2, 4, "YEAR"), (6, 8, "ACTOR")]).to_json()])
    write_jsonl(run_dir / "ai" / "predictions.jsonl", [
        pred("ai-0", ("Hinton", "researcher"), ("Google", "misc")),
        pred("ai-1", ("LeCun", "researcher"))])
    write_jsonl(run_dir / "mit_movie" / "predictions.jsonl", [
        pred("mit_movie-0", ("1980 s", "YEAR"), ("tom hanks", "DIRECTOR"))])
    (run_dir / "config.yaml").write_text(yaml.safe_dump(
        {"model": "meta-llama/Meta-Llama-3-8B-Instruct", "limit": None}))
    return run_dir, data


def test_peer_rows_restate_the_spec_with_their_settings():
    paper = load_paper(DEFAULT_PAPER)
    assert {k: setting_name(*p.setting) for k, p in paper.peers.items()} == PEER_SETTINGS
    for key, values in SPEC_PEERS.items():
        expected = {d: v for d, v in zip(SEVEN, values, strict=True) if v is not None}
        assert paper.peers[key].f1 == expected, key
    lenient = paper.peers["reasoningner_qwen3_8b"].convention()
    assert lenient.startswith("HuiResearch/ReasoningIE README.md, table 1: misc dropped → "
                              "misc-off; LENIENT matching")
    assert paper.domains == DOMAINS and len(paper.rows) == 7  # the paper's own table unchanged


def test_mit_is_marked_not_zero_shot_and_kept_out_of_the_avg(mit_run):
    run_dir, data = mit_run
    report = build(run_dir, data)  # data root: ai under crossner/, mit_movie beside it
    assert report.avg_names == ["ai"]
    assert report.domains["mit_movie"].full_split == 2443
    assert report.domains["mit_movie"].not_zero_shot == (
        "anchor trained on this dataset's train split (IEPile's training mix holds MIT Movie "
        "train)")
    for name, (ai, movie) in SEVEN_F1.items():
        domains = report.reports[name].domains
        assert (domains["ai"].total.f1, domains["mit_movie"].total.f1) == pytest.approx((ai, movie))
        assert report.our_avg(name) == pytest.approx(ai)
    md = render_markdown(report)
    assert "| mit_movie ¹ | 1 | 50.0 | 50.0 | **50.0** | – | – |" in md
    assert "| Avg. |  |  |  | **66.7** | 58.2† | +8.5 |" in md  # string/misc-on: ai alone
    assert "| Avg. (all 2) |  |  |  | 58.3 | – | – |" in md  # (2/3 + 1/2) / 2
    assert ("Avg. covers the zero-shot domains only (ai); Avg. (all 2) includes the domains "
            "marked ¹.") in md
    assert "| YEAR | year | 1 | 100.0 | 100.0 | 100.0 | 1 | 0 | 0 | number/time: no archetype" in md
    assert "| ACTOR | actor | 1 | 0.0 | 0.0 | 0.0 | 0 | 0 | 1 |  |" in md
    assert "| DIRECTOR | director | 0 | 0.0 | 0.0 | 0.0 | 0 | 1 | 0 |  |" in md
    assert "| TRAILER | trailer | 0 | 0.0 | 0.0 | 0.0 | 0 | 0 | 0 |  |" in md  # all labels shown


def test_peers_are_compared_in_their_closest_setting(mit_run, tmp_path):
    run_dir, data = mit_run
    out = tmp_path / "out"
    assert main(["--run", str(run_dir), "--data", str(data), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    sections = md.split("### compared in ")[1:]
    assert [s.split("\n", 1)[0] for s in sections] == [
        "string/misc-on", "string/misc-off", "span/misc-off"]
    on, off, span_off = sections
    assert "| system | ai | mit_movie ¹ |" in on
    assert "| **ours** (this run) | **66.7** | **50.0** |" in on
    assert "| SAM-NER (Llama3-8B) | 58.2 | – |" in on
    assert "| DiZiNER (ensemble of LLMs, no training) | 71.1 | 78.5 |" in on
    assert "| **ours** (this run) | **80.0** | **50.0** |" in off
    assert "| ReasoningNER (Qwen3-8B) | 71.0 | 76.3 |" in off
    assert "| **ours** (this run) | **85.7** | **50.0** |" in span_off
    assert "| GNER-T5-xxl (11B) | 68.2 | 62.5 |" in span_off
    assert "- GNER-T5-xxl (11B): GNER paper (Ding et al. 2024, arXiv 2402.16602) Table 2: misc " \
           "dropped → misc-off; strict entity matching → span mode" in span_off

    with open(out / "peers.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    # string/misc-on: SAM-NER (ai only) + 4 peers x 2 domains; the two misc-off groups: 3 x 2
    assert len(rows) == 1 + 4 * 2 + 3 * 2 + 3 * 2
    by_key = {(r["peer"], r["domain"]): r for r in rows}
    assert set(by_key) == {(k, d) for k in PEER_SETTINGS for d in ("ai", "mit_movie")
                           if not (k == "sam_ner_llama3_8b" and d == "mit_movie")}
    gner = by_key[("gner_t5_xxl", "ai")]
    assert (float(gner["peer_f1"]), gner["setting"], gner["mode"], gner["misc"]) == (
        68.2, "span/misc-off", "span", "False")
    assert float(gner["our_f1"]) == pytest.approx(600 / 7)
    assert float(by_key[("uniner_7b_type", "mit_movie")]["our_f1"]) == pytest.approx(50.0)

    with open(out / "scores.csv", encoding="utf-8") as handle:
        scores = {(r["setting"], r["domain"]): r for r in csv.DictReader(handle)}
    assert len(scores) == 4 * 4  # (ai, mit_movie, Avg., Avg. (all 2)) per setting
    avg = scores[("span/misc-off", AVG)]
    assert (float(avg["f1"]), float(avg["paper_f1"]), int(avg["sentences"])) == (
        pytest.approx(600 / 7), 58.2, 2)
    assert float(scores[("span/misc-off", "Avg. (all 2)")]["f1"]) == pytest.approx(
        100 * (6 / 7 + 1 / 2) / 2)

    payload = json.loads((out / "scores.json").read_text())
    assert payload["avg_domains"] == ["ai"]
    movie = payload["domains"]["mit_movie"]
    assert (movie["zero_shot"], movie["number_time_labels"]) == (
        False, ["RATING", "RATINGS_AVERAGE", "YEAR"])
    assert payload["domains"]["ai"]["zero_shot"] is True
    assert len(payload["peers"]["compared"]) == len(rows)


@pytest.mark.parametrize(("change", "message"), [
    ({"misc": "sometimes"}, "peers.rows.x.misc: 'sometimes' is not one of"),
    ({"matching": "fuzzy"}, "peers.rows.x.matching: 'fuzzy' is not one of"),
    ({"f1": {"tv": 1.0}}, "peers.rows.x: columns ['tv'] are not in peers.columns"),
])
def test_malformed_peer_row_is_a_one_line_error(tmp_path, change, message):
    data = yaml.safe_load(DEFAULT_PAPER.read_text(encoding="utf-8"))
    data["peers"]["rows"] = {"x": {"label": "X", "f1": {"ai": 1.0}, "misc": "kept",
                                   "matching": "strict", "source": "s", **change}}
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ProjectError, match=re.escape(f"{path}: {message}")):
        load_paper(path)


# --- what the report says about the run's setting: definitions first, answers repaired or cut
# per stage, and the primary source of every paper number ----------------------------------


def write_run_json(run_dir, definitions):
    (run_dir / "run.json").write_text(json.dumps({"definitions": definitions}))


VARIANT = {"source": "mappings/definitions/train_examples.yaml", "setting":
           "in_domain_train_examples", "setting_means": "definitions with in-domain train "
           "examples: not the paper's setting", "paper_setting": False,
           "domains": {"ai": {"from": "file", "gold_strings_quoted": []},
                       "music": {"from": "default", "gold_strings_quoted": []}}}


def test_train_example_definitions_head_the_report(tiny_run):
    run_dir, data = tiny_run
    write_run_json(run_dir, VARIANT)
    text = render_markdown(build(run_dir, data))
    lines = text.splitlines()
    assert lines[2] == "> **WARNING: these are NOT paper numbers.**"
    assert lines[3] == ("> - definitions with in-domain train examples: not the paper's setting "
                        "(mappings/definitions/train_examples.yaml)")
    assert ("- definitions: mappings/definitions/train_examples.yaml (setting "
            "`in_domain_train_examples`); each domain file's own for music") in lines


def test_definitions_that_quote_test_gold_are_flagged(tiny_run):
    run_dir, data = tiny_run
    record = {**VARIANT, "setting": "external", "setting_means": "from a file",
              "domains": {"ai": {"from": "file", "gold_strings_quoted": [
                  "Java", "machine learning", "A", "B", "C", "D"]}}}
    write_run_json(run_dir, record)
    warnings = build(run_dir, data).warnings
    assert warnings[:2] == [
        "from a file (mappings/definitions/train_examples.yaml)",
        "the definitions shown for ai quote 6 gold mention(s) of its test file ('Java', "
        "'machine learning', 'A', 'B', 'C', ...): not zero-shot"]


def test_paper_setting_definitions_add_no_warning(tiny_run):
    run_dir, data = tiny_run
    write_run_json(run_dir, {**VARIANT, "setting": "guidelines", "paper_setting": True,
                             "source": "mappings/domains (each domain file's own definitions)",
                             "domains": {"ai": {"from": "default", "gold_strings_quoted": []}}})
    report = build(run_dir, data)
    assert not any("definitions" in w for w in report.warnings)
    assert report.definitions == ("definitions: mappings/domains (each domain file's own "
                                  "definitions) (setting `guidelines`)")


def test_answers_repaired_and_cut_per_stage(tiny_run, tmp_path):
    run_dir, data = tiny_run
    (run_dir / "music" / "stats.json").write_text(json.dumps({"sentences": 2, "stages": {
        "stage1_explorer": {"requests": 5, "status_ok": 2, "status_repaired": 2,
                            "status_invalid": 1, "truncated": 1},
        "stage1_discovery": {"consensus_dropped": 3},
        "stage3_calibration": {"requests": 4, "status_ok": 4}}}))
    out = tmp_path / "out"
    assert main(["--run", str(run_dir), "--data", str(data), "--out", str(out)]) == 0
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "| music | stage1_explorer | 5 | 2 | 2 | 0 | 1 | 1 |" in text
    assert "| music | stage3_calibration | 4 | 4 | 0 | 0 | 0 | 0 |" in text
    assert "stage1_discovery |" not in text.split("## Answers per stage")[1].split("##")[0]
    answers = json.loads((out / "scores.json").read_text())["answers"]
    assert answers[0] == {"domain": "music", "stage": "stage1_explorer", "requests": 5,
                          "status_ok": 2, "status_repaired": 2, "status_empty": 0,
                          "status_invalid": 1, "truncated": 1}


def test_every_paper_number_names_a_primary_source():
    paper = load_paper(DEFAULT_PAPER)
    sources = [paper.source] + [row.source for row in paper.rows.values()] + [
        p.source for p in paper.peers.values()]
    assert all(sources) and not any("SPEC" in s or "shared/" in s for s in sources)
    assert paper.rows["sam_ner_llama3_8b"].source == "SAM-NER paper (arXiv 2605.03706) Table 1"
    raw = yaml.safe_load(DEFAULT_PAPER.read_text(encoding="utf-8"))
    assert raw["table3_ccr"]["source"].endswith("Table 3")
    assert raw["table6_ablation"]["source"].startswith("SAM-NER paper (arXiv 2605.03706) Table 6")
    assert "SPEC" not in DEFAULT_PAPER.read_text(encoding="utf-8")


def test_a_paper_row_without_a_source_is_refused(tmp_path):
    data = yaml.safe_load(DEFAULT_PAPER.read_text(encoding="utf-8"))
    del data["main"]["uniner_13b"]["source"]
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ProjectError, match="not a paper results file"):
        load_paper(path)


def test_direct_typing_is_the_papers_ablation_and_the_lookup_is_not():
    direct, _ = model_warnings({"model": "meta-llama/Meta-Llama-3-8B-Instruct",
                                "typing": "direct", "calibration": {"enabled": False}})
    lookup, _ = model_warnings({"model": "meta-llama/Meta-Llama-3-8B-Instruct",
                                "typing": "archetypes", "calibration": {"enabled": False}})
    assert direct == lookup == []
    _, direct_notes = model_warnings({"model": "m-llama3-8b", "typing": "direct",
                                      "calibration": {"enabled": False}})
    _, lookup_notes = model_warnings({"model": "m-llama3-8b", "typing": "archetypes",
                                      "calibration": {"enabled": False}})
    assert [n for n in direct_notes if "56.2" in n] == [
        "typing: direct - the paper's w/o-calibration ablation: a classifier trained on IEPile's "
        "own type names picks the target label, no calibration (paper Table 6: Avg 56.2 w/o "
        "calibration)"]
    assert not any("56.2" in n for n in lookup_notes)
    assert any("NOT the paper's w/o-calibration ablation" in n for n in lookup_notes)


def test_confusion_matrices_and_errors_page(tiny_run, tmp_path):
    """The main setting (string, misc on): ai-0 Google organisation typed misc, ai-1 CNN missed
    and RNN (nowhere) spurious; music-1 Yesterday song typed album; the rest right."""
    from tests.test_html_view import entity_spans_from_html

    run_dir, data = tiny_run
    out = tmp_path / "out"
    assert main(["--run", str(run_dir), "--data", str(data), "--out", str(out)]) == 0
    payload = json.loads((out / "scores.json").read_text())
    assert set(payload) == {"scorer_version", "run_dir", "data_dir", "model", "not_paper_numbers",
                            "warnings", "notes", "definitions", "paper", "domains", "avg_domains",
                            "settings", "peers", "diagnostics", "answers", "confusion"}
    confusion = payload["confusion"]
    assert confusion["setting"] == "string/misc-on" and "right boundaries" in confusion["rule"]
    ai, music = confusion["domains"]["ai"], confusion["domains"]["music"]
    assert ai["rows"] == ["algorithm", "misc", "organisation", "researcher", "spurious"]
    assert ai["columns"] == ["algorithm", "misc", "organisation", "researcher", "missed"]
    assert ai["matrix"] == [[1, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 1, 0],
                            [1, 0, 0, 0, 0]]
    assert music["rows"] == ["album", "location", "misc", "musicalartist", "song", "spurious"]
    assert music["matrix"] == [[0] * 6, [0, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0],
                               [0, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0], [0] * 6]

    md = (out / "report.md").read_text()
    assert "[errors.html](errors.html)" in md
    assert "| gold \\ predicted | algorithm | misc | organisation | researcher | *missed* |" in md
    assert "| organisation | · | 1 | · | · | · |" in md
    assert "| *spurious* | 1 | · | · | · | · |" in md
    assert "| song | 1 | · | · | · | · | · |" in md
    # each domain's matrix follows its per-type table
    assert md.index("### ai") < md.index("[plot](confusion_ai.png)") < md.index("### music")
    for domain in ("ai", "music"):
        png = (out / f"confusion_{domain}.png").read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) > 1000

    rows = entity_spans_from_html((out / "errors.html").read_text(encoding="utf-8"))
    assert [r["attrs"]["data-d"] for r in rows] == ["ai", "ai", "music", "music"]
    errors = {(side, m[4], m[2], m[3]) for r in rows
              for side, marks in (("gold", r["lines"][0]["marks"]),
                                  ("pred", r["lines"][1]["marks"]), ("listed", r["listed"]))
              for m in marks if m[3]}
    assert errors == {("gold", "Google", "organisation", "wt"), ("pred", "Google", "misc", "wt"),
                      ("gold", "CNN", "algorithm", "fn"), ("listed", "RNN", "algorithm", "fp"),
                      ("gold", "Yesterday", "song", "wt"), ("pred", "Yesterday", "album", "wt")}
    assert [m[:2] for m in rows[2]["lines"][1]["marks"]] == [(0, 3), (8, 11), (15, 20)]
