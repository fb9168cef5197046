"""Pre-tokenised documents (core/documents.py): ``"tokens"`` kept, aligned to the text exactly,
and every mismatch a one-line error naming the file, line and token.

Plain text files, folders and ``{"id", "text"}`` records are tested in tests/test_text.py.
Offsets are hand-computed (code points: 👩‍🔬 is 3, a flag is 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.documents import Document, DocumentError, read_documents, token_spans_of
from core.text import TokenError, token_spans

# "\tAda\tLovelace\r\nmet 👩‍🔬 in U.S. 🇷🇺\r\n": \t 0, Ada 1-4, \t 4, Lovelace 5-13, \r\n 13-15,
# met 15-18, 👩‍🔬 19-22, in 23-25, U.S 26-29, . 29-30 (no space before it), 🇷🇺 31-33, \r\n 33-35
MIXED_TEXT = "\tAda\tLovelace\r\nmet 👩\u200d🔬 in U.S. 🇷🇺\r\n"
MIXED_TOKENS = ["Ada", "Lovelace", "met", "👩\u200d🔬", "in", "U.S", ".", "🇷🇺"]
MIXED_SPANS = [(1, 4), (5, 13), (15, 18), (19, 22), (23, 25), (26, 29), (29, 30), (31, 33)]


def jsonl(tmp_path: Path, *records: object) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                    encoding="utf-8")
    return path


def test_tokens_only_record_is_its_tokens_joined_by_single_spaces(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"id": "t", "tokens": ["U.S.", "New-York", "e", "-", "mail"]})
    [doc] = read_documents(path)
    assert doc == Document("t", "U.S. New-York e - mail", ("U.S.", "New-York", "e", "-", "mail"))
    # U.S. 0-4, New-York 5-13, e 14-15, - 16-17, mail 18-22
    assert token_spans_of(doc) == [(0, 4), (5, 13), (14, 15), (16, 17), (18, 22)]
    assert hash(doc) == hash(Document("t", doc.text, doc.tokens))  # still frozen and hashable


def test_tokens_with_text_crlf_tabs_emoji_and_adjacent_tokens(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"id": 1, "text": MIXED_TEXT, "tokens": MIXED_TOKENS},
                 {"id": 2, "text": "plain U.S.", "tokens": None})
    first, second = read_documents(path)
    assert first == Document("1", MIXED_TEXT, tuple(MIXED_TOKENS))
    assert token_spans_of(first) == MIXED_SPANS
    assert [MIXED_TEXT[s:e] for s, e in MIXED_SPANS] == MIXED_TOKENS
    assert second == Document("2", "plain U.S.") and second.tokens is None  # null: no tokens
    assert token_spans_of(second) == token_spans("plain U.S.") == [(0, 5), (6, 9), (9, 10)]


def test_python_records_may_carry_tokens_too() -> None:
    docs = read_documents([{"id": "a", "tokens": ("x", "y")}, "plain",
                           {"id": "c", "text": "p q", "tokens": ["p", "q"]}, {"id": "e",
                                                                              "tokens": []}])
    assert docs == [Document("a", "x y", ("x", "y")), Document("2", "plain"),
                    Document("c", "p q", ("p", "q")), Document("e", "", ())]
    assert token_spans_of(docs[3]) == []  # an empty document: the recognizer skips it


def test_a_document_built_by_hand_with_wrong_tokens_fails_when_asked() -> None:
    with pytest.raises(TokenError, match=r"^tokens\[0\] 'b' does not match the text at offset"):
        token_spans_of(Document("x", "a", ("b",)))


@pytest.mark.parametrize(("record", "message"), [
    ({"id": "b", "text": "Ada Lovelacy", "tokens": ["Ada", "Lovelace"]},
     "tokens[1] 'Lovelace' does not match the text at offset 4, which reads 'Lovelacy': tokens "
     "must appear in order, separated only by whitespace"),
    ({"id": "b", "text": "a b", "tokens": ["b", "a"]},  # out of order
     "tokens[0] 'b' does not match the text at offset 0, which reads 'a': tokens must appear "
     "in order, separated only by whitespace"),
    ({"id": "b", "text": "ab c", "tokens": ["a", "c"]},  # something but whitespace between
     "tokens[1] 'c' does not match the text at offset 1, which reads 'b': tokens must appear "
     "in order, separated only by whitespace"),
    ({"id": "b", "text": "a ", "tokens": ["a", "b"]},
     "tokens[1] 'b' does not match the text at offset 2, which reads nothing (the end): tokens "
     "must appear in order, separated only by whitespace"),
    ({"id": "b", "text": "a b\r\nc", "tokens": ["a", "b"]},
     "the text goes on after the last token at offset 5: 'c': every word of the text must be "
     "a token"),
    ({"id": "b", "tokens": ["New York"]}, "tokens[0] 'New York' holds whitespace"),
    ({"id": "b", "tokens": ["a", "\t"]}, "tokens[1] '\\t' holds whitespace"),
    ({"id": "b", "tokens": ["a", ""]}, "tokens[1] is empty"),
    ({"id": "b", "tokens": ["a", 7]}, "tokens[1] must be a string, got a number"),
    ({"id": "b", "tokens": "a b"}, '"tokens" must be an array of strings, got a string'),
    ({"id": "b", "text": None, "tokens": ["a"]}, '"text" must be a string, got null'),
    ({"id": "b", "tokens": None}, 'the record has no "text"'),
])
def test_bad_tokens_fail_in_one_line_naming_file_line_and_token(tmp_path: Path, record: dict,
                                                                 message: str) -> None:
    path = jsonl(tmp_path, {"id": "a", "text": "fine"}, record)
    with pytest.raises(DocumentError) as caught:
        read_documents(path)
    assert str(caught.value) == f"{path}:2: {message}"
    with pytest.raises(DocumentError) as caught:  # a Python list names the index instead
        read_documents([record])
    assert str(caught.value) == f"documents[0]: {message}"
