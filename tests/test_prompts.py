"""The prompt builders and SFT target formatters shared by training data and inference."""

from __future__ import annotations

import json

import pytest

from core.prompts import (
    AUTHORS_EXPLORER_PREAMBLE,
    CLASSIFIER_PREAMBLE,
    EXPLORER_PREAMBLE,
    PROMPT_VERSION,
    authors_explorer_prompt,
    authors_explorer_target,
    classifier_prompt,
    classifier_target,
    explorer_prompt,
    explorer_target,
)


def test_explorer_prompt_exact() -> None:
    instruction, query = explorer_prompt(["person", "location"], "Ada met Bob in Rome .")
    assert instruction == EXPLORER_PREAMBLE + '\nSchema: ["person", "location"]'
    assert query == "Passage: Ada met Bob in Rome ."


def test_classifier_prompt_exact() -> None:
    instruction, query = classifier_prompt("<ENT>Ada</ENT> met Bob .", ["person", "misc"])
    assert instruction == CLASSIFIER_PREAMBLE + '\nSchema: ["person", "misc"]'
    assert query == "Sentence: <ENT>Ada</ENT> met Bob ."


def test_constant_part_comes_first() -> None:
    """Requests with the same schema share everything up to the passage (prefix caching)."""
    a = "\n".join(explorer_prompt(["song", "album"], "One text ."))
    b = "\n".join(explorer_prompt(["song", "album"], "Another text ."))
    common = len(EXPLORER_PREAMBLE + '\nSchema: ["song", "album"]\nPassage: ')
    assert a[:common] == b[:common]
    assert a.startswith(EXPLORER_PREAMBLE)


def test_non_ascii_is_kept_readable() -> None:
    instruction, query = explorer_prompt(["人物"], "胡老说")
    assert instruction.endswith('\nSchema: ["人物"]')
    assert query == "Passage: 胡老说"


def test_empty_schema_is_an_error() -> None:
    with pytest.raises(ValueError):
        explorer_prompt([], "text")
    with pytest.raises(ValueError):
        classifier_prompt("text", [])


def test_explorer_target_exact() -> None:
    target = explorer_target({"person": ["Ada", "Bob"], "location": []})
    assert target == '{"person": ["Ada", "Bob"], "location": []}'
    assert list(json.loads(target)) == ["person", "location"]


def test_explorer_target_follows_given_type_order() -> None:
    target = explorer_target({"person": ["Ada"], "city": ["Zürich"]}, ["city", "event", "person"])
    assert target == '{"city": ["Zürich"], "event": [], "person": ["Ada"]}'
    with pytest.raises(ValueError, match="not in the schema"):
        explorer_target({"person": ["Ada"]}, ["city"])


def test_classifier_target_exact() -> None:
    target = classifier_target([("Ada", "person"), ("東京", "location")])
    assert target == '[{"Ada": "person"}, {"東京": "location"}]'
    assert classifier_target([]) == "[]"


def test_preambles_are_single_paragraphs_naming_the_tags() -> None:
    assert isinstance(PROMPT_VERSION, str) and PROMPT_VERSION
    for preamble in (EXPLORER_PREAMBLE, CLASSIFIER_PREAMBLE):
        assert "\n" not in preamble  # "\nSchema: " is the only line break before the input
    assert "<ENT>" in CLASSIFIER_PREAMBLE and "</ENT>" in CLASSIFIER_PREAMBLE


# ---- the authors' explorer layout (prompt format authors_explorer; docs/fidelity.md) -----------


def test_authors_explorer_prompt_exact() -> None:
    """Preamble, then at once Schema: + the Python repr of the list (a name holding an apostrophe
    gets double quotes, one holding both quote kinds an escaped apostrophe) + ". Passage: "."""
    instruction, query = authors_explorer_prompt(
        ["person", "writer's work", 'the "Q\'s" show', "location"], "Ada met Bob in Rome .")
    assert instruction == (
        "Act as a named entity extractor. Read the passage and pull out every named entity in "
        "it whose type is one of the types listed in the schema."
        "Schema:['person', \"writer's work\", 'the \"Q\\'s\" show', 'location']. "
        "Passage: Ada met Bob in Rome .")
    assert query == ""  # one instruction string: LlamaFactory's user turn is the instruction
    assert authors_explorer_prompt(["人物"], " x ")[0] == (
        AUTHORS_EXPLORER_PREAMBLE + "Schema:['人物']. Passage:  x ")  # text as given
    with pytest.raises(ValueError):
        authors_explorer_prompt([], "text")


def test_authors_explorer_preamble_is_one_line_ending_in_a_full_stop() -> None:
    assert "\n" not in AUTHORS_EXPLORER_PREAMBLE
    assert AUTHORS_EXPLORER_PREAMBLE.endswith(".")  # and "Schema:" follows with no separator
    assert AUTHORS_EXPLORER_PREAMBLE != EXPLORER_PREAMBLE


def test_authors_explorer_target_keeps_question_order_and_answers_as_parsed() -> None:
    target = authors_explorer_target([
        ("person", ["Ada", "Ada"]), ("city", []), ("person", ["Bob"]), ("date", "n/a"),
        ("lieu", ["Zürich"])])
    # a type asked again: its first position, its later answer; repeats kept; no ASCII escapes
    assert target == '{"person": ["Bob"], "city": [], "date": "n/a", "lieu": ["Zürich"]}'
    assert authors_explorer_target([]) == "{}"
