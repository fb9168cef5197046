"""The prompt builders and SFT target formatters shared by training data and inference."""

from __future__ import annotations

import json

import pytest

from eval.prompts import (
    CLASSIFIER_PREAMBLE,
    EXPLORER_PREAMBLE,
    PROMPT_VERSION,
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
