"""The recognizer that stays loaded (eval.recognizer) on the fake backend: documents of any
length in document offsets, one request stream per stage over all documents, answers reused by
content across calls and label sets, where each entity came from, and the OUT lock."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from core.io import ConfigError, iter_jsonl
from eval.engine import FakeBackend
from eval.recognizer import Recognizer
from tests.conftest import REPO
from tests.test_gpu_smoke import needs_cpu_vllm
from tests.test_predict import KNOWN, oracle, tiny_config
from tools.offline_env import offline_env

DOC_A = ("Ada Lovelace wrote to Charles Babbage.\r\nShe lived in London.\r\n\r\n"
         "Zoë met her in Zürich.")
DOC_B = "Nothing to see here. Then New York!"


def config_file(tmp_path: Path, **documents: int) -> Path:
    path = tmp_path / "fake.yaml"
    path.write_text(yaml.safe_dump({"model": "fake", "documents": documents,
                                    "engine": {"backend": "fake", "chunk_size": 64}}))
    return path


def spans(record: dict) -> list[tuple[int, int, str, str]]:
    return [(e["start"], e["end"], e["text"], e["type"]) for e in record["entities"]]


@pytest.fixture
def ner(tmp_path: Path):
    backend = FakeBackend(oracle(KNOWN))
    with Recognizer.from_config(config_file(tmp_path), out=tmp_path / "out",
                                backend=backend) as recognizer:
        yield recognizer, backend


def test_documents_come_back_in_document_offsets(ner) -> None:
    recognizer, backend = ner
    records = recognizer.predict([DOC_A, DOC_B, "  \n "], ["person", "city"])
    assert [r["id"] for r in records] == ["1", "2", "3"]
    assert spans(records[0]) == [(0, 12, "Ada Lovelace", "person"),
                                 (22, 37, "Charles Babbage", "person"),
                                 (53, 59, "London", "city"),
                                 (64, 67, "Zoë", "person"), (79, 85, "Zürich", "city")]
    assert spans(records[1]) == [(26, 34, "New York", "city")]
    assert records[2]["entities"] == [] and records[2]["skipped"] == "empty document"
    for record in records:
        assert all(record["text"][e["start"]:e["end"]] == e["text"] for e in record["entities"])
    # each entity says where it came from: both default extractors, the classifier's archetype
    assert {(e["text"], tuple(e["found_by"]), e["archetype"]) for e in records[0]["entities"]} \
        == {(m, ("anchor", "explorer"), "person") for m in
            ("Ada Lovelace", "Charles Babbage", "London", "Zoë", "Zürich")}
    # three windows (two paragraphs of DOC_A, one of DOC_B) in three streams, one per stage
    assert backend.calls == 3
    counts = json.loads((recognizer.out / "predict.json").read_text())
    assert {k: counts[k] for k in ("documents", "windows", "split_windows", "skipped_empty",
                                   "entities", "recut_documents")} == {
        "documents": 3, "windows": 3, "split_windows": 0, "skipped_empty": 1, "entities": 6,
        "recut_documents": 0}


def test_the_same_text_twice_generates_nothing_and_new_labels_only_stage3(ner) -> None:
    recognizer, backend = ner
    docs = [{"id": "a", "text": DOC_A}, {"id": "b", "text": DOC_B}]
    first = recognizer.predict(docs, ["person", "city"])
    asked = backend.requests
    assert recognizer.predict(docs[::-1], ["person", "city"]) == first[::-1]
    assert backend.requests == asked  # every answer reused: the engine was not asked
    recognizer.predict([DOC_A, DOC_B], {"person": "a human", "city": None})
    # stage 1 asks for the same types and stage 2 for archetypes: only the calibrator's
    # prompt (it shows the definitions) is new, once per mention
    assert backend.requests - asked == 6


def test_windows_fit_the_budget_and_a_long_sentence_is_cut(tmp_path: Path) -> None:
    backend = FakeBackend(oracle(KNOWN))
    long_sentence = " ".join(["word"] * 60) + " London."
    with Recognizer.from_config(config_file(tmp_path, window_tokens=60),
                                out=tmp_path / "out", backend=backend) as recognizer:
        [record] = recognizer.predict([long_sentence], ["city"])
    assert spans(record) == [(300, 306, "London", "city")]
    counts = json.loads((tmp_path / "out" / "predict.json").read_text())
    # the fake tokenizer counts characters: 60 fits 12 "word"s and their spaces
    assert (counts["windows"], counts["split_windows"]) == (6, 6)


def test_out_is_locked_while_the_recognizer_lives(tmp_path: Path) -> None:
    backend = FakeBackend(oracle(KNOWN))
    config = config_file(tmp_path)
    with Recognizer.from_config(config, out=tmp_path / "out", backend=backend), \
            pytest.raises(ConfigError, match="is in use by a live run"):
        Recognizer.from_config(config, out=tmp_path / "out", backend=backend)
    Recognizer.from_config(config, out=tmp_path / "out", backend=backend).close()  # released


SCRIPT = """
import json, sys
from eval import engine
from eval.recognizer import Recognizer

starts = []
start = engine.VLLMBackend._start
engine.VLLMBackend._start = lambda self: (starts.append(1), start(self))[1]
config, out = sys.argv[1], sys.argv[2]
first_texts = ["Ada Lovelace wrote to Charles Babbage from London.",
               "Zoë flew from Zürich to New York on Tuesday."]
with Recognizer.from_config(config, out=out) as ner:
    first = ner.predict(first_texts, ["person", "city"])
    calls = ner.backend.calls
    second = ner.predict([first_texts[0], "A third text, about Paris."],
                         {"person": "A named human being.", "city": None})
    print(json.dumps({"starts": len(starts), "calls": [calls, ner.backend.calls],
                      "first": first, "second": second}))
"""


@pytest.mark.slow
@needs_cpu_vllm
def test_two_calls_in_one_process_start_one_engine(venv_python, tiny_assets, tmp_path) -> None:
    config = tiny_config(tiny_assets, tmp_path / "tiny.yaml")
    done = subprocess.run([str(venv_python("infer")), "-c", SCRIPT, str(config),
                           str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO,
                          env=offline_env(), timeout=1500)
    (tmp_path / "recognizer.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # one engine for both calls; the tiny model finds nothing, so each call is one stage-1
    # stream, and the second asks only for its new document (the first's answers are reused)
    assert (result["starts"], result["calls"]) == (1, [1, 2])
    assert [(r["id"], r["entities"]) for r in result["first"] + result["second"]] == [
        ("1", []), ("2", []), ("1", []), ("2", [])]
    anchor = [r for _, r in iter_jsonl(tmp_path / "out" / "text" / "stage1_anchor.jsonl")]
    assert len(anchor) == 3  # three distinct windows asked once each


def test_pre_tokenised_documents_keep_their_tokens_for_conll(ner, tmp_path: Path) -> None:
    from eval.export import to_conll

    recognizer, _ = ner
    docs = tmp_path / "docs.jsonl"
    # the tokens differ from ours ("Lovelace's" would be three tokens here): they are kept
    docs.write_text(json.dumps({"id": "t", "tokens": ["Ada", "Lovelace's", "notes", "reached",
                                                      "London", "."]}) + "\n")
    [record] = recognizer.predict(docs, ["person", "city"])
    assert record["text"] == "Ada Lovelace's notes reached London ."
    assert record["tokens"] == ["Ada", "Lovelace's", "notes", "reached", "London", "."]
    # "Ada Lovelace" is no run of the given tokens: counted, left out; London is placed
    assert spans(record) == [(29, 35, "London", "city")]
    assert recognizer.counts["mentions_not_token_aligned"] == 1
    to_conll([record], tmp_path / "out.conll")
    assert (tmp_path / "out.conll").read_text() == (
        "# id = t\nAda\tO\nLovelace's\tO\nnotes\tO\nreached\tO\nLondon\tB-city\n.\tO\n\n")
