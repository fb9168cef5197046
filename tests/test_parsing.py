"""The lenient parser: what each kind of broken LLM answer turns into, and with which status."""

from __future__ import annotations

import pytest

from eval.parsing import Status, parse_json, parse_mention_labels, parse_type_mentions


@pytest.mark.parametrize(("text", "kind", "value", "status"), [
    ('{"band": ["Blur"]}', dict, {"band": ["Blur"]}, Status.OK),
    ('[{"Blur": "organization"}]', list, [{"Blur": "organization"}], Status.OK),
    ("", dict, {}, Status.EMPTY),
    ("   \n", list, [], Status.EMPTY),
    (None, dict, {}, Status.EMPTY),
    ("no JSON here", dict, {}, Status.INVALID),
    # Markdown fences and a trailing comma.
    ('```json\n{"band": ["Blur"],}\n```', dict, {"band": ["Blur"]}, Status.REPAIRED),
    # Prose around the answer; the first object wins.
    ('Sure! {"band": ["Blur"]} Hope this helps {"x": []}', dict, {"band": ["Blur"]},
     Status.REPAIRED),
    # Python-literal quotes.
    ("{'band': ['Blur']}", dict, {"band": ["Blur"]}, Status.REPAIRED),
    # Cut at max_tokens inside the second list: the complete first member survives.
    ('{"band": ["Blur", "Oasis"], "song": ["Wonder', dict, {"band": ["Blur", "Oasis"]},
     Status.REPAIRED),
    # Cut after a dangling key.
    ('{"band": ["Blur"], "song', dict, {"band": ["Blur"]}, Status.REPAIRED),
    ('[{"Blur": "organization"}, {"Oasis": "organi', list, [{"Blur": "organization"}],
     Status.REPAIRED),
    # A complete object is never dug into for a list (nor the reverse).
    ('{"band": ["Blur"]}', list, [], Status.INVALID),
    # Brackets inside strings do not count.
    ('{"band": ["A ]} B"]}', dict, {"band": ["A ]} B"]}, Status.OK),
    # A Python set is not JSON: "{'Blur'}" must not pass as an answer.
    ("{'Blur'}", dict, {}, Status.INVALID),
])
def test_parse_json(text, kind, value, status):
    assert parse_json(text, kind) == (value, status)


def test_type_mentions_canonical_types_unknown_types_and_strings():
    answer = '{"Band": "Blur", "song": ["Parklife", "Parklife", 3, " "], "planet": ["Mars"]}'
    mentions, status, unknown = parse_type_mentions(answer, ["band", "song"])
    # Keys match case-insensitively; a lone string is a one-item list; non-strings, blanks and
    # repeats are dropped; a type outside the schema is reported, not used.
    assert mentions == {"band": ["Blur"], "song": ["Parklife"]}
    assert status is Status.OK
    assert unknown == ["planet"]


def test_type_mentions_of_garbage_is_empty_and_invalid():
    assert parse_type_mentions("I do not know", ["band"]) == ({}, Status.INVALID, [])


@pytest.mark.parametrize(("text", "pairs", "status"), [
    ('[{"Blur": "organization"}, {"Damon Albarn": "person"}]',
     [("Blur", "organization"), ("Damon Albarn", "person")], Status.OK),
    # One object instead of a list of one-key objects.
    ('{"Blur": "organization", "Damon Albarn": "person"}',
     [("Blur", "organization"), ("Damon Albarn", "person")], Status.REPAIRED),
    # {"mention": m, "type": t} items are understood too; junk items are skipped.
    ('[{"mention": "Blur", "type": "organization"}, "junk", {"x": 1}]',
     [("Blur", "organization")], Status.OK),
    ("nothing", [], Status.INVALID),
    ("", [], Status.EMPTY),
])
def test_mention_labels(text, pairs, status):
    assert parse_mention_labels(text) == (pairs, status)
