"""CrossNER BIO → JSONL: real counts, stable ids, and located errors on malformed files."""

from __future__ import annotations

import json

import pytest

from core.bio import parse_bio
from core.io import DataError
from core.records import load_sentences
from data_prep import crossner
from tests.conftest import CROSSNER_DOMAINS

# Published CrossNER test sizes (sentences, entity spans), restated from the paper/SPEC by hand.
PUBLISHED = {"ai": (431, 1809), "literature": (416, 2266), "music": (465, 3336),
             "politics": (651, 4209), "science": (543, 3089)}


@pytest.mark.parametrize("domain", CROSSNER_DOMAINS)
def test_real_test_split_counts(converted_crossner, domain):
    sentences = load_sentences(converted_crossner / domain / "test.jsonl")
    entities = sum(len(s.entities) for s in sentences)
    assert (len(sentences), entities) == PUBLISHED[domain]


def test_entities_ending_on_the_last_token_are_kept(converted_crossner):
    """UniNER's files lose the 10 entities that end a sentence (ai 4, lit 2, music 2, pol 1,
    sci 1); we must keep at least those."""
    at_end = {d: sum(1 for s in load_sentences(converted_crossner / d / "test.jsonl")
                     for e in s.entities if e.end == len(s.tokens)) for d in CROSSNER_DOMAINS}
    assert all(at_end[d] >= n for d, n in
               {"ai": 4, "literature": 2, "music": 2, "politics": 1, "science": 1}.items())
    ai = load_sentences(converted_crossner / "ai" / "test.jsonl")
    assert any(e.text == "PSOLA" and e.end == len(s.tokens) for s in ai for e in s.entities)


def test_record_layout_and_stable_ids(converted_crossner):
    first = json.loads((converted_crossner / "ai" / "train.jsonl").read_text().splitlines()[0])
    assert first["id"] == "ai-train-0" and first["domain"] == "ai"
    assert first["text"] == " ".join(first["tokens"])
    # From the file's first lines: "opinion-based recommender system" is a product at tokens 3..6.
    assert first["tokens"][:3] == ["Popular", "approaches", "of"]
    assert first["entities"][0] == {"start": 3, "end": 6, "type": "product",
                                    "text": "opinion-based recommender system"}
    music = load_sentences(converted_crossner / "music" / "test.jsonl")
    assert [s.id for s in music[:2]] == ["music-test-0", "music-test-1"]
    assert music[-1].id == "music-test-464"


def test_published_count_check_flags_a_truncated_file(tmp_path):
    src = tmp_path / "src" / "ai"
    src.mkdir(parents=True)
    (src / "test.txt").write_text("Ann\tB-person\n\n")
    results = crossner.convert(tmp_path / "src", tmp_path / "out", ("ai",), ("test",))
    assert crossner.check_published_counts(results) == [
        "ai/test: 1 sentences / 1 entities, published 431 / 1809"]


def write_bio(tmp_path, text: str):
    path = tmp_path / "x.txt"
    path.write_bytes(text.encode("utf-8"))
    return path


def test_small_file_parse(tmp_path):
    path = write_bio(tmp_path, "The\tO\nNew\tB-band\nOrder\tI-band\n\nParis\tB-location\r\n")
    sentences, stats = parse_bio(path, "music", "dev")
    assert [s.tokens for s in sentences] == [["The", "New", "Order"], ["Paris"]]
    assert [(e.start, e.end, e.type, e.text) for e in sentences[0].entities] == [
        (1, 3, "band", "New Order")]
    assert [(e.start, e.end) for e in sentences[1].entities] == [(0, 1)]
    assert (stats.sentences, stats.entities, stats.per_type["band"]) == (2, 2, 1)


def test_adjacent_b_tags_make_two_entities(tmp_path):
    path = write_bio(tmp_path, "Ann\tB-person\nBo\tB-person\nCy\tI-person\n")
    sentences, _ = parse_bio(path, "d", "s")
    assert [(e.start, e.end) for e in sentences[0].entities] == [(0, 1), (1, 3)]


@pytest.mark.parametrize(("text", "line", "message"), [
    ("The\tO\nNew Order B-band\n", 2, "expected 'token<TAB>tag'"),
    ("The\tO\n\nNew\tX-band\n", 3, "is not O, B-<type> or I-<type>"),
    ("The\tO\nNew\tB-\n", 2, "is not O, B-<type> or I-<type>"),
    ("The\tO\nOrder\tI-band\n", 2, "continues no entity"),
    ("New\tB-band\nOrder\tI-song\n", 2, "continues 'band' entity"),
    ("\tO\n", 1, "empty token"),
])
def test_malformed_lines_fail_with_file_and_line(tmp_path, text, line, message):
    path = write_bio(tmp_path, text)
    with pytest.raises(DataError) as err:
        parse_bio(path, "d", "s")
    assert err.value.line == line
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert message in str(err.value)


def test_repair_turns_orphan_i_into_b_and_counts(tmp_path):
    path = write_bio(tmp_path, "The\tO\nOrder\tI-band\nNew\tB-band\nSong\tI-song\n")
    sentences, stats = parse_bio(path, "d", "s", repair=True)
    assert stats.repaired_orphan_i == 2
    assert [(e.start, e.end, e.type) for e in sentences[0].entities] == [
        (1, 2, "band"), (2, 3, "band"), (3, 4, "song")]


def test_cli_writes_domain_split_files(tmp_path, capsys, shared_data):
    out = tmp_path / "out"
    rc = crossner.main(["--src", str(shared_data / "crossner"), "--out", str(out),
                        "--domains", "music", "--splits", "test"])
    assert rc == 0
    assert (out / "music" / "test.jsonl").is_file()
    assert "465 sentences  3336 entities" in capsys.readouterr().out


def test_cli_missing_source_is_one_line_error(tmp_path, capsys):
    rc = crossner.main(["--src", str(tmp_path), "--out", str(tmp_path / "o"), "--domains", "ai"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "ai/train.txt" in err and "Traceback" not in err
