"""The project's own sample data: the ``gadgets`` domain and the tiny SFT samples in upstream
layouts (``data_prep/samples/``), checked through the real loaders and converters."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from core.io import DataError
from core.mappings import load_archetypes, load_domain
from core.records import load_sentences
from data_prep import iepile, pile_ner
from data_prep.samples import annotated
from eval.config import IEPileConfig

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data_prep" / "samples"
GADGETS = REPO / "mappings" / "domains" / "gadgets"
ANNOTATED = GADGETS / "sentences.annotated.txt"
PILE_NER_SAMPLE = SAMPLES / "pile_ner_sample.json"
IEPILE_SAMPLE = SAMPLES / "iepile_ner_en_sample.jsonl"


# ---- the gadgets domain ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gadgets():
    return load_domain("gadgets")


@pytest.fixture(scope="module")
def sentences(gadgets):
    return load_sentences(gadgets.sentences_path())  # validates offsets and span texts


def test_gadgets_domain_loads(gadgets):
    assert gadgets.name == "gadgets"
    assert gadgets.source == GADGETS / "domain.yaml"
    assert gadgets.sentences_path() == GADGETS / "sentences.jsonl"
    assert 6 <= len(gadgets.labels) <= 8 and "misc" in gadgets.labels
    assert all(label.definition for label in gadgets.labels.values())
    assert set(gadgets.archetype_fallback) <= set(load_archetypes().names)
    assert load_domain(GADGETS).labels == gadgets.labels  # also loads by folder path


def test_gadgets_sentences(gadgets, sentences):
    assert len(sentences) >= 36
    assert [s.id for s in sentences] == [f"gadgets-{i}" for i in range(len(sentences))]
    assert {s.domain for s in sentences} == {"gadgets"}
    spans = [span for s in sentences for span in s.entities]
    assert {span.type for span in spans} <= set(gadgets.labels)
    per_label = Counter(span.type for span in spans)
    assert all(per_label[label] >= 3 for label in gadgets.labels), per_label
    assert len(spans) / len(sentences) >= 2.5
    assert sum(not s.entities for s in sentences) >= 2  # some sentences have no entity
    assert sum(span.end - span.start > 1 for span in spans) >= 10  # multi-token mentions
    mentions = Counter((span.text, span.type) for span in spans)
    assert sum(count > 1 for count in mentions.values()) >= 5  # repeated mentions
    assert any(len(s.entities) > len({e.text for e in s.entities}) for s in sentences)
    for s in sentences:  # spans are disjoint and in order
        ends = [e.end for e in s.entities]
        assert all(a <= b.start for a, b in zip(ends, s.entities[1:], strict=False)), s.id


def test_gadgets_jsonl_is_what_the_annotated_file_generates(tmp_path):
    generated = annotated.render_jsonl(annotated.read_annotated(ANNOTATED, "gadgets"))
    assert (GADGETS / "sentences.jsonl").read_text(encoding="utf-8") == generated
    out = tmp_path / "sentences.jsonl"
    args = ["--domain", "gadgets", "--src", str(ANNOTATED), "--out", str(out)]
    assert annotated.main(args) == 0
    assert out.read_text(encoding="utf-8") == generated
    assert annotated.main([*args[:4], "--out", str(GADGETS / "sentences.jsonl"), "--check"]) == 0
    out.write_text(generated.replace("gadgets-0", "gadgets-x", 1), encoding="utf-8")
    assert annotated.main([*args, "--check"]) == 1


def test_annotated_parser_offsets():
    line = "[Acme|company] ' s new phone , the [Zeta 5|product] , ships in [Oslo|location] ."
    [sentence] = annotated.parse_annotated(["# comment", "", line], "demo")
    assert sentence.id == "demo-0"
    assert sentence.text == "Acme ' s new phone , the Zeta 5 , ships in Oslo ."
    assert [(e.start, e.end, e.type, e.text) for e in sentence.entities] == [
        (0, 1, "company", "Acme"), (7, 9, "product", "Zeta 5"), (12, 13, "location", "Oslo")]


@pytest.mark.parametrize("line", [
    "[Acme|company]'s phone .",  # glued after
    "New[Acme|company] phone .",  # glued before
    "a stray ] bracket .",
    "[Acme company] without a label .",
    "[|company] empty mention .",
    "[Acme|two words] label with a space .",
    "[[Acme|company]|company] nested .",
])
def test_annotated_parser_refuses_bad_lines(line):
    with pytest.raises(DataError, match=r"<annotated>:2: "):
        annotated.parse_annotated(["ok [Acme|company] .", line], "demo")


# ---- Pile-NER sample (explorer) ----------------------------------------------------------------


def _pile_rows() -> list[dict]:
    rows = json.loads(PILE_NER_SAMPLE.read_text(encoding="utf-8"))
    assert isinstance(rows, list)
    return rows


def test_pile_ner_sample_layout():
    rows = _pile_rows()
    assert len(rows) >= 60
    types = Counter()
    for row in rows:
        passage = pile_ner.parse_conversation(row)  # the converter's own parser
        assert row["conversations"][1]["value"] == "I've read this text."
        answers = [(name, json.loads(answer)) for name, answer in passage.qa]
        positive = [name for name, mentions in answers if mentions]
        assert 2 <= len(positive) <= 5, passage.text[:60]
        assert 1 <= len(answers) - len(positive) <= 2, passage.text[:60]
        for name, mentions in answers:
            types[name] += 1
            for mention in mentions:
                assert mention in passage.text, (mention, passage.text[:60])
    assert len(types) >= 40  # natural-language types over many topics


def test_pile_ner_sample_converts(tmp_path):
    out = tmp_path / "explorer.json"
    stats = pile_ner.convert(PILE_NER_SAMPLE, out)
    rows = _pile_rows()
    assert stats.records_read == stats.passages_written == len(rows)
    assert stats.unparseable_answers == stats.bad_records == stats.duplicate_types == 0
    assert stats.passages_without_type == stats.empty_mentions == 0
    records = json.loads(out.read_text(encoding="utf-8"))
    assert len(records) == len(rows)
    assert all(set(r) == {"instruction", "input", "output"} for r in records)
    assert pile_ner.main(["--src", str(PILE_NER_SAMPLE), "--out", str(tmp_path / "e.jsonl")]) == 0
    assert len((tmp_path / "e.jsonl").read_text(encoding="utf-8").splitlines()) == len(rows)


# ---- IEPile sample (archetype classifier) ------------------------------------------------------


def _iepile_records() -> list[tuple[dict, dict, dict]]:
    """(record, decoded instruction, decoded output) per line."""
    records = []
    for line in IEPILE_SAMPLE.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        records.append((record, json.loads(record["instruction"]), json.loads(record["output"])))
    return records


def test_iepile_sample_layout():
    records = _iepile_records()
    assert len(records) >= 60
    archetypes = load_archetypes()
    covered = set()
    for record, instruction, output in records:
        assert set(record) == {"task", "source", "instruction", "output"}
        assert record["task"] == "NER" and record["source"] == "samner_sample"
        assert instruction["instruction"] == IEPileConfig().instruction  # IEPile's, quoted
        assert 1 <= len(instruction["schema"]) <= 6
        assert list(output) == instruction["schema"]  # keys in schema order, none missing
        for type_name, mentions in output.items():
            assert archetypes.is_dropped(type_name) or archetypes.project(type_name), type_name
            for mention in mentions:
                assert mention in instruction["input"], (mention, instruction["input"])
            if mentions and not archetypes.is_dropped(type_name):
                covered.add(archetypes.project(type_name))
    assert len(covered) >= 10, sorted(covered)
    assert sum(not m for _, _, out in records for m in out.values()) >= 20  # negative types


def test_iepile_sample_converts_without_skip_unmapped(tmp_path):
    out = tmp_path / "classifier.jsonl"
    stats = iepile.convert(IEPILE_SAMPLE, out)  # raises UnmappedTypesError on an unknown type
    count = len(_iepile_records())
    assert stats.lines_read == stats.records_written == count
    assert not stats.unmapped_records and stats.unmapped_mentions == 0
    assert stats.bad_lines == stats.not_ner == stats.no_entity == 0
    assert stats.no_mention_left == stats.no_tagged_mention == 0
    assert stats.mentions_not_found == stats.conflicts == stats.duplicate_mentions == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == count
    assert all("<ENT>" in r["input"] for r in records)
    assert iepile.main(["--src", str(IEPILE_SAMPLE), "--out", str(tmp_path / "c.json")]) == 0
    assert len(json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))) == count


def test_iepile_sample_converts_for_the_direct_classifier(tmp_path):
    """The tiny and demo direct-typing classifiers train on the same sample: every record, with
    the record's own (unprojected) types as candidates and answers."""
    out = tmp_path / "direct_classifier.jsonl"
    stats = iepile.convert(IEPILE_SAMPLE, out, target="direct")
    count = len(_iepile_records())
    assert stats.records_written == count and stats.conflicts == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    archetypes = load_archetypes()
    for record, (_, instruction, output) in zip(records, _iepile_records(), strict=True):
        schema = json.loads(record["instruction"].rsplit("\nSchema: ", 1)[1])
        assert schema == [t for t in instruction["schema"] if not archetypes.is_dropped(t)]
        answered = {t for pair in json.loads(record["output"]) for t in pair.values()}
        assert answered <= set(schema) and answered <= set(output)
