"""Documents, tokens, sentences and windows (core/text.py, core/documents.py), and JSONL lines
that survive ``str.splitlines()`` (core/io.py).

Offsets are hand-computed (code points: a flag is 2, 👩‍🔬 is 3, 1️⃣ is 3, e + U+0301 is 2); every
test also checks the invariant the user relies on: ``text[start:end]`` is the token, sentence or
entity.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from core.documents import Document, DocumentError, read_documents
from core.io import DataError, ProjectError, dumps_line, write_jsonl
from core.text import (
    TextError,
    Window,
    align_tokens,
    paragraph_spans,
    place_mentions,
    sentence_spans,
    token_spans,
    windows,
)


def tokens(text: str) -> list[str]:
    spans = token_spans(text)
    assert all(not any(ch.isspace() for ch in text[s:e]) for s, e in spans)
    return [text[s:e] for s, e in spans]


def words(text: str) -> int:
    """A fake tokenizer's count: space-separated words."""
    return len(text.split())


# --- tokens: grapheme clusters ------------------------------------------------------------------


def test_emoji_clusters_are_whole_tokens_of_their_own() -> None:
    line = "🇷🇺 with 👩\u200d🔬, 👍🏽 and 1\ufe0f\u20e3abc"
    assert token_spans(line) == [(0, 2), (3, 7), (8, 11), (11, 12), (13, 15), (16, 19),
                                 (20, 23), (23, 26)]
    assert tokens(line) == ["🇷🇺", "with", "👩\u200d🔬", ",", "👍🏽", "and", "1\ufe0f\u20e3", "abc"]


@pytest.mark.parametrize(("line", "expected"), [
    ("hi🇷🇺there", ["hi", "🇷🇺", "there"]),  # an emoji never merges with letters
    ("a-👍🏽", ["a", "-", "👍🏽"]),  # nor joins a hyphenated word
    ("ok🫨ok", ["ok", "🫨", "ok"]),  # Unicode 15: Python 3.11's unicodedata calls it Cn
    ("ℹ\ufe0f info", ["ℹ\ufe0f", "info"]),  # a letter (Ll) in emoji presentation is an emoji
    ("🏴\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F!",
     ["🏴\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F", "!"]),  # tag sequence
])
def test_emoji_rule(line: str, expected: list[str]) -> None:
    assert tokens(line) == expected


def test_a_joiner_or_half_a_flag_is_never_a_token_so_never_an_entity() -> None:
    line = "🇷🇺 with 👩\u200d🔬"
    assert "\u200d" not in tokens(line) and "🇷" not in tokens(line)
    counts: Counter[str] = Counter()
    assert place_mentions(line, token_spans(line), [("🇷 with", "x"), ("\u200d", "y")],
                          counts) == []
    assert counts == {"mentions_not_token_aligned": 2}


@pytest.mark.parametrize(("line", "spans"), [
    ("Cafe\u0301 au lait", [(0, 5), (6, 8), (9, 13)]),
    ("Nguye\u0302\u0303n Văn A", [(0, 8), (9, 12), (13, 14)]),  # decomposed Vietnamese
    ("Nguyễn-Văn", [(0, 10)]),  # precomposed, hyphenated: one token
    ("(e\u0301)", [(0, 1), (1, 3), (3, 4)]),
    (" \u0301a", [(1, 3)]),  # a mark after a space: whitespace is cut out of its cluster
    ("\u0600 12", [(0, 1), (2, 4)]),  # Arabic number sign + space is one cluster; cut too
    ("a\r\nb\tc  d", [(0, 1), (3, 4), (5, 6), (8, 9)]),  # CRLF is one cluster of whitespace
])
def test_combining_marks_and_whitespace_inside_clusters(line: str,
                                                        spans: list[tuple[int, int]]) -> None:
    assert token_spans(line) == spans


def test_right_to_left_text_with_a_latin_name_inside() -> None:
    hebrew = "שלום Ada Lovelace!"
    assert token_spans(hebrew) == [(0, 4), (5, 8), (9, 17), (17, 18)]
    arabic = "زار Charles Babbage القاهرة."
    assert tokens(arabic) == ["زار", "Charles", "Babbage", "القاهرة", "."]
    assert token_spans(arabic) == [(0, 3), (4, 11), (12, 19), (20, 27), (27, 28)]
    voweled = "مُحَمَّد و Ada"  # harakat are marks inside the letters' clusters
    assert token_spans(voweled) == [(0, 8), (9, 10), (11, 14)]
    counts: Counter[str] = Counter()
    assert place_mentions(arabic, token_spans(arabic),
                          [("Charles Babbage", "person"), ("القاهرة", "city")], counts) == [
        {"start": 4, "end": 19, "text": "Charles Babbage", "type": "person"},
        {"start": 20, "end": 27, "text": "القاهرة", "type": "city"}]


# --- sentences ----------------------------------------------------------------------------------

PARAGRAPH = ('Dr. Smith met J. R. R. Tolkien in 2019, e.g. this fall. Is 3.5 enough? Yes! '
             '"Quite so." He left.')


def test_sentences_of_one_paragraph() -> None:
    spans = sentence_spans(PARAGRAPH)
    assert spans == [(0, 55), (56, 70), (71, 75), (76, 87), (88, 96)]
    assert [PARAGRAPH[s:e] for s, e in spans] == [
        "Dr. Smith met J. R. R. Tolkien in 2019, e.g. this fall.", "Is 3.5 enough?", "Yes!",
        '"Quite so."', "He left."]


def test_paragraphs_separated_by_crlf_blank_lines() -> None:
    text = "First one. Second one.\r\n\r\nThird here.\r\n"
    assert paragraph_spans(text) == [(0, 22), (26, 37)]
    assert sentence_spans(text) == [(0, 10), (11, 22), (26, 37)]


@pytest.mark.parametrize(("text", "expected"), [
    ("A line\r\nwraps here. Next.", ["A line\r\nwraps here.", "Next."]),  # one line end: same
    ("One.\n \t\nTwo.", ["One.", "Two."]),  # a line of spaces and tabs is blank
    ("One\r\rTwo", ["One", "Two"]),  # old Mac line ends
    ("It costs 5 dollars etc. and more. Then stop.",
     ["It costs 5 dollars etc. and more.", "Then stop."]),  # lowercase next word: no end
    ("Fruit, vegetables, etc. The end.", ["Fruit, vegetables, etc.", "The end."]),
    ("Born in 1990. He moved.", ["Born in 1990.", "He moved."]),  # a number can end one
    ("Shopping:\n1. Milk\n2. Eggs", ["Shopping:\n1. Milk\n2. Eggs"]),  # list markers
    ("He moved to the U.S. Army base. Mr. Brown and Mrs. Green saw St. Louis.",
     ["He moved to the U.S. Army base.", "Mr. Brown and Mrs. Green saw St. Louis."]),
    ("She watched Jeopardy! with him. Why? no idea.",
     ["She watched Jeopardy! with him.", "Why? no idea."]),
    ("(He left.) Then “Stop!” she said… Fine?! Yes.",
     ["(He left.)", "Then “Stop!” she said…", "Fine?!", "Yes."]),
    ("東京に行った。大阪も！", ["東京に行った。", "大阪も！"]),  # no space needed after 。！？
    ("  \n\n ", []),
])
def test_sentence_rule(text: str, expected: list[str]) -> None:
    assert [text[s:e] for s, e in sentence_spans(text)] == expected


# --- windows ------------------------------------------------------------------------------------

SMALL = "Aa bb. Cc dd ee. Ff gg.\n\nHh ii jj kk. Ll."


def test_windows_pack_sentences_within_a_paragraph() -> None:
    assert sentence_spans(SMALL) == [(0, 6), (7, 16), (17, 23), (25, 37), (38, 41)]
    found = windows(SMALL, sentence_spans(SMALL), 7, words)
    assert found == [
        Window(0, 16, ((0, 2), (3, 5), (5, 6), (7, 9), (10, 12), (13, 15), (15, 16)),
               "Aa bb . Cc dd ee ."),
        Window(17, 23, ((17, 19), (20, 22), (22, 23)), "Ff gg ."),  # 10 tokens with the above
        Window(25, 41, ((25, 27), (28, 30), (31, 33), (34, 36), (36, 37), (38, 40),
                        (40, 41)), "Hh ii jj kk . Ll ."),  # 7 tokens, but not across the break
    ]
    assert not any(w.split for w in found)
    assert all(SMALL[w.start:w.end].replace(".", " .").split() == w.text.split() for w in found)


def test_a_long_sentence_is_cut_preferring_a_clause_mark_or_a_line_end() -> None:
    text = "a b c d e f g h i j k l\n\nm n o, p q r s.\n\nt u v\nw x y z Z"
    found = windows(text, sentence_spans(text), 5, words)
    assert [(w.text, w.piece) for w in found] == [
        ("a b c d e", 1), ("f g h i j", 2), ("k l", 3),  # no soft cut: the longest fit
        ("m n o ,", 1), ("p q r s .", 2),  # cut after the comma, not after "p"
        ("t u v", 1), ("w x y z Z", 2)]  # cut at the line end
    assert sum(w.piece == 1 for w in found) == 3  # sentences that were split


def test_a_token_over_the_budget_is_cut_between_grapheme_clusters() -> None:
    text = "ok e\u0301e\u0301e\u0301e\u0301e\u0301 ok"  # one 10-code-point word
    found = windows(text, [(0, len(text))], 4, len)
    assert [(w.start, w.end, w.text, w.piece) for w in found] == [
        (0, 2, "ok", 1), (3, 7, "e\u0301e\u0301", 2), (7, 11, "e\u0301e\u0301", 3),
        (11, 13, "e\u0301", 4), (14, 16, "ok", 5)]
    with pytest.raises(TextError, match=re.escape(
            "offset 0: the character '👩\\u200d🔬' alone is more than 2 model tokens")):
        windows("👩\u200d🔬", [(0, 3)], 2, len)


def test_windows_reject_spans_out_of_order() -> None:
    with pytest.raises(ValueError, match="not in order"):
        windows("a b", [(2, 3), (0, 1)], 5, words)


def big_document(seed: int = 7) -> tuple[str, int]:
    """About 20,000 words in paragraphs with CRLF line ends, tabs, emoji and RTL words; every
    40th sentence is 300 words of one token each (no clause mark): (text, how many)."""
    rng = random.Random(seed)
    one_token = ["alpha", "Beta", "3.5", "e-mail", "🇷🇺", "👩\u200d🔬", "Café", "שלום",
                 "القاهرة", "Nguye\u0302\u0303n", "x1"]
    vocabulary = [*one_token, "x\ty", "(IBM)", "U.S."]  # 2, 3 and 2 tokens
    paragraphs, sentences, number, total, longs = [], [], 0, 0, 0
    while total < 20_000:
        number += 1
        if number % 40 == 0:  # "Start" + 298 + "end" words, 301 tokens with the period
            middle = [rng.choice(one_token) for _ in range(298)]
            longs += 1
        else:  # at most 3 + 40 * 3 tokens: always fits 128
            middle = [rng.choice(vocabulary) for _ in range(rng.randint(1, 40))]
        sentences.append(" ".join(["Start", *middle, "end."]))
        total += len(middle) + 2
        if rng.random() < 0.15:
            paragraphs.append(" ".join(sentences))
            sentences = []
    paragraphs.append(" ".join(sentences))
    return "\r\n\r\n".join(p.replace(" ", "\r\n", 1) for p in paragraphs), longs


def test_a_20000_word_document() -> None:
    text, longs = big_document()
    assert len(text.split()) > 20_000 and longs > 10
    sentences = sentence_spans(text)
    assert all(text[s:e].startswith("Start") and text[s:e].endswith("end.") for s, e in sentences)
    found = windows(text, sentences, 128, words)
    every = [span for w in found for span in w.spans]
    assert every == token_spans(text)  # every token once, in order
    for w in found:
        assert words(w.text) <= 128
        assert w.text == " ".join(text[s:e] for s, e in w.spans)
        assert (w.start, w.end) == (w.spans[0][0], w.spans[-1][1])
        for (_, end), (start, _) in zip(w.spans, w.spans[1:], strict=False):
            assert len(re.findall(r"\r\n|\r|\n", text[end:start])) < 2  # no paragraph break
    # each long sentence, and only those, is cut: 128 + 128 + 45 tokens
    assert sum(w.piece == 1 for w in found) == longs
    assert [len(w.spans) for w in found if w.split] == [128, 128, 45] * longs


# --- given tokens (pre-tokenised input) ---------------------------------------------------------

# The, U.S. 4-8 and AT&T 13-17 whole (ours: "U.S" "." and "AT" "&" "T"), e-mail split as
# e 22-23, - 23-24, mail 24-28 (ours: one token), New-York 30-38 (ours too)
GIVEN = "The U.S. and AT&T use e-mail. New-York too."
GIVEN_TOKENS = ["The", "U.S.", "and", "AT&T", "use", "e", "-", "mail", ".", "New-York", "too",
                "."]
GIVEN_SPANS = [(0, 3), (4, 8), (9, 12), (13, 17), (18, 21), (22, 23), (23, 24), (24, 28),
               (28, 29), (30, 38), (39, 42), (42, 43)]


def test_align_tokens_finds_given_tokens_in_order() -> None:
    assert align_tokens(GIVEN, GIVEN_TOKENS) == GIVEN_SPANS
    assert tokens(GIVEN) == ["The", "U.S", ".", "and", "AT", "&", "T", "use", "e-mail", ".",
                             "New-York", "too", "."]  # ours differ


def test_windows_keep_the_given_tokens() -> None:
    sentences = sentence_spans(GIVEN, GIVEN_SPANS)
    assert sentences == sentence_spans(GIVEN) == [(0, 29), (30, 43)]  # no token cut: same
    [whole] = windows(GIVEN, sentences, 20, words, spans=GIVEN_SPANS)
    assert whole == Window(0, 43, tuple(GIVEN_SPANS),
                           "The U.S. and AT&T use e - mail . New-York too .")
    # 9 + 3 tokens, 9 fit: one window per sentence, each the given tokens
    found = windows(GIVEN, sentences, 9, words, spans=GIVEN_SPANS)
    assert found == [Window(0, 29, tuple(GIVEN_SPANS[:9]), "The U.S. and AT&T use e - mail ."),
                     Window(30, 43, tuple(GIVEN_SPANS[9:]), "New-York too .")]
    assert [w.text for w in windows(GIVEN, sentences, 20, words)] == [
        "The U.S . and AT & T use e-mail . New-York too ."]  # without spans: ours, as before


def test_a_sentence_end_inside_a_given_token_moves_to_its_end() -> None:
    text = "你好。世界"  # 。 ends a sentence without whitespace: (0, 3), (3, 5)
    assert sentence_spans(text) == [(0, 3), (3, 5)]
    assert sentence_spans(text, [(0, 5)]) == [(0, 5)]  # one token: one sentence
    given = align_tokens(text, ["你好", "。世", "界"])
    assert given == [(0, 2), (2, 4), (4, 5)]
    assert sentence_spans(text, given) == [(0, 4), (4, 5)]  # "。世" starts in the first
    # sentences that cut a token still keep it whole, with the sentence its start lies in
    found = windows(text, [(0, 3), (3, 5)], 2, words, spans=given)
    assert found == [Window(0, 4, ((0, 2), (2, 4)), "你好 。世"), Window(4, 5, ((4, 5),), "界")]


def test_a_long_sentence_of_given_tokens_is_cut_at_given_tokens() -> None:
    text = "a-b c-d e-f g-h"
    given = align_tokens(text, ["a-b", "c", "-", "d", "e-f", "g-h"])
    found = windows(text, sentence_spans(text, given), 4, words, spans=given)
    assert [(w.text, w.piece) for w in found] == [("a-b c - d", 1), ("e-f g-h", 2)]


@pytest.mark.parametrize("spans", [[(0, 1), (0, 1)], [(1, 1)], [(2, 5)], [(2, 3), (0, 1)]])
def test_windows_reject_bad_given_spans(spans: list[tuple[int, int]]) -> None:
    with pytest.raises(ValueError, match=r"^token span \(\d, \d\) is empty, overlaps"):
        windows("a b", [(0, 3)], 5, words, spans=spans)


def test_our_token_spans_given_back_change_nothing() -> None:
    text, _ = big_document(seed=3)
    sentences = sentence_spans(text)
    ours = token_spans(text)
    assert sentence_spans(text, ours) == sentences
    assert windows(text, sentences, 128, words, spans=ours) == windows(text, sentences, 128, words)


# --- mentions back to document offsets ----------------------------------------------------------


def test_mentions_of_a_window_map_to_document_offsets() -> None:
    doc = ("Intro line.\r\n\r\nAda Lovelace met 👩\u200d🔬 Charles\tBabbage in London. "
           "Then שלום from Zürich 🇷🇺!\r\n")
    found = windows(doc, sentence_spans(doc), 50, words)
    assert [w.text for w in found] == [
        "Intro line .", "Ada Lovelace met 👩\u200d🔬 Charles Babbage in London . Then שלום "
        "from Zürich 🇷🇺 !"]
    window = found[1]
    counts: Counter[str] = Counter()
    pairs = [("Ada Lovelace", "person"), ("Charles Babbage", "person"), ("London", "city"),
             ("Zürich", "city"), ("🇷🇺", "flag"), ("Paris", "city")]
    entities = place_mentions(doc, window.spans, pairs, counts)
    assert entities == [
        {"start": 15, "end": 27, "text": "Ada Lovelace", "type": "person"},
        {"start": 36, "end": 51, "text": "Charles\tBabbage", "type": "person"},
        {"start": 55, "end": 61, "text": "London", "type": "city"},
        {"start": 78, "end": 84, "text": "Zürich", "type": "city"},
        {"start": 85, "end": 87, "text": "🇷🇺", "type": "flag"}]
    assert all(doc[e["start"]:e["end"]] == e["text"] for e in entities)
    assert counts == {"mentions_not_token_aligned": 1}


# --- reading documents --------------------------------------------------------------------------


def test_a_text_file_is_one_document_kept_exactly_but_its_bom(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"\xef\xbb\xbfAda\r\nLovelace\r\n\r\n\xe2\x80\xa8x")
    assert read_documents(path) == [Document("notes.txt", "Ada\r\nLovelace\r\n\r\n\u2028x")]
    assert read_documents(str(path)) == read_documents(path)


def test_a_folder_is_its_txt_files_sorted_by_relative_path(tmp_path: Path) -> None:
    for name, text in [("b.txt", "B"), ("sub/a.txt", "SA"), ("a.txt", "A"), ("notes.md", "no"),
                       (".hidden/c.txt", "no"), (".d.txt", "no")]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "dir.txt").mkdir()
    assert read_documents(tmp_path) == [Document("a.txt", "A"), Document("b.txt", "B"),
                                        Document("sub/a.txt", "SA")]


def test_jsonl_records_and_python_lists(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text('{"id": 7, "text": "a\\r\\nb", "lang": "en"}\n\n'
                    '{"id": "x", "text": "c\\u2028d"}\n', encoding="utf-8")
    assert read_documents(path) == [Document("7", "a\r\nb"), Document("x", "c\u2028d")]
    assert read_documents(["one", "two"]) == [Document("1", "one"), Document("2", "two")]
    assert read_documents(({"id": 3, "text": "t"},)) == [Document("3", "t")]
    assert read_documents([]) == []


def jsonl(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize(("body", "message"), [
    ('{"id": 1, "text": "a"}\nnot json\n', ":2: invalid JSON (Expecting value at column 1)"),
    ('[1, 2]\n', ':1: expected an object {"id": ..., "text": ...}, got an array'),
    ('"text"\n', ':1: expected an object {"id": ..., "text": ...}, got a string'),
    ('{"id": "a"}\n', ':1: the record has no "text"'),
    ('{"id": "a", "text": 5}\n', ':1: "text" must be a string, got a number'),
    ('{"id": "a", "text": null}\n', ':1: "text" must be a string, got null'),
    ('{"text": "a"}\n', ':1: the record has no "id"'),
    ('{"id": true, "text": "a"}\n', ':1: "id" must be a non-empty string or an integer, got True'),
    ('{"id": 7, "text": "x"}\n\n{"id": "7", "text": "y"}\n',
     ":3: duplicate id '7' (first at line 1)"),
    ("\n  \n", ': no records: write one {"id": ..., "text": ...} per line'),
])
def test_bad_jsonl_fails_in_one_line_naming_file_and_line(tmp_path: Path, body: str,
                                                          message: str) -> None:
    path = jsonl(tmp_path, body)
    with pytest.raises(DocumentError) as caught:
        read_documents(path)
    assert str(caught.value) == f"{path}{message}"
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, DataError | ProjectError)


def test_bad_files_and_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def message(source: object) -> str:
        with pytest.raises(DocumentError) as caught:
            read_documents(source)  # type: ignore[arg-type]
        return str(caught.value)

    missing = tmp_path / "nope.txt"
    assert message(str(missing)) == (f"{missing}: no such file or folder (to pass text itself, "
                                     "pass a list of strings)")
    assert message(missing) == f"{missing}: no such file or folder"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("x", encoding="utf-8")
    assert message(empty) == f"{empty}: no .txt files in this folder"
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\nbad \xff here\n")
    assert message(bad) == (f"{bad}:2: not UTF-8: byte 0xff at column 5 (invalid start byte); "
                            "save the file as UTF-8")
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_bytes(b'{"id": 1, "text": "a"}\n{"id": 2, "text": "\xc3("}\n')
    assert message(bad_jsonl) == (f"{bad_jsonl}:2: not UTF-8: byte 0xc3 at column 20 (invalid "
                                  "continuation byte); save the file as UTF-8")
    array = tmp_path / "docs.json"
    array.write_text("[]", encoding="utf-8")
    assert message(array) == (f'{array}: expected JSON Lines: save the records as .jsonl, one '
                              '{"id": ..., "text": ...} per line')
    assert message(["a", 5]) == 'documents[1]: expected a string or a {"id", "text"} record, ' \
                                "got int"
    assert message([{"id": "2", "text": "x"}, "y"]) == ("documents[1]: duplicate id '2' (first "
                                                        "at documents[0])")
    assert message([{"id": "1"}]) == 'documents[0]: the record has no "text"'
    assert message(5) == ('documents: expected a path or a list of strings or of {"id", "text"} '
                          "records, got int")
    locked = tmp_path / "locked.txt"
    locked.write_text("x", encoding="utf-8")

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    assert message(locked) == f"{locked}: cannot read (Permission denied)"


# --- JSONL lines that str.splitlines() cannot split -------------------------------------------

LINE_BREAKS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def test_every_splitlines_boundary_inside_a_record_is_escaped(tmp_path: Path) -> None:
    assert [ch for ch in map(chr, range(0x110000)) if len(f"a{ch}b".splitlines()) == 2] == \
        ["\n", *LINE_BREAKS[:2], "\r", *LINE_BREAKS[2:]]
    records = [{"id": f"r{i}", "text": f"a{ch}b", f"k{ch}": ch} for i, ch in enumerate(LINE_BREAKS)]
    path = tmp_path / "out.jsonl"
    write_jsonl(path, records)
    written = path.read_text(encoding="utf-8")
    assert len(written.splitlines()) == len(records)
    assert [json.loads(line) for line in written.splitlines()] == records
    assert dumps_line({"t": "a\u2028b\x85"}) == '{"t": "a\\u2028b\\u0085"}\n'


def test_other_text_is_written_as_before() -> None:
    record = {"text": "Zürich 東京 🇷🇺 \"q\" \\ \t\n", "n": 1}
    assert dumps_line(record) == json.dumps(record, ensure_ascii=False) + "\n"


ALPHABET = ["a", "B", "é", "e\u0301", "1", ".", "!", "?", "…", "。", '"', "”", ")", "(", "-", "_",
            " ", " ", "\t", "\n", "\r\n", "\r", "\u00a0", "🇷🇺", "👩\u200d🔬", "\u200d", "\u0301",
            "Dr", "J", "e.g", "ש", "ق", "\x1c"]


def test_random_text_every_visible_character_is_in_one_token_and_one_sentence() -> None:
    rng = random.Random(11)
    for _ in range(300):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 60)))
        visible = {i for i, ch in enumerate(text) if not ch.isspace()}
        for spans in (token_spans(text), sentence_spans(text)):
            covered = [i for s, e in spans for i in range(s, e)]
            assert covered == sorted(set(covered)), text  # in order, no overlap
            assert visible <= set(covered), text
            assert all(not text[s].isspace() and not text[e - 1].isspace() for s, e in spans)
        assert all(not any(ch.isspace() for ch in text[s:e]) for s, e in token_spans(text))
        pieces = windows(text, sentence_spans(text), 4, words)
        assert [span for w in pieces for span in w.spans] == token_spans(text), text
        assert all(words(w.text) <= 4 for w in pieces)
