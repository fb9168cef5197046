"""The HTML pages read back with the standard library's parser: every span drawn once, with its
label, over exactly its text; everything escaped; the evaluation page's FP/FN/WT marks as counted
by hand (the case of tests/test_confusion.py, string mode, misc kept):

s1 "Bob Dylan sang in New York City": gold Bob Dylan [0:9] musicalartist WT (predicted person),
   New York City [18:31] location FN; predicted Bob Dylan [0:9] person WT, New York [18:26] FP
s2 "Blowin' in the Wind is a song": gold [0:19] song FN; predicted Columbia: nowhere, listed, FP
s3 "Joan Baez and Bob Dylan toured Europe": all three right, gold and predicted alike
"""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser
from typing import Any

from core.records import Sentence, Span
from eval.html_view import EvalItem, Mark, evaluation_items, evaluation_page, predictions_page
from tests.test_confusion import PREDICTIONS, SENTENCES


class _Reader(HTMLParser):
    """Rows (``div.r``) of a page: each text line's plain text with the marks drawn in it (start,
    end by position in that text), and the marks listed under it (``data-s``/``data-e``)."""

    def __init__(self) -> None:
        super().__init__()  # convert_charrefs: data arrives unescaped
        self.rows: list[dict[str, Any]] = []
        self.line: dict[str, Any] | None = None
        self.mark: dict[str, Any] | None = None
        self.part = "text"  # where data goes inside a mark: text, sub (label), i (marker)
        self.skip = False  # the "gold"/"pred" key before a line's text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "div" and "r" in classes:
            self.rows.append({"attrs": a, "lines": [], "listed": [], "head": ""})
        elif tag == "p" and "x" in classes and self.rows:
            self.line = {"classes": classes, "text": "", "marks": [], "dir": a.get("dir")}
        elif tag == "span" and "k" in classes:
            self.skip = True
        elif tag == "mark" and self.rows:
            start = len(self.line["text"]) if self.line is not None else None
            self.mark = {"start": start, "attrs": a, "text": "", "sub": "", "i": "",
                         "status": next((c for c in classes if c in ("fp", "fn", "wt")), "")}
        elif tag in ("sub", "i") and self.mark is not None:
            self.part = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == "span":
            self.skip = False
        elif tag in ("sub", "i"):
            self.part = "text"
        elif tag == "mark" and self.mark is not None:
            m, self.mark = self.mark, None
            if self.line is not None:
                self.line["marks"].append((m["start"], m["start"] + len(m["text"]), m["sub"],
                                           m["status"], m["text"], m["i"]))
            else:
                a = m["attrs"]
                start, end = (int(a["data-s"]), int(a["data-e"])) if "data-s" in a else (-1, -1)
                self.rows[-1]["listed"].append((start, end, m["sub"], m["status"], m["text"],
                                                m["i"]))
        elif tag == "p" and self.line is not None:
            self.rows[-1]["lines"].append(self.line)
            self.line = None

    def handle_data(self, data: str) -> None:
        if self.skip or not self.rows:
            return
        if self.mark is not None:
            self.mark[self.part] += data
            if self.part != "text":
                return
        if self.line is not None:
            self.line["text"] += data
        elif self.mark is None and len(self.rows[-1]["lines"]) == 0:
            self.rows[-1]["head"] += data


def entity_spans_from_html(page: str) -> list[dict[str, Any]]:
    reader = _Reader()
    reader.feed(page)
    reader.close()
    return reader.rows


TRICKY = "Tom & <script>alert('x')</script> met 👩🏽‍💻 Zoë in Zürich"
RTL = "שלום from תל אביב and مرحبا القاهرة"


def _ent(text: str, mention: str, label: str, nth: int = 0) -> dict[str, Any]:
    start = -1
    for _ in range(nth + 1):
        start = text.index(mention, start + 1)
    return {"start": start, "end": start + len(mention), "type": label, "text": mention}


RECORDS = [
    {"id": "r<1>", "text": TRICKY, "entities": [
        _ent(TRICKY, "Tom", "person"), _ent(TRICKY, "<script>", "code & stuff"),
        _ent(TRICKY, "Zoë", "person"), _ent(TRICKY, "Zürich", "location")]},
    {"id": "rtl", "text": RTL, "entities": [
        _ent(RTL, "תל אביב", "location"), _ent(RTL, "القاهرة", "location")]},
    # overlapping spans and offsets that do not hold their text: listed, never dropped
    {"id": "overlap", "text": "New York City is big", "entities": [
        {"start": 0, "end": 8, "type": "location", "text": "New York"},
        {"start": 0, "end": 13, "type": "city", "text": "New York City"},
        {"start": 4, "end": 13, "type": "misc", "text": "York City"},
        {"start": 15, "end": 17, "type": "misc", "text": "xx"}]},
    {"id": "empty", "text": "nothing", "entities": []},
]


def test_every_entity_is_shown_once_with_its_label_over_its_text():
    page = predictions_page(RECORDS, "preds <&>")
    rows = entity_spans_from_html(page)
    assert len(rows) == len(RECORDS)
    for record, row in zip(RECORDS, rows, strict=True):
        (line,) = row["lines"]
        assert line["text"] == record["text"] and line["dir"] == "auto"
        assert record["id"] in row["head"]
        shown = [m[:3] for m in line["marks"]] + [m[:3] for m in row["listed"]]
        expected = [(e["start"], e["end"], e["type"]) for e in record["entities"]]
        assert Counter(shown) == Counter(expected), record["id"]
        for start, end, _, _, text, _ in line["marks"]:
            assert text == record["text"][start:end]
    overlap = rows[2]
    assert [m[:3] for m in overlap["lines"][0]["marks"]] == [(0, 13, "city")]  # longer first
    assert {m[:3] for m in overlap["listed"]} == {(0, 8, "location"), (4, 13, "misc"),
                                                 (15, 17, "misc")}
    assert "offsets do not hold its text [15:17]" in page


def test_everything_is_escaped_and_self_contained():
    page = predictions_page(RECORDS, "preds <&>")
    assert page.count("<script>") == 1  # ours; the text's is escaped
    assert ">&lt;script&gt;<sub>code &amp; stuff</sub></mark>alert(&#x27;x&#x27;)&lt;/script&gt;" \
        in page
    assert "Tom</sub>" not in page and "Tom &amp; " not in page  # "Tom" is marked, then " & "
    assert "&amp; <mark" in page and "<title>preds &lt;&amp;&gt;</title>" in page
    assert 'data-l="code &amp; stuff"' in page
    assert "👩🏽‍💻" in page and "القاهرة" in page
    for external in ("http://", "https://", "src=", "<link", "@import", "url("):
        assert external not in page
    # a checkbox per label for the filter
    assert page.count('class="lab"') == 5  # person, code & stuff, location, city, misc


def test_evaluation_page_marks_the_hand_counted_errors():
    items = evaluation_items(SENTENCES, PREDICTIONS)
    assert [it.errors for it in items] == [3, 2, 0]
    rows = entity_spans_from_html(evaluation_page(items, "errors"))
    marked = {}
    for sentence, row in zip(SENTENCES, rows, strict=True):
        gold, pred = row["lines"]
        assert "g" in gold["classes"] and "p" in pred["classes"]
        assert gold["text"] == pred["text"] == sentence.text
        for side, line in (("gold", gold), ("pred", pred)):
            for start, end, label, status, text, marker in line["marks"]:
                assert text == sentence.text[start:end]
                assert marker.split(" ")[0] == status.upper()  # a text marker for each status
                marked[(sentence.id, side, start, end, label)] = status
        for *_, label, status, text, _marker in row["listed"]:
            marked[(sentence.id, "listed", text, label)] = status
    assert {k: v for k, v in marked.items() if v} == {
        ("s1", "gold", 0, 9, "musicalartist"): "wt",
        ("s1", "gold", 18, 31, "location"): "fn",
        ("s1", "pred", 0, 9, "person"): "wt",
        ("s1", "pred", 18, 26, "location"): "fp",
        ("s2", "gold", 0, 19, "song"): "fn",
        ("s2", "listed", "Columbia", "organisation"): "fp",
    }
    right = {k for k, v in marked.items() if not v}
    assert right == {("s3", side, s, e, t) for side in ("gold", "pred")
                     for s, e, t in ((0, 9, "musicalartist"), (14, 23, "musicalartist"),
                                     (31, 37, "location"))}
    assert [r["attrs"].get("data-e") for r in rows] == ["1", "1", None]
    assert all(r["attrs"]["data-d"] == "music" for r in rows)
    assert "WT predicted person" in rows[0]["lines"][0]["marks"][0][5]


def test_evaluation_page_in_span_mode_and_overlapping_predictions():
    """Span mode places "Bob" at both occurrences: (0,3) right, (8,11) a wrong type. Predicted
    "New York" and "New York City" overlap: the longer is drawn, the other listed."""
    tokens = ["Bob", "met", "Bob", "in", "New", "York", "City"]
    s = Sentence("b", "music", tokens, [Span(0, 1, "person", "Bob"),
                                        Span(2, 3, "musicalartist", "Bob"),
                                        Span(4, 7, "location", "New York City")])
    preds = {"b": [("Bob", "person"), ("New York", "location"), ("New York City", "location")]}
    (item,) = evaluation_items([s], preds, "span")
    assert item.gold == [Mark(0, 3, "person"),
                         Mark(8, 11, "musicalartist", "wt", "predicted person"),
                         Mark(15, 28, "location")]
    assert sorted(item.pred) == [Mark(0, 3, "person"), Mark(8, 11, "person", "wt",
                                                            "gold musicalartist"),
                                 Mark(15, 23, "location", "fp"), Mark(15, 28, "location")]
    (string_item,) = evaluation_items([s], preds, "string")
    assert Mark(8, 11, "musicalartist", "fn") in string_item.gold  # one "Bob": person right
    (row,) = entity_spans_from_html(evaluation_page([item]))
    drawn = [m[:4] for m in row["lines"][1]["marks"]]
    assert (15, 28, "location", "") in drawn and (15, 23, "location", "fp") not in drawn
    assert [m[:4] for m in row["listed"]] == [(15, 23, "location", "fp")]


def test_misc_off_hides_misc_and_filters_are_there():
    tokens = ["English", "song", "Yesterday"]
    s = Sentence("m", "music", tokens, [Span(0, 1, "misc", "English"),
                                        Span(2, 3, "song", "Yesterday")])
    (item,) = evaluation_items([s], {"m": [("English", "misc")]}, misc=False)
    assert item.gold == [Mark(13, 22, "song", "fn")] and item.pred == []
    page = evaluation_page([item, EvalItem("x", "ai", "plain")], "t")
    assert '<select id="fd"' in page and '<option value="music">' in page
    assert '<option value="ai">' in page and '<select id="fl"' in page
    assert '<option value="song">' in page and 'id="fe"' in page
    assert "1 of 2 sentences have an error" in page
