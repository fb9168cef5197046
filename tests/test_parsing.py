"""The lenient parser: what each kind of broken LLM answer turns into, and with which status."""

from __future__ import annotations

import pytest

from core.parsing import Status, parse_json, parse_mention_labels, parse_type_mentions


def nested(depth: int) -> list:
    """``[[...[]...]]`` with ``depth`` brackets, built without the Python parser's own limit."""
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


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
    # Python literals, and brackets inside single-quoted strings do not count either.
    ("{'band': ['A}B'], 'live': True, 'n': None}", dict,
     {"band": ["A}B"], "live": True, "n": None}, Status.REPAIRED),
    # A number that touches the end may have been cut ("12" of "125"); one before "," may not.
    ('{"band": ["Blur"], "n": 1, "m": 12', dict, {"band": ["Blur"], "n": 1}, Status.REPAIRED),
    # A syntax error keeps the complete items before it, but not the item it follows at once:
    # the unescaped quote makes "The " look like a complete mention.
    ('{"person": ["Ada"], "work": ["The "Best" Album"]}', dict, {"person": ["Ada"]},
     Status.REPAIRED),
    ('{"work": ["The "Best" Album"]}', dict, {}, Status.INVALID),
    # Taking back the item restores what a repeated key held before (here a null).
    ('{"a": null, "b": ["x"], "a": "y" z', dict, {"a": None, "b": ["x"]}, Status.REPAIRED),
    # A broken or cut-off object is no answer, but a list inside it is: the first complete one,
    # or (cut off) the open one with its complete items.
    ('{"a": ["x"] "b"}', list, ["x"], Status.REPAIRED),
    ('{"a": ["x"', list, ["x"], Status.REPAIRED),
    # Raw control characters inside a string are tolerated; a bad escape is not.
    ('{"band": ["Blur\tBand"],}', dict, {"band": ["Blur\tBand"]}, Status.REPAIRED),
    ('{"band": ["B\\q"]}', dict, {}, Status.INVALID),
    # Valid JSON is json.loads' to judge; an answer that needs repair may nest 200 deep, not 201.
    ("[" * 201 + "]" * 201, list, nested(201), Status.OK),
    ("x" + "[" * 200 + "]" * 200, list, nested(200), Status.REPAIRED),
    ("x" + "[" * 201 + "]" * 201, list, [], Status.INVALID),
    # Too deep for json.loads (RecursionError), too deep for the repair: invalid, no exception.
    ("[" * 5000 + "]" * 5000, list, [], Status.INVALID),
    ("[" * 5000, list, [], Status.INVALID),
    ('{"a":' * 2000, dict, {}, Status.INVALID),
])
def test_parse_json(text, kind, value, status):
    assert parse_json(text, kind) == (value, status)


def test_type_mentions_canonical_types_unknown_types_and_strings():
    answer = '{"Band": "Blur", "song": ["Parklife", "Parklife", 3, " "], "planet": ["Mars"]}'
    mentions, status, unknown = parse_type_mentions(answer, ["band", "song"])
    # Keys match case-insensitively; a lone string is a one-item list; non-strings, blanks and
    # repeats are dropped; a type outside the schema keeps its mentions and is reported.
    assert mentions == {"band": ["Blur"], "song": ["Parklife"], "planet": ["Mars"]}
    assert status is Status.OK
    assert unknown == ["planet"]


def test_type_mentions_off_schema_keys_keep_their_mentions():
    # Stage 1 is type-agnostic: "organization" (schema: "organisation") still yields mentions,
    # under the key as written, stripped; same-named keys merge, each key is reported once.
    answer = ('{"organisation": ["Blur"], " organization ": ["EMI", "Blur"], '
              '"organization": ["EMI", "Parlophone"], "Person": []}')
    mentions, status, unknown = parse_type_mentions(answer, ["organisation", "person"])
    assert mentions == {"organisation": ["Blur"], "organization": ["EMI", "Blur", "Parlophone"],
                        "person": []}
    assert status is Status.OK
    assert unknown == ["organization"]


def test_lone_surrogates_become_replacement_characters():
    # "\ud800" decodes to a lone surrogate, which no UTF-8 file can hold.
    mentions, status, unknown = parse_type_mentions('{"band": ["A\\ud800B"]}', ["band"])
    assert (mentions, status, unknown) == ({"band": ["A\ufffdB"]}, Status.OK, [])
    pairs, status = parse_mention_labels('[{"x\\udfff": "org"}]')
    assert (pairs, status) == ([("x\ufffd", "org")], Status.OK)


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
