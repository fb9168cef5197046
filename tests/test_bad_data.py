"""Bad input files fail in one line naming file and line (never a traceback, never a silent
0-sentence success): CrossNER BIO files, sentence JSONL files and the shared JSON readers.
The IEPile, Pile-NER, registration and train-data cases live beside their modules' tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.bio import parse_bio
from core.io import DataError, iter_jsonl, read_json_or_jsonl
from core.records import load_sentences
from data_prep import crossner

BOM = b"\xef\xbb\xbf"


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def error_of(call, *args) -> str:
    with pytest.raises(DataError) as err:
        call(*args)
    return str(err.value)


# ---- CrossNER BIO files -------------------------------------------------------------------------

def test_bio_byte_that_is_not_utf8_names_file_and_line(tmp_path):
    path = write(tmp_path / "x.txt", b"The\tO\nBand\tO\nM\xf6tley\tB-band\n")  # Latin-1 "ö"
    assert error_of(parse_bio, path, "d", "s") == (
        f"{path}:3: not UTF-8: byte 0xf6 at column 2 (invalid start byte); save the file as UTF-8")


@pytest.mark.parametrize("data", [b"", b"\n\n  \n"], ids=["empty", "blank lines"])
def test_bio_file_without_a_sentence_fails(tmp_path, data):
    path = write(tmp_path / "x.txt", data)
    assert error_of(parse_bio, path, "d", "s") == (
        f"{path}: no sentences: the file is empty or blank")


def test_bio_bom_is_dropped(tmp_path):
    path = write(tmp_path / "x.txt", BOM + b"Paris\tB-location\nis\tO\n")
    sentences, _ = parse_bio(path, "d", "s")
    assert sentences[0].tokens == ["Paris", "is"]
    assert [(e.text, e.type) for e in sentences[0].entities] == [("Paris", "location")]


@pytest.mark.parametrize(("line", "token"), [
    (" \tO", " "),  # whitespace only
    ("New York\tB-location", "New York"),  # one token with a space inside
    ("Paris \tB-location", "Paris "),  # trailing space
    ("\u00a0\tO", "\u00a0"),  # no-break space
])
def test_bio_token_with_whitespace_names_file_and_line(tmp_path, line, token):
    path = write(tmp_path / "x.txt", f"In\tO\n{line}\n".encode())
    assert error_of(parse_bio, path, "d", "s") == (
        f"{path}:2: token {token!r} contains whitespace (tokens are joined with spaces: its "
        f"spans could never match)")


def test_cli_empty_bio_file_exits_2_with_one_line(tmp_path, capsys):
    write(tmp_path / "src" / "ai" / "test.txt", b"")
    code = crossner.main(["--src", str(tmp_path / "src"), "--out", str(tmp_path / "out"),
                          "--domains", "ai", "--splits", "test"])
    assert code == 2
    err = capsys.readouterr().err
    assert err == (f"error: {tmp_path / 'src' / 'ai' / 'test.txt'}: no sentences: the file is "
                   f"empty or blank\n")
    assert not (tmp_path / "out" / "ai" / "test.jsonl").exists()


# ---- sentence JSONL files -----------------------------------------------------------------------

def sentence(sid: str, tokens: list[str]) -> str:
    return json.dumps({"id": sid, "domain": "d", "tokens": tokens, "entities": []})


@pytest.mark.parametrize("data", [b"", b"\n \n"], ids=["empty", "blank lines"])
def test_sentences_file_without_a_sentence_fails(tmp_path, data):
    path = write(tmp_path / "s.jsonl", data)
    assert error_of(load_sentences, path) == f"{path}: no sentences: the file is empty or blank"


def test_sentences_file_bom_and_bad_bytes(tmp_path):
    path = write(tmp_path / "s.jsonl", BOM + (sentence("a", ["Hi"]) + "\n").encode())
    assert [s.tokens for s in load_sentences(path)] == [["Hi"]]
    bad = write(tmp_path / "bad.jsonl",
                (sentence("a", ["Hi"]) + "\n").encode() + b'{"id": "b\xff"}\n')
    assert error_of(load_sentences, bad) == (
        f"{bad}:2: not UTF-8: byte 0xff at column 10 (invalid start byte); save the file as UTF-8")


@pytest.mark.parametrize(("tokens", "message"), [
    (["New York"], "token #0 'New York' is empty or contains whitespace"),
    (["a", ""], "token #1 '' is empty or contains whitespace"),
    (["a", "\t"], "token #1 '\\t' is empty or contains whitespace"),
    ([], "'tokens' is empty"),
])
def test_sentences_file_bad_tokens_name_file_and_line(tmp_path, tokens, message):
    path = write(tmp_path / "s.jsonl",
                 (sentence("a", ["ok"]) + "\n" + sentence("b", tokens) + "\n").encode())
    assert error_of(load_sentences, path) == f"{path}:2: {message}"


# ---- the shared JSON readers --------------------------------------------------------------------

def test_json_array_bad_byte_names_its_line_and_bom_is_dropped(tmp_path):
    path = write(tmp_path / "a.json", BOM + b'[{"a": 1},\n {"a": "\xc3("}]\n')
    assert error_of(lambda p: list(read_json_or_jsonl(p)), path) == (
        f"{path}:2: not UTF-8: byte 0xc3 at column 9 (invalid continuation byte); save the file "
        f"as UTF-8")
    good = write(tmp_path / "b.json", BOM + b'[{"a": 1}]')
    assert list(read_json_or_jsonl(good)) == [(None, {"a": 1})]


def test_jsonl_bom_is_dropped(tmp_path):
    path = write(tmp_path / "a.jsonl", BOM + b'{"a": 1}\n\n{"a": 2}\n')
    assert list(iter_jsonl(path)) == [(1, {"a": 1}), (3, {"a": 2})]
