"""eval.export: CoNLL BIO byte for byte, DocBin round trips, and every unaligned entity counted.

Offsets below are counted by hand (code points, end exclusive).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

from core.documents import read_documents, token_spans_of
from core.io import ProjectError
from core.text import place_mentions, sentence_spans, windows
from eval.export import main, to_conll, to_docbin
from tests.conftest import REPO

# "Ada Lovelace met Charles Babbage in London ." : Ada 0-3, Lovelace 4-12, met 13-16,
# Charles 17-24, Babbage 25-32, in 33-35, London 36-42, . 43-44
ADA = {"id": "doc-1", "text": "Ada Lovelace met Charles Babbage in London .",
       "tokens": [[0, 3], [4, 12], [13, 16], [17, 24], [25, 32], [33, 35], [36, 42], [43, 44]],
       "entities": [{"start": 36, "end": 42, "text": "London", "type": "city"},
                    {"start": 0, "end": 12, "text": "Ada Lovelace", "type": "person"}]}
# "I like Python" : I 0-1, like 2-6, Python 7-13 (the entity ends on the last token)
PY = {"id": "doc-2", "text": "I like Python", "tokens": [[0, 1], [2, 6], [7, 13]],
      "entities": [{"start": 7, "end": 13, "text": "Python", "type": "programming language"}]}
# "Zoë 🙂 met Montréal" with ë and é as a letter plus a combining mark (U+0308, U+0301):
# Zoe\u0308 0-4, 🙂 5-6, met 7-10, Montre\u0301al 11-20
ZOE_TEXT = "Zoe\u0308 \U0001F642 met Montre\u0301al"
ZOE = {"id": "doc-3", "text": ZOE_TEXT, "tokens": [[0, 4], [5, 6], [7, 10], [11, 20]],
       "entities": [{"start": 0, "end": 4, "text": "Zoe\u0308", "type": "person"},
                    {"start": 11, "end": 20, "text": "Montre\u0301al", "type": "city"}]}

CONLL = ("# id = doc-1\n"
         "Ada\tB-person\nLovelace\tI-person\nmet\tO\nCharles\tO\nBabbage\tO\nin\tO\n"
         "London\tB-city\n.\tO\n"
         "\n"
         "# id = doc-2\n"
         "I\tO\nlike\tO\nPython\tB-programming_language\n"
         "\n")


def read_docbin(path: Path) -> list:
    return list(DocBin().from_disk(path).get_docs(spacy.blank("xx").vocab))


def spans(doc) -> list[tuple[int, int, str]]:
    return [(e.start_char, e.end_char, e.label_) for e in doc.ents]


def test_conll_is_bio_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "ner.conll"
    counts = to_conll([ADA, PY], out)
    assert out.read_bytes() == CONLL.encode("utf-8")
    assert (counts.documents, counts.entities) == (2, 3)


def test_conll_without_comments_and_with_combining_marks(tmp_path: Path) -> None:
    out = tmp_path / "ner.conll"
    to_conll([ZOE, {**PY, "tokens": []}, PY], out, comments=False)
    assert out.read_text(encoding="utf-8") == (
        "Zoe\u0308\tB-person\n\U0001F642\tO\nmet\tO\nMontre\u0301al\tB-city\n\n"
        "I\tO\nlike\tO\nPython\tB-programming_language\n\n")


def test_conll_needs_tokens(tmp_path: Path) -> None:
    plain = {"id": "p-7", "text": "I like Python", "entities": []}
    with pytest.raises(ProjectError) as err:
        to_conll([PY, plain], tmp_path / "x.conll")
    assert str(err.value) == ("CoNLL BIO output needs pre-tokenised input (`tokens`); "
                              "record p-7 has none")
    assert list(tmp_path.iterdir()) == []  # atomic: no file, no temporary left


def test_conll_refuses_an_entity_off_token_boundaries(tmp_path: Path) -> None:
    bad = {**PY, "entities": [{"start": 8, "end": 13, "type": "x"}]}
    with pytest.raises(ProjectError, match=r"doc-2: .* not on token boundaries"):
        to_conll([bad], tmp_path / "x.conll")
    assert not (tmp_path / "x.conll").exists()  # atomic: nothing half-written


def test_docbin_round_trip_pretokenised(tmp_path: Path) -> None:
    gappy = {"id": 4, "text": "a  b ", "tokens": [[0, 1], [3, 4]],  # two spaces, a trailing one
             "entities": [{"start": 3, "end": 4, "type": "letter"}]}
    records = [ADA, PY, ZOE, gappy]
    counts = to_docbin(records, tmp_path / "ner.spacy")
    assert (counts.documents, counts.entities, counts.expanded, counts.not_placed) == (4, 6, 0, 0)
    docs = read_docbin(tmp_path / "ner.spacy")
    assert [d.text for d in docs] == [r["text"] for r in records]
    assert [d.user_data["id"] for d in docs] == ["doc-1", "doc-2", "doc-3", 4]
    assert [spans(d) for d in docs] == [
        [(0, 12, "person"), (36, 42, "city")],
        [(7, 13, "programming language")],
        [(0, 4, "person"), (11, 20, "city")],
        [(3, 4, "letter")]]
    assert [t.text for t in docs[0]] == ADA["text"].split(" ")  # the caller's tokens, kept


def test_docbin_plain_text_keeps_emoji_and_combining_offsets(tmp_path: Path) -> None:
    # blank xx splits it as Zoë 0-4, 🙂 5-6, loves 7-12, Montréal 13-22, . 22-23
    text = "Zoe\u0308 \U0001F642 loves Montre\u0301al."
    record = {"id": "z", "text": text,
              "entities": [{"start": 0, "end": 4, "type": "person"},
                           {"start": 13, "end": 22, "type": "city"}]}
    counts = to_docbin([record], tmp_path / "z.spacy")
    assert (counts.entities, counts.expanded, counts.not_placed) == (2, 0, 0)
    (doc,) = read_docbin(tmp_path / "z.spacy")
    assert doc.text == text and spans(doc) == [(0, 4, "person"), (13, 22, "city")]
    assert doc.ents[1].text == "Montre\u0301al"


def test_docbin_widens_or_counts_entities_off_the_blank_tokens(tmp_path: Path) -> None:
    records = [
        # "York" inside "Yorkshire": widened to the token, counted
        {"id": "a", "text": "Yorkshire pudding",
         "entities": [{"start": 0, "end": 4, "text": "York", "type": "city"}]},
        # blank xx splits the hyphen off, so "York" in "York-based" is a token: exact
        {"id": "b", "text": "a York-based firm",
         "entities": [{"start": 2, "end": 6, "text": "York", "type": "city"}]},
        # "New" and "York" inside one token "NewYork": the first widens, the second cannot
        {"id": "c", "text": "NewYork times",
         "entities": [{"start": 0, "end": 3, "type": "x"}, {"start": 3, "end": 7, "type": "y"}]},
    ]
    counts = to_docbin(records, tmp_path / "w.spacy")
    assert (counts.documents, counts.entities, counts.expanded, counts.not_placed) == (3, 3, 2, 1)
    assert counts.problems == ["record a: city 'York' at 0: widened to 'Yorkshire'",
                               "record c: x 'New' at 0: widened to 'NewYork'",
                               "record c: y 'York' at 3: not placed (its tokens are taken)"]
    docs = read_docbin(tmp_path / "w.spacy")
    assert [spans(d) for d in docs] == [[(0, 9, "city")], [(2, 6, "city")], [(0, 7, "x")]]


def test_broken_offsets_are_an_error(tmp_path: Path) -> None:
    bad = {"id": "q", "text": "Paris", "entities": [{"start": 0, "end": 4, "text": "Paris",
                                                      "type": "city"}]}
    with pytest.raises(ProjectError, match=r"record q: entity 'Paris' at 0\.\.4 reads 'Pari'$"):
        to_docbin([bad], tmp_path / "q.spacy")


def test_cli_writes_both_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(json.dumps(r) + "\n" for r in (ADA, PY)), encoding="utf-8")
    assert main(["--predictions", str(predictions), "--format", "conll",
                 "--out", str(tmp_path / "o.conll")]) == 0
    assert (tmp_path / "o.conll").read_text(encoding="utf-8") == CONLL
    assert main(["--predictions", str(predictions), "--format", "docbin",
                 "--out", str(tmp_path / "o.spacy")]) == 0
    assert [spans(d) for d in read_docbin(tmp_path / "o.spacy")] == [
        [(0, 12, "person"), (36, 42, "city")], [(7, 13, "programming language")]]
    out = capsys.readouterr().out.splitlines()
    assert out == [f"wrote {tmp_path / 'o.conll'} (conll): 2 documents, 3 entities",
                   f"wrote {tmp_path / 'o.spacy'} (docbin): 2 documents, 3 entities"]


def test_cli_names_the_bad_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text(json.dumps(PY) + "\n{oops\n", encoding="utf-8")
    assert main(["--predictions", str(predictions), "--format", "conll",
                 "--out", str(tmp_path / "o.conll")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {predictions}:2: invalid JSON")
    assert not (tmp_path / "o.conll").exists()


def test_importing_the_module_does_not_import_spacy() -> None:
    code = "import sys, eval.export; assert 'spacy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# --- pre-tokenised input, end to end ------------------------------------------------------------

# as the recognizer writes them: the given token strings, entities in offsets of the text.
# "a": tokens only, text "The U.S. and AT&T use e - mail .": U.S. 4-8, AT&T 13-17
# "b": "Ada\tLovelace\r\nmet 🙂 New-York.": Ada 0-3, Lovelace 4-12, met 14-17, 🙂 18-19,
#      New-York 20-28, . 28-29 (no space before it)
GIVEN_JSONL = [
    {"id": "a", "tokens": ["The", "U.S.", "and", "AT&T", "use", "e", "-", "mail", "."]},
    {"id": "b", "text": "Ada\tLovelace\r\nmet \U0001F642 New-York.",
     "tokens": ["Ada", "Lovelace", "met", "\U0001F642", "New-York", "."]},
]
GIVEN_CONLL = ("# id = a\n"
               "The\tO\nU.S.\tB-country\nand\tO\nAT&T\tB-organisation\nuse\tO\ne\tO\n-\tO\n"
               "mail\tO\n.\tO\n"
               "\n"
               "# id = b\n"
               "Ada\tB-person\nLovelace\tI-person\nmet\tO\n\U0001F642\tO\nNew-York\tB-city\n"
               ".\tO\n"
               "\n")


def recognizer_records(path: Path) -> list[dict]:
    """What eval/recognizer.py does with pre-tokenised documents, the model's answers faked."""
    answers = [("U.S.", "country"), ("AT&T", "organisation"), ("Ada Lovelace", "person"),
               ("New-York", "city"), ("e-mail", "thing")]  # e-mail: not the given tokens
    records = []
    for doc in read_documents(path):
        spans = token_spans_of(doc)
        found = windows(doc.text, sentence_spans(doc.text, spans), 50, lambda t: len(t.split()),
                        spans=spans)
        counts: Counter[str] = Counter()
        entities = [{**e, "found_by": ["anchor"], "archetype": e["type"]}
                    for w in found for e in place_mentions(doc.text, w.spans, answers, counts)]
        records.append({"id": doc.id, "text": doc.text, "tokens": list(doc.tokens or ()),
                        "entities": entities})
    return records


def test_pretokenised_documents_to_conll_end_to_end(tmp_path: Path) -> None:
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in GIVEN_JSONL), encoding="utf-8")
    records = recognizer_records(source)
    assert records[0]["text"] == "The U.S. and AT&T use e - mail ."
    assert [(e["start"], e["end"], e["text"]) for r in records for e in r["entities"]] == [
        (4, 8, "U.S."), (13, 17, "AT&T"), (0, 12, "Ada\tLovelace"), (20, 28, "New-York")]
    counts = to_conll(records, tmp_path / "out.conll")
    assert (tmp_path / "out.conll").read_text(encoding="utf-8") == GIVEN_CONLL
    assert (counts.documents, counts.entities) == (2, 4)
    predictions = tmp_path / "predictions.jsonl"  # the command line reads them the same
    predictions.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    assert main(["--predictions", str(predictions), "--format", "conll",
                 "--out", str(tmp_path / "cli.conll")]) == 0
    assert (tmp_path / "cli.conll").read_text(encoding="utf-8") == GIVEN_CONLL


def test_string_tokens_round_trip_through_docbin(tmp_path: Path) -> None:
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in GIVEN_JSONL), encoding="utf-8")
    records = recognizer_records(source)
    counts = to_docbin(records, tmp_path / "ner.spacy")
    assert (counts.documents, counts.entities, counts.expanded, counts.not_placed) == (2, 4, 0, 0)
    docs = read_docbin(tmp_path / "ner.spacy")
    assert [d.text for d in docs] == [r["text"] for r in records]
    assert [[t.text for t in d if not t.is_space] for d in docs] == [r["tokens"] for r in records]
    assert [spans(d) for d in docs] == [[(4, 8, "country"), (13, 17, "organisation")],
                                        [(0, 12, "person"), (20, 28, "city")]]


def test_string_tokens_that_are_not_the_text_are_an_error(tmp_path: Path) -> None:
    bad = {"id": "z", "text": "New York", "tokens": ["New-York"], "entities": []}
    message = ("record z: tokens[0] 'New-York' does not match the text at offset 0, which reads "
               "'New York': tokens must appear in order, separated only by whitespace")
    with pytest.raises(ProjectError) as err:
        to_conll([bad], tmp_path / "x.conll")
    assert str(err.value) == message
    with pytest.raises(ProjectError) as err:
        to_docbin([bad], tmp_path / "x.spacy")
    assert str(err.value) == message
    assert list(tmp_path.iterdir()) == []
