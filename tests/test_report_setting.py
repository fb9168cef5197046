"""What the report says about a run's setting: the definitions it showed (first, when they are not
the paper's), answers repaired or cut per stage, and the primary source of every paper number."""

from __future__ import annotations

import json

import pytest
import yaml

from data_prep.io import ProjectError
from eval.report import DEFAULT_PAPER, build, load_paper, main, render_markdown
from tests.test_report import tiny_run  # noqa: F401 - the fixture


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
