"""<ENT> tagging: longest first, whole words, no overlaps, first free occurrence, CJK rule."""

from __future__ import annotations

import pytest

from core.tagging import find_mention, mention_pattern, tag_mentions


def test_basic_tags_in_text_order() -> None:
    text, tagged = tag_mentions("Alan Turing was born in London .", ["London", "Alan Turing"])
    assert text == "<ENT>Alan Turing</ENT> was born in <ENT>London</ENT> ."
    assert tagged == ["Alan Turing", "London"]  # text order, not input order


def test_longest_mention_claims_its_words_first() -> None:
    text, tagged = tag_mentions("New York City is not New York state .",
                                ["New York", "New York City"])
    assert text == "<ENT>New York City</ENT> is not <ENT>New York</ENT> state ."
    assert tagged == ["New York City", "New York"]


def test_mention_only_inside_a_longer_one_is_not_tagged() -> None:
    text, tagged = tag_mentions("Marie Curie won .", ["Curie", "Marie Curie"])
    assert text == "<ENT>Marie Curie</ENT> won ."
    assert tagged == ["Marie Curie"]


def test_first_free_occurrence_only() -> None:
    text, tagged = tag_mentions("Paris and Paris .", ["Paris", "Paris", ""])
    assert text == "<ENT>Paris</ENT> and Paris ."
    assert tagged == ["Paris"]


@pytest.mark.parametrize(("text", "mention", "expected"), [
    ("start art", "art", "start <ENT>art</ENT>"),
    ("artist", "art", "artist"),
    ("Python3 or Python", "Python", "Python3 or <ENT>Python</ENT>"),
    ("Zürichsee Zürich", "Zürich", "Zürichsee <ENT>Zürich</ENT>"),
    ("under_score score", "score", "under_score <ENT>score</ENT>"),
    ("paris", "Paris", "paris"),  # case-sensitive
    ("axb a.b", "a.b", "axb <ENT>a.b</ENT>"),  # regex metacharacters are literal
])
def test_word_boundaries(text: str, mention: str, expected: str) -> None:
    assert tag_mentions(text, [mention])[0] == expected


@pytest.mark.parametrize(("text", "mention", "expected"), [
    ("We use C++ .", "C++", "We use <ENT>C++</ENT> ."),
    ("C++11 and C++", "C++", "C++11 and <ENT>C++</ENT>"),
    ("(C++)", "C++", "(<ENT>C++</ENT>)"),
    ("the U.S.A and the U.S. too", "U.S.", "the U.S.A and the <ENT>U.S.</ENT> too"),
    ("(U.S.)", "U.S.", "(<ENT>U.S.</ENT>)"),
    ("$5 or US$5", "$5", "<ENT>$5</ENT> or US$5"),
])
def test_mentions_with_punctuation_edges(text: str, mention: str, expected: str) -> None:
    assert tag_mentions(text, [mention])[0] == expected


def test_overlap_moves_to_next_free_occurrence() -> None:
    # "C" occurs first inside the already tagged "C++" (and touching "+" is allowed), so the next
    # free whole-word occurrence is taken.
    text, tagged = tag_mentions("We use C++ and C .", ["C", "C++"])
    assert text == "We use <ENT>C++</ENT> and <ENT>C</ENT> ."
    assert tagged == ["C++", "C"]


def test_not_found_is_left_out_of_the_result() -> None:
    text, tagged = tag_mentions("Nothing here .", ["Berlin"])
    assert (text, tagged) == ("Nothing here .", [])


@pytest.mark.parametrize(("text", "mentions", "expected", "tagged"), [
    # CJK has no word boundaries: a mention inside CJK text is tagged.
    ("胡老说，画累了再出去。", ["胡"], "<ENT>胡</ENT>老说，画累了再出去。", ["胡"]),
    ("青岛海牛队和广州松日队", ["广州松日队", "青岛海牛队"],
     "<ENT>青岛海牛队</ENT>和<ENT>广州松日队</ENT>", ["青岛海牛队", "广州松日队"]),
    # A Latin mention between CJK characters is tagged: CJK neighbours never block.
    ("我用Python写代码", ["Python"], "我用<ENT>Python</ENT>写代码", ["Python"]),
    # A CJK edge is not checked even when its neighbour is Latin.
    ("iPhone手机", ["手机"], "iPhone<ENT>手机</ENT>", ["手机"]),
    # A Latin edge still is: "Phone" starts inside the word "iPhone".
    ("iPhone手机", ["Phone"], "iPhone手机", []),
    # Longest first and no overlaps hold in CJK too.
    ("北京大学在北京", ["北京", "北京大学"], "<ENT>北京大学</ENT>在<ENT>北京</ENT>",
     ["北京大学", "北京"]),
])
def test_cjk(text: str, mentions: list[str], expected: str, tagged: list[str]) -> None:
    assert tag_mentions(text, mentions) == (expected, tagged)


def test_many_distinct_mentions_are_fast() -> None:
    """Guards must not be compiled per mention (that cost ~5 ms each: hours on IEPile)."""
    import time

    mentions = [f"entity{i}" for i in range(500)]
    text = " ".join(mentions)
    start = time.perf_counter()
    tagged_text, tagged = tag_mentions(text, mentions)
    assert len(tagged) == 500 and tagged_text.count("<ENT>") == 500
    assert time.perf_counter() - start < 1.0  # per-mention compiling took ~2.5 s


def test_find_mention_and_pattern_search() -> None:
    assert find_mention("start art", "art") == 6
    assert find_mention("start art", "art", 7) == -1
    assert find_mention("anything", "") == -1
    match = mention_pattern("C++").search("C++11 and C++ .")
    assert match is not None and match.span() == (10, 13) and match.group() == "C++"
    assert mention_pattern("art").search("artist") is None
    assert mention_pattern("胡").search("胡老说") is not None
