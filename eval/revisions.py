"""What the supervisor answers in a refinement round, and what is done with it.

The supervisor is asked (:func:`core.prompts.supervisor_prompt`) for new definitions of the labels
the annotators disagreed on, as one JSON object label name -> definition. Its answer is read
leniently - a model may fence it or talk around it - but every deviation is counted under a fixed
key (:data:`PROBLEMS`) and explained in a note, so a round log shows what was dropped and why. A
revision that quotes a test gold mention is rejected (zero-shot means zero), and an accepted one
is applied to a copy of the domain's YAML data, never to the file in place.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.io import ProjectError
from core.leakage import find_leaks
from core.mappings import Domain
from eval.agreement import Disagreement, normalise

PROBLEMS = ("not_json", "not_object", "unknown_label", "not_asked", "duplicate_label",
            "dropped_label", "empty_definition")
_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)
DIFF_WIDTH = 80


class RevisionError(ProjectError):
    """A revision request or result that cannot be used as given (a label the domain lacks)."""


def supervisor_schema(names: Sequence[str], max_chars: int) -> dict[str, Any]:
    """JSON schema of the supervisor's answer (for guided decoding): exactly the asked label
    names, each a non-empty string of at most ``max_chars`` characters."""
    if not names:
        raise RevisionError("the supervisor must be asked for at least one label")
    if len(set(names)) != len(names):
        raise RevisionError(f"label names asked twice: {list(names)}")
    if max_chars < 1:
        raise RevisionError(f"max_chars must be positive, got {max_chars}")
    item = {"type": "string", "minLength": 1, "maxLength": max_chars}
    return {"type": "object", "properties": {name: dict(item) for name in names},
            "required": list(names), "additionalProperties": False}


@dataclass
class Revisions:
    """The usable part of one supervisor answer, and an account of the rest."""

    raw: str
    revised: dict[str, str] = field(default_factory=dict)  # tag -> new definition (collapsed)
    problems: Counter[str] = field(default_factory=Counter)  # keys: PROBLEMS
    unchanged: int = 0  # answered with the current definition (not a problem)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"revised": dict(self.revised), "problems": dict(self.problems),
                "unchanged": self.unchanged, "notes": list(self.notes), "raw": self.raw}


def _json_value(answer: str) -> tuple[bool, Any]:
    """(found, value): the answer as JSON - the inside of a code fence if it has one; else the
    whole text; else the first ``{...}`` object that decodes, surrounding prose ignored."""
    fenced = _FENCE.search(answer)
    text = (fenced.group(1) if fenced else answer).strip()
    try:  # strict=False: a raw control character inside a string (a weak model writes them,
        return True, json.loads(text, strict=False)  # even under a grammar) is no reason to
    except json.JSONDecodeError:  # throw the answer away
        pass
    decoder = json.JSONDecoder(strict=False)
    for match in re.finditer(r"\{", text):
        try:  # from a "{", a value that decodes is an object
            return True, decoder.raw_decode(text, match.start())[0]
        except json.JSONDecodeError:
            continue
    return False, None


def read_revisions(answer: str, asked: Sequence[str], domain: Domain) -> Revisions:
    """Read the supervisor's answer for the labels ``asked`` (tags). Keys name a label by name or
    tag, case-insensitively; the first key naming a label wins. A label without a usable
    definition keeps its current one."""
    unknown = [tag for tag in asked if tag not in domain.labels]
    if unknown:
        raise RevisionError(f"asked labels {unknown} are not labels of domain {domain.name!r}")
    result = Revisions(raw=answer)

    def problem(kind: str, note: str) -> None:
        result.problems[kind] += 1
        result.notes.append(note)

    found, value = _json_value(answer)
    if not found:
        problem("not_json", "the answer holds no JSON object: every asked label keeps its "
                            "definition")
        return result
    if not isinstance(value, dict):
        problem("not_object", f"the answer is JSON but a {type(value).__name__}, not an object: "
                              "every asked label keeps its definition")
        return result
    lookup = domain.tag_lookup()
    answered: dict[str, str] = {}  # tag -> the key that answered it
    for key, text in value.items():
        tag = lookup.get(normalise(key).lower())
        if tag is None:
            problem("unknown_label", f"label {key!r}: unknown label, ignored")
            continue
        if tag not in asked:
            problem("not_asked", f"label {key!r}: not asked, ignored")
            continue
        if tag in answered:
            problem("duplicate_label", f"label {key!r}: answered already as "
                                       f"{answered[tag]!r}, ignored")
            continue
        answered[tag] = key
        if not isinstance(text, str) or not text.strip():
            what = "blank" if isinstance(text, str) else f"a {type(text).__name__}, not a string"
            problem("empty_definition", f"label {key!r}: definition is {what}, current one kept")
            continue
        text = normalise(text)
        if text == normalise(domain.labels[tag].definition):
            result.unchanged += 1
            result.notes.append(f"label {key!r}: definition unchanged")
            continue
        result.revised[tag] = text
    for tag in asked:
        if tag not in answered:
            problem("dropped_label", f"label {domain.labels[tag].name!r}: not in the answer, "
                                     "current definition kept")
    return result


def reject_leaks(revised: Mapping[str, str], test_gold: set[str]
                 ) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(accepted, rejected): a revision that carries a test gold mention (as
    :func:`core.leakage.find_leaks` finds them in a domain file) is rejected with its leaks."""
    accepted: dict[str, str] = {}
    rejected: dict[str, list[str]] = {}
    for tag, text in revised.items():
        leaks = find_leaks({"labels": {tag: {"definition": text}}}, test_gold)
        if leaks:
            rejected[tag] = leaks
        else:
            accepted[tag] = text
    return accepted, rejected


MIN_COPY_CHARS = 3  # shorter mentions ("UK", "I") occur in any prose: not a sign of copying
COPY_RUN = 4  # this many consecutive tokens of a shown sentence are copied prose


def _names(tokens: Sequence[str]) -> list[str]:
    """Runs of capitalised tokens after a sentence's first token: how names are written."""
    runs: list[list[str]] = []
    for i, token in enumerate(tokens):
        if i and token[:1].isupper():
            if runs and runs[-1][-1] is tokens[i - 1]:
                runs[-1].append(token)
            else:
                runs.append([token])
    return [" ".join(run) for run in runs]


def copied_from(text: str, mentions: Sequence[str], sentences: Sequence[str]) -> list[str]:
    """What ``text`` copies of what the supervisor was shown, as whole words: a shown mention
    (case-insensitive), a name of a shown sentence (a run of capitalised tokens, as written),
    or :data:`COPY_RUN` consecutive tokens of one (case-insensitive). Only strings of at least
    :data:`MIN_COPY_CHARS` characters count."""
    def found(phrase: str, flags: int) -> bool:
        return len(phrase) >= MIN_COPY_CHARS and re.search(
            rf"(?<!\w){re.escape(phrase)}(?!\w)", text, flags) is not None

    copied = {m for m in map(normalise, mentions) if found(m, re.IGNORECASE)}
    for sentence in sentences:
        tokens = sentence.split()
        copied |= {name for name in _names(tokens) if found(name, 0)}
        copied |= {run for run in (" ".join(tokens[i:i + COPY_RUN])
                                   for i in range(len(tokens) - COPY_RUN + 1))
                   if found(run, re.IGNORECASE)}
    return sorted(copied)


def reject_copies(revised: Mapping[str, str], mentions: Sequence[str],
                  sentences: Sequence[str] = ()) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(accepted, rejected): a revision that copies what the supervisor was shown
    (:func:`copied_from`) is rejected with what it copied. A definition built from the pilot's
    own text is no definition (a weak supervisor answers "Ambient Monkeys" for location, a
    fragment of a shown sentence), and examples in definitions are invented, never data."""
    accepted: dict[str, str] = {}
    rejected: dict[str, list[str]] = {}
    for tag, text in revised.items():
        copied = copied_from(text, mentions, sentences)
        if copied:
            rejected[tag] = copied
        else:
            accepted[tag] = text
    return accepted, rejected


def apply_revisions(domain_data: Mapping[str, Any], revised: Mapping[str, str]) -> dict[str, Any]:
    """A deep copy of a domain's YAML data (``yaml.safe_load``) with the revised definitions in
    place; nothing else changes. A tag the data has no label for is an error."""
    data = copy.deepcopy(dict(domain_data))
    labels = data.get("labels")
    if not isinstance(labels, dict):
        raise RevisionError("domain data has no 'labels' mapping")
    for tag, text in revised.items():
        body = labels.get(tag)
        if not isinstance(body, dict):
            raise RevisionError(f"cannot revise label {tag!r}: the domain data has no such "
                                "label (or its entry is not a mapping)")
        body["definition"] = text
    return data


def definition_diff(tag: str, old: str, new: str) -> str:
    """A unified diff of two definitions, whitespace collapsed (YAML folds it anyway) and wrapped
    at :data:`DIFF_WIDTH` characters, for the round log; ``""`` when they read the same."""
    before = textwrap.wrap(normalise(old), DIFF_WIDTH)
    after = textwrap.wrap(normalise(new), DIFF_WIDTH)
    lines = difflib.unified_diff(before, after, f"a/{tag}", f"b/{tag}", lineterm="")
    text = "\n".join(lines)
    return text + "\n" if text else ""


def describe_disagreement(d: Disagreement, names: Mapping[str, str]) -> str:
    """What the annotators said about one mention, in label names (a tag without a name is
    shown as is): ``"A: person; B: musical artist; missed by C"`` for a type disagreement,
    ``"found by A as person, missed by B, C"`` for a presence one."""
    def shown(tags: Sequence[str]) -> str:
        return " or ".join(names.get(tag, tag) for tag in tags)

    missed = f"missed by {', '.join(d.missing)}" if d.missing else ""
    if d.kind == "type":
        parts = [f"{annotator}: {shown(tags)}" for annotator, tags in d.labels.items()]
        return "; ".join([*parts, missed] if missed else parts)
    found = f"found by {', '.join(d.labels)} as {shown(d.tags)}"
    return f"{found}, {missed}" if missed else found
