"""Reading the supervisor's answer, leak rejection, applying revisions, and the supervisor prompt:
each outcome on a tiny hand-made domain, with the exact counts and text expected."""

from __future__ import annotations

import copy
from collections import Counter

import pytest

from core.mappings import Domain, Label
from core.prompts import SUPERVISOR_PREAMBLE, supervisor_prompt
from eval.agreement import Disagreement
from eval.revisions import (
    PROBLEMS,
    RevisionError,
    apply_revisions,
    definition_diff,
    describe_disagreement,
    read_revisions,
    reject_copies,
    reject_leaks,
    supervisor_schema,
)

DOMAIN = Domain("music", {
    "person": Label("person", "person", "A human being who is not a musician."),
    "musicalartist": Label("musicalartist", "musical artist", "A singer or player of music."),
    "band": Label("band", "band", "A group that performs\nmusic  together."),
    "album": Label("album", "album", "A released collection of recordings."),
})


def test_problem_keys() -> None:
    assert PROBLEMS == ("not_json", "not_object", "unknown_label", "not_asked",
                        "duplicate_label", "dropped_label", "empty_definition")


def test_schema_exact() -> None:
    assert supervisor_schema(["person", "musical artist"], 600) == {
        "type": "object",
        "properties": {
            "person": {"type": "string", "minLength": 1, "maxLength": 600},
            "musical artist": {"type": "string", "minLength": 1, "maxLength": 600},
        },
        "required": ["person", "musical artist"],
        "additionalProperties": False,
    }


@pytest.mark.parametrize(("names", "max_chars", "message"), [
    ([], 10, "at least one label"), (["a", "a"], 10, "asked twice"), (["a"], 0, "positive")])
def test_schema_refuses(names: list[str], max_chars: int, message: str) -> None:
    with pytest.raises(RevisionError, match=message):
        supervisor_schema(names, max_chars)


def test_not_json() -> None:
    result = read_revisions("I would rather not {answer}.", ["person", "band"], DOMAIN)
    assert result.revised == {}
    assert result.problems == Counter({"not_json": 1})
    assert result.unchanged == 0
    assert result.notes == ["the answer holds no JSON object: every asked label keeps its "
                            "definition"]
    assert result.raw == "I would rather not {answer}."


def test_not_object() -> None:
    result = read_revisions('[{"person": "A named human."}]', ["person"], DOMAIN)
    assert result.revised == {}
    assert result.problems == Counter({"not_object": 1})
    assert result.notes == ["the answer is JSON but a list, not an object: every asked label "
                            "keeps its definition"]


def test_fenced_json() -> None:
    answer = 'Here you are:\n```json\n{"person": "A  named\\n human."}\n```\nHope it helps.'
    result = read_revisions(answer, ["person"], DOMAIN)
    assert result.revised == {"person": "A named human."}
    assert result.problems == Counter()
    assert result.notes == []


def test_raw_control_characters_inside_strings_are_read() -> None:
    # what the tiny model wrote under vLLM's JSON schema: a raw U+001F inside a string, which
    # strict JSON refuses; the answer is read, and whitespace (U+001F counts) collapsed
    answer = '{"person": "A named\x1f human.", "album": "A record\tcollection."}'
    result = read_revisions(answer, ["person", "album"], DOMAIN)
    assert result.revised == {"person": "A named human.", "album": "A record collection."}
    assert result.problems == Counter()


def test_object_inside_prose() -> None:
    answer = 'Sure {not json}: {"Musical Artist": "Someone who makes music."} - done {x}'
    result = read_revisions(answer, ["musicalartist"], DOMAIN)
    assert result.revised == {"musicalartist": "Someone who makes music."}
    assert result.problems == Counter()


def test_every_key_problem() -> None:
    answer = ('{"Person": "   ", "MUSICAL ARTIST": "A performer of music.", "venue": "A hall.", '
              '"album": "A record.", "musicalartist": "Again."}')
    result = read_revisions(answer, ["person", "musicalartist", "band"], DOMAIN)
    assert result.revised == {"musicalartist": "A performer of music."}
    assert result.problems == Counter({"empty_definition": 1, "unknown_label": 1, "not_asked": 1,
                                       "duplicate_label": 1, "dropped_label": 1})
    assert result.unchanged == 0
    assert result.notes == [
        "label 'Person': definition is blank, current one kept",
        "label 'venue': unknown label, ignored",
        "label 'album': not asked, ignored",
        "label 'musicalartist': answered already as 'MUSICAL ARTIST', ignored",
        "label 'band': not in the answer, current definition kept",
    ]


def test_non_string_definitions() -> None:
    result = read_revisions('{"person": 3, "band": ["A group."]}', ["person", "band"], DOMAIN)
    assert result.revised == {}
    assert result.problems == Counter({"empty_definition": 2})
    assert result.notes == ["label 'person': definition is a int, not a string, current one kept",
                            "label 'band': definition is a list, not a string, current one kept"]


def test_unchanged_is_not_a_problem() -> None:
    answer = '{"band": "  A group that\\nperforms   music together. ", "person": "New."}'
    result = read_revisions(answer, ["band", "person"], DOMAIN)
    assert result.revised == {"person": "New."}
    assert result.problems == Counter()
    assert result.unchanged == 1
    assert result.notes == ["label 'band': definition unchanged"]
    assert result.to_json() == {"revised": {"person": "New."}, "problems": {}, "unchanged": 1,
                                "notes": ["label 'band': definition unchanged"], "raw": answer}


def test_asked_label_must_exist() -> None:
    with pytest.raises(RevisionError, match=r"\['song'\]"):
        read_revisions("{}", ["person", "song"], DOMAIN)


def test_reject_leaks() -> None:
    gold = {"Abbey Road", "Paris", "rock"}
    accepted, rejected = reject_leaks({
        "album": 'A record, e.g. "Abbey Road".',  # quoted
        "location": "A place such as a city, for example Paris in prose.",  # a capital inside
        "genre": "A style like rock or jazz.",  # a lower-case single word: not checked
        "song": "One track, such as abbey road live.",  # a run of two words, any case
    }, gold)
    assert accepted == {"genre": "A style like rock or jazz."}
    assert rejected == {"album": ["Abbey Road"], "location": ["Paris"], "song": ["Abbey Road"]}


DATA = {
    "name": "music",
    "description": "d",
    "labels": {"person": {"name": "person", "definition": "old", "extract_as": "human"},
               "band": {"name": "band", "definition": "A group."}},
    "more_specific": {"musicalartist": ["person"]},
}


def test_apply_revisions() -> None:
    before = copy.deepcopy(DATA)
    result = apply_revisions(DATA, {"person": "new"})
    assert result == {
        "name": "music",
        "description": "d",
        "labels": {"person": {"name": "person", "definition": "new", "extract_as": "human"},
                   "band": {"name": "band", "definition": "A group."}},
        "more_specific": {"musicalartist": ["person"]},
    }
    assert before == DATA  # a copy: the loaded data is untouched
    result["more_specific"]["musicalartist"].append("x")
    assert before == DATA  # a deep one


def test_apply_unknown_label() -> None:
    with pytest.raises(RevisionError, match="'song'"):
        apply_revisions(DATA, {"song": "A piece."})
    with pytest.raises(RevisionError, match="no 'labels'"):
        apply_revisions({"name": "x"}, {"person": "new"})


def test_definition_diff() -> None:
    assert definition_diff("person", "A person is a human.", "A person is a named human.") == (
        "--- a/person\n+++ b/person\n@@ -1 +1 @@\n"
        "-A person is a human.\n+A person is a named human.\n")
    assert definition_diff("person", "Same  text.", "Same text.") == ""


def test_definition_diff_wraps_at_80() -> None:
    old = "A person is a human being. " * 4
    new = "A person is a named human being. " * 4
    assert definition_diff("person", old, new) == (
        "--- a/person\n+++ b/person\n@@ -1,2 +1,2 @@\n"
        "-A person is a human being. A person is a human being. A person is a human being.\n"
        "-A person is a human being.\n"
        "+A person is a named human being. A person is a named human being. A person is a\n"
        "+named human being. A person is a named human being.\n")


NAMES = {"person": "person", "musicalartist": "musical artist", "album": "album"}


def test_describe_type_disagreement() -> None:
    d = Disagreement("s", "t", "Bob", "type", {"A": ("person",), "B": ("musicalartist",)},
                     ("C",), ("musicalartist", "person"))
    assert describe_disagreement(d, NAMES) == "A: person; B: musical artist; missed by C"
    d = Disagreement("s", "t", "Bob", "type", {"A": ("album",), "B": ("album", "song")},
                     (), ("album", "song"))
    assert describe_disagreement(d, NAMES) == "A: album; B: album or song"  # song: no name


def test_describe_presence_disagreement() -> None:
    d = Disagreement("s", "t", "Bob", "presence", {"A": ("person",), "B": ("person",)},
                     ("C", "D"), ("person",))
    assert describe_disagreement(d, NAMES) == "found by A, B as person, missed by C, D"


def test_supervisor_prompt_exact() -> None:
    prompt = supervisor_prompt(
        "music", {"person": "A human.", "musical artist": "A singer."}, ["band", "album"],
        [("Bob Dylan sang .", "Bob Dylan", "A: person; B: musical artist")])
    assert prompt == SUPERVISOR_PREAMBLE + (
        "\n\nDomain: music\n"
        "Definitions to revise:\n"
        "- person: A human.\n"
        "- musical artist: A singer.\n"
        "Other labels of the domain: band, album\n"
        "Disagreements:\n"
        "1. Sentence: Bob Dylan sang .\n"
        "   Mention: Bob Dylan\n"
        "   Annotators: A: person; B: musical artist")
    assert "JSON object" in SUPERVISOR_PREAMBLE
    assert "invent" in SUPERVISOR_PREAMBLE


def test_supervisor_prompt_without_other_labels() -> None:
    prompt = supervisor_prompt("x", {"a": "d"}, [], [("s", "m", "said")])
    assert "\nOther labels of the domain: (none)\n" in prompt


@pytest.mark.parametrize(("definitions", "items"), [({}, [("s", "m", "said")]), ({"a": "d"}, [])])
def test_supervisor_prompt_refuses_empty(definitions: dict[str, str],
                                         items: list[tuple[str, str, str]]) -> None:
    with pytest.raises(ValueError, match="at least one"):
        supervisor_prompt("x", definitions, ["b"], items)


def test_reject_copies_of_shown_mentions_names_and_prose() -> None:
    sentence = ("Largo ( from Xerxes ) , both on Ambient Monkeys , by Wolfgang Amadeus Mozart "
                "and the London Symphony Orchestra .")
    revised = {
        "album": "Ambient Monkeys",  # a name of the sentence, as the 0.5B demo supervisor wrote
        "band": "A group; the tuesday kind.",  # a shown mention, case-insensitive
        "event": "Something on ambient monkeys.",  # names are matched as written: kept
        "misc": "A thing from xerxes , both on ambient records.",  # ", both on ambient": 4
        # tokens of the sentence, case-insensitive ("from xerxes , both" is not: no ")")
        "person": "A human, as in Mon or UK.",  # "UK" (shown) is under 3 characters: kept
        "location": "A place in the Ambient Monkeysphere.",  # not a whole word: kept
        "song": "Largo is a tempo.",  # the sentence's first token is no name: kept
    }
    accepted, rejected = reject_copies(revised, ["Tuesday", "UK"], [sentence])
    assert rejected == {"album": ["Ambient Monkeys"], "band": ["Tuesday"],
                        "misc": [", both on Ambient"]}
    assert sorted(accepted) == ["event", "location", "person", "song"]
