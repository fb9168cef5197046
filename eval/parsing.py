"""The one lenient parser for LLM answers: JSON objects and lists, however the model wrapped them.

Models add prose, Markdown fences, single quotes, trailing commas, or stop mid-answer at
``max_tokens``. Every parse returns a value *and* a :class:`Status`, so a stage can count how
often each failure happened instead of crashing or silently losing a sentence:

* ``ok``        - the whole answer (fences/whitespace aside) was valid JSON of the expected kind
* ``repaired``  - JSON was recovered: found inside prose, quotes/commas fixed, or brackets closed
* ``empty``     - the answer was empty
* ``invalid``   - nothing usable; the caller gets an empty result
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    OK = "ok"
    REPAIRED = "repaired"
    EMPTY = "empty"
    INVALID = "invalid"


_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_OPENER = re.compile(r"[\[{]")
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def _is_json(value: Any) -> bool:
    """Python-literal parsing also yields sets and tuples; only JSON shapes are answers."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_json(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


def _loads(text: str) -> Any:
    """``json.loads``, then Python-literal syntax (single quotes), then without trailing commas."""
    for candidate in (text, _TRAILING_COMMA.sub(r"\1", text)):
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            pass
        try:
            value = ast.literal_eval(candidate)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if _is_json(value):
            return value
    raise ValueError("not JSON")


def _scan(text: str) -> tuple[list[str], bool, int | None]:
    """Walk ``text`` as JSON: the closers still owed at its end, whether it ends inside a
    string, and the index just past the bracket that closes ``text[0]`` (None if none does)."""
    owed: list[str] = []
    in_string = escaped = False
    end = None
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            owed.append("]" if ch == "[" else "}")
        elif ch in "]}" and owed:
            owed.pop()
            if not owed and end is None:
                end = i + 1
    return owed, in_string, end


def _close_truncated(text: str, max_tries: int = 200) -> Any:
    """Recover an answer cut off at max_tokens: cut after the last complete item, close brackets.

    Tries cut points from the end backwards (after a quote or a bracket), so the longest valid
    prefix wins; raises ``ValueError`` when no prefix parses.
    """
    cuts = [i + 1 for i, ch in enumerate(text) if ch in '"]}']
    for cut in reversed(cuts[-max_tries:]):
        head = text[:cut]
        owed, in_string, _ = _scan(head)
        if in_string:
            continue
        try:
            return _loads(head.rstrip().rstrip(",:") + "".join(reversed(owed)))
        except ValueError:
            continue
    raise ValueError("no parsable prefix")


def parse_json(text: str | None, kind: type = dict) -> tuple[Any, Status]:
    """The first JSON value of ``kind`` (dict or list) in ``text``; ``(kind(), INVALID)``
    when there is none."""
    if text is None or not text.strip():
        return kind(), Status.EMPTY
    stripped = _FENCE.sub("", text.strip())
    try:
        value = json.loads(stripped)
        if isinstance(value, kind):
            return value, Status.OK
    except json.JSONDecodeError:
        pass
    # Walk the JSON-looking values in the text. A complete value of the other kind is skipped
    # whole (never dig a list out of an object); one that never closes was cut off at max_tokens.
    opener = "{" if kind is dict else "["
    pos = 0
    while (found := _OPENER.search(stripped, pos)) is not None:
        start = found.start()
        candidate = stripped[start:]
        end = _scan(candidate)[2]
        try:
            if end:
                value = _loads(candidate[:end])
            elif candidate[0] == opener:
                value = _close_truncated(candidate)
            else:
                value = None
        except ValueError:
            value = None
        if isinstance(value, kind):
            return value, Status.REPAIRED
        pos = start + end if end and value is not None else start + 1
    return kind(), Status.INVALID


def _strings(value: Any) -> list[str]:
    """Mentions from a value that should be a list of strings (a lone string is accepted)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [v.strip() for v in value if isinstance(v, str) and v.strip()]


def parse_type_mentions(
    text: str | None, types: Sequence[str]
) -> tuple[dict[str, list[str]], Status, list[str]]:
    """An extractor's ``{type: [mentions]}`` answer → (mentions per known type, status, unknown
    types the model invented). Type keys match case-insensitively; an empty result is valid."""
    value, status = parse_json(text, dict)
    by_lower = {t.lower(): t for t in types}
    result: dict[str, list[str]] = {}
    unknown: list[str] = []
    for key, mentions in value.items():
        canonical = by_lower.get(str(key).strip().lower())
        if canonical is None:
            unknown.append(str(key))
            continue
        result.setdefault(canonical, []).extend(
            m for m in _strings(mentions) if m not in result.get(canonical, []))
    return result, status, unknown


def parse_mention_labels(text: str | None) -> tuple[list[tuple[str, str]], Status]:
    """A classifier's ``[{mention: archetype}, ...]`` answer → ordered (mention, label) pairs.

    Also accepts one object ``{mention: archetype, ...}`` and ``{"mention": m, "type": t}`` items.
    """
    value, status = parse_json(text, list)
    if status in (Status.INVALID, Status.EMPTY):
        obj, obj_status = parse_json(text, dict)
        if obj_status not in (Status.INVALID, Status.EMPTY):
            value, status = [obj], Status.REPAIRED
    pairs: list[tuple[str, str]] = []
    for item in value:
        if not isinstance(item, dict):
            continue
        if {"mention", "type"} <= item.keys():
            item = {item["mention"]: item["type"]}
        for mention, label in item.items():
            if isinstance(mention, str) and isinstance(label, str) and mention.strip():
                pairs.append((mention.strip(), label.strip()))
    return pairs, status
