"""The one lenient parser for LLM answers: JSON objects and lists, however the model wrapped them.

Models add prose, Markdown fences, single quotes, trailing commas, or stop mid-answer at
``max_tokens``. Every parse returns a value *and* a :class:`Status`, so a stage can count how
often each failure happened instead of crashing or silently losing a sentence:

* ``ok``        - the whole answer (fences/whitespace aside) was valid JSON of the expected kind
* ``repaired``  - JSON was recovered: found inside prose, quotes/commas fixed, or brackets closed
* ``empty``     - the answer was empty
* ``invalid``   - nothing usable; the caller gets an empty result

Answers are untrusted and up to ``max_tokens`` long, so no input raises and time is linear in
the length: valid JSON goes to ``json.loads`` (its C decoder's depth limit is caught), anything
else to a single-pass scanner without recursion, for which nesting deeper than
:data:`MAX_DEPTH` is ``invalid``.
"""

from __future__ import annotations

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


MAX_DEPTH = 200
"""Deeper nesting is no NER answer: the repair gives up there rather than build it."""

# An opener that can start a value: "{" before a key or "}", "[" before a value or "]". Searching
# for these in C skips prose brackets ("[1]", "{x}") without a Python-level scan each.
_CANDIDATE = re.compile(r"\{\s*[\"'}]|\[\s*[\[\]{\"'\-0-9tfnTFN]")
_SPACE = re.compile(r"\s*")
# Unrolled-loop string patterns: each character has one way to match, so no backtracking blow-up.
_DQ_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_SQ_STRING = re.compile(r"'[^'\\]*(?:\\.[^'\\]*)*'", re.DOTALL)
_SQ_ESCAPE = re.compile(r"\\(.)|\"", re.DOTALL)
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_LITERAL = re.compile(r"true|false|null|True|False|None")
_LITERALS = {"true": True, "True": True, "false": False, "False": False,
             "null": None, "None": None}
_SURROGATE = re.compile("[\ud800-\udfff]")
# Lenient about raw control characters (a newline inside a mention), unlike json.loads.
_STRING_DECODER = json.JSONDecoder(strict=False)
_SCALAR_START = frozenset("\"'-0123456789tfnTFN")

# What the scanner expects next.
_VALUE, _KEY, _COLON, _NEXT = range(4)


def _unfence(text: str) -> str:
    """Drop a Markdown code fence; string operations, because a regex with ``\\s*`` before
    an anchor backtracks quadratically on long runs of spaces."""
    text = text.strip()
    if text.startswith("```"):
        i = 3
        while i < len(text) and text[i].isascii() and text[i].isalpha():
            i += 1
        text = text[i:]
    if text.endswith("```"):
        text = text[:-3]
    return text.strip()


def _sq_to_json(match: re.Match[str]) -> str:
    """One escape of a single-quoted (Python-style) string, rewritten for a JSON string."""
    if match.group(0) == '"':
        return '\\"'
    return "'" if match.group(1) == "'" else match.group(0)


def _scalar(text: str, i: int) -> tuple[Any, int, bool] | None:
    """The string, number or literal at ``text[i]``: (value, end, complete), or None if there
    is none. A string without its closing quote, or a number that touches the end of the text,
    may have been cut off: it is not complete."""
    ch = text[i]
    if ch not in _SCALAR_START:
        return None
    if ch in "\"'":
        match = (_DQ_STRING if ch == '"' else _SQ_STRING).match(text, i)
        if match is None:  # no closing quote: the answer stops inside this string
            return None, len(text), False
        body = match.group(0)
        if "\\" not in body and (ch == '"' or '"' not in body):
            return body[1:-1], match.end(), True  # nothing to decode (the common case)
        if ch == "'":
            body = '"' + _SQ_ESCAPE.sub(_sq_to_json, body[1:-1]) + '"'
        try:
            return _STRING_DECODER.decode(body), match.end(), True
        except ValueError:  # a bad escape such as \q or \u12
            return None
    if match := _NUMBER.match(text, i):
        token = match.group(0)
        try:
            number = int(token) if token.lstrip("-").isdigit() else float(token)
        except ValueError:  # more digits than int() converts
            return None
        return number, match.end(), match.end() < len(text)
    if match := _LITERAL.match(text, i):
        return _LITERALS[match.group(0)], match.end(), True
    return None


_MISSING = object()  # undo log: the dict had no such key
_UNFILLED = object()  # undo log: the frame held no complete item


class _Frame:
    """An open ``[`` or ``{``: the value built so far, the key its next value goes under,
    whether it holds a complete item yet, and its first complete child of the wanted kind."""

    __slots__ = ("filled", "key", "kind_child", "value")

    def __init__(self, value: dict | list) -> None:
        self.value = value
        self.key: str | None = None
        self.filled = False
        self.kind_child: dict | list | None = None

    def put(self, item: Any) -> tuple[_Frame, Any]:
        """Store ``item``; return what :func:`_take_back` needs to undo it."""
        if isinstance(self.value, list):
            self.value.append(item)
            return self, _MISSING
        previous = self.value.get(self.key, _MISSING)
        self.value[self.key] = item
        return self, previous


def _add(frames: list[_Frame], item: Any, attached: bool) -> list[tuple[_Frame, Any]]:
    """A complete item ends in the top frame: the cut point moves here. Open ancestors that held
    nothing yet are attached to their parents now, so the root is always the closed prefix.
    Returns the undo log, used when a syntax error follows the item at once."""
    log = [frames[-1].put(item)] if not attached else []
    for depth in range(len(frames) - 1, -1, -1):
        frame = frames[depth]
        if frame.filled:
            break
        frame.filled = True
        log.append((frame, _UNFILLED))
        if depth:
            log.append(frames[depth - 1].put(frame.value))
    return log


def _take_back(log: list[tuple[_Frame, Any]]) -> None:
    """Undo an :func:`_add`, newest change first."""
    for frame, previous in reversed(log):
        if previous is _UNFILLED:
            frame.filled = False
        elif isinstance(frame.value, list):
            frame.value.pop()
        elif previous is _MISSING:
            del frame.value[frame.key]
        else:
            frame.value[frame.key] = previous


class _TooDeep(Exception):
    """Nesting beyond :data:`MAX_DEPTH`: the whole answer is invalid."""


def _scan_value(text: str, start: int, kind: type) -> tuple[Any, int]:
    """Parse the bracketed value that opens at ``text[start]`` in one pass.

    Returns (value of ``kind`` or None, where to look for the next candidate). A complete value
    of the other kind is skipped whole. When the text ends first (cut at max_tokens), the answer
    is cut after the last complete item and its brackets closed. A syntax error cuts it the same
    way, but also drops an item that the error follows at once: in ``["The "Best" Album"]`` the
    string ``"The "`` only looks complete. The outermost open value of ``kind`` holding an item
    wins; else the first complete ``kind`` child of an open value of the other kind (what trying
    every nested opener in order would find, without rescanning).
    """
    frames: list[_Frame] = []
    n = len(text)
    i = start
    expect = _VALUE
    unconfirmed: list[tuple[_Frame, Any]] = []  # the last item, until "," or a closer follows
    while True:
        if i < n and text[i].isspace():
            i = _SPACE.match(text, i).end()
        if i >= n:
            break
        ch = text[i]
        top = frames[-1] if frames else None
        closer = "}" if top is not None and isinstance(top.value, dict) else "]"
        if ch == closer and top is not None and (
                expect == _NEXT or (expect == _VALUE and closer == "]")
                or (expect == _KEY and closer == "}")):  # trailing commas are fine
            frames.pop()
            i += 1
            if not frames:
                return (top.value if isinstance(top.value, kind) else None), i
            parent = frames[-1]
            if parent.kind_child is None and isinstance(top.value, kind):
                parent.kind_child = top.value
            unconfirmed = _add(frames, top.value, attached=top.filled)
            expect = _NEXT
        elif expect == _NEXT and ch == ",":
            i += 1
            unconfirmed = []
            expect = _KEY if isinstance(top.value, dict) else _VALUE
        elif expect == _COLON and ch == ":":
            i += 1
            expect = _VALUE
        elif expect == _VALUE and ch in "[{":
            if len(frames) >= MAX_DEPTH:
                raise _TooDeep
            frames.append(_Frame({} if ch == "{" else []))
            i += 1
            expect = _KEY if ch == "{" else _VALUE
        elif expect in (_VALUE, _KEY) and top is not None:
            scalar = _scalar(text, i)
            if scalar is None:
                break
            item, i, complete = scalar
            if not complete:
                break
            if expect == _KEY:
                if not isinstance(item, str):
                    break
                top.key = item
                expect = _COLON
            else:
                unconfirmed = _add(frames, item, attached=False)
                expect = _NEXT
        else:
            break
    if i < n:  # a syntax error, not the end of the text
        _take_back(unconfirmed)
    for frame in frames:
        if frame.filled and isinstance(frame.value, kind):
            return frame.value, i
        if frame.kind_child is not None:
            return frame.kind_child, i
    return None, i


def parse_json(text: str | None, kind: type = dict) -> tuple[Any, Status]:
    """The first JSON value of ``kind`` (dict or list) in ``text``; ``(kind(), INVALID)``
    when there is none. Never raises, and runs in time linear in ``len(text)``: each candidate
    opener is scanned once and the next search resumes where that scan stopped."""
    if text is None or not text.strip():
        return kind(), Status.EMPTY
    stripped = _unfence(text)
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):  # the C decoder raises RecursionError on deep nesting
        value = None
    if isinstance(value, kind):
        return value, Status.OK
    # Walk the JSON-looking values in the text. A complete value of the other kind is skipped
    # whole (never dig a list out of an object); one that never closes was cut off at max_tokens.
    pos = 0
    try:
        while (found := _CANDIDATE.search(stripped, pos)) is not None:
            value, pos = _scan_value(stripped, found.start(), kind)
            if value is not None:
                return value, Status.REPAIRED
    except _TooDeep:
        pass
    return kind(), Status.INVALID


def _clean(text: str) -> str:
    """``text`` stripped, lone surrogates (from escapes such as ``"\\ud800"``) replaced: they
    cannot be encoded as UTF-8, and every parsed answer is written to a UTF-8 file."""
    return _SURROGATE.sub("\ufffd", text).strip()


def _strings(value: Any) -> list[str]:
    """Mentions from a value that should be a list of strings (a lone string is accepted)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [cleaned for v in value if isinstance(v, str) and (cleaned := _clean(v))]


def parse_type_mentions(
    text: str | None, types: Sequence[str]
) -> tuple[dict[str, list[str]], Status, list[str]]:
    """An extractor's ``{type: [mentions]}`` answer → (mentions per type, status, off-schema
    types).

    Stage 1 is type-agnostic, so mentions filed under a key outside the schema ("organization"
    for "organisation") are kept, under the key as written (stripped); those keys are listed too,
    so the caller can count them. Schema keys match case-insensitively and take the schema's
    spelling. Repeated mentions are dropped; an empty result is valid.
    """
    value, status = parse_json(text, dict)
    by_lower = {t.lower(): t for t in types}
    result: dict[str, dict[str, None]] = {}  # dicts as ordered sets: linear de-duplication
    unknown: dict[str, None] = {}
    for key, mentions in value.items():
        name = _clean(str(key))
        canonical = by_lower.get(name.lower())
        if canonical is None:
            canonical = name
            unknown[name] = None
        result.setdefault(canonical, {}).update(dict.fromkeys(_strings(mentions)))
    return {t: list(ms) for t, ms in result.items()}, status, list(unknown)


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
            if isinstance(mention, str) and isinstance(label, str) and (m := _clean(mention)):
                pairs.append((m, _clean(label)))
    return pairs, status
