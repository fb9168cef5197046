"""Wrap entity mentions in ``<ENT>``/``</ENT>``: the input format of the archetype classifier.

One function builds this format for training (IEPile) and for inference (stage-1 output), so the
classifier never sees two tagging conventions. The rules, in the order they apply:

* mentions are matched verbatim (case-sensitive); empty mentions and repeats are ignored;
* longest mentions first, so "New York City" claims its words before "New York" can;
* a match may not overlap a region already tagged; the first free occurrence wins;
* word boundary: a match may not touch a letter, digit or underscore of a *spaced* script (Latin,
  Greek, Cyrillic, Hangul, ...) on either side, whatever the mention's own edge character is, so
  "art" is not found in "start", "C++" not in "C++11", "U.S." not in "U.S.A";
* scripts written without spaces (Han, kana, Thai, Lao, Khmer, Myanmar, full-width forms) have
  no word boundaries: when the mention's edge character is from such a script, that side is not
  checked ("胡" is tagged in "胡老说", "手机" in "iPhone手机"); a neighbour from such a script never
  blocks a match either ("Python" is tagged in "用Python写").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

OPEN_TAG = "<ENT>"
CLOSE_TAG = "</ENT>"

# Scripts written without spaces between words.
_NO_SPACE_RANGES = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3005-\u3007"  # 々 〆 〇
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u31f0-\u31ff"  # Katakana phonetic extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff00-\uffef"  # full-width and half-width forms
    "\U00020000-\U0003134f"  # CJK extensions B-H
)
_NO_SPACE_CHAR = re.compile(f"[{_NO_SPACE_RANGES}]")
# A word character of a script that separates words with spaces.
_SPACED_WORD = f"[^\\W{_NO_SPACE_RANGES}]"
# Zero-width guards, compiled once and applied at a candidate's edges with ``match(text, pos)``
# (a lookbehind sees the characters before ``pos``). Compiling a guard into a per-mention
# pattern instead costs ~5 ms per mention (the big Unicode class), i.e. hours on IEPile.
_LEFT_GUARD = re.compile(f"(?<!{_SPACED_WORD})")
_RIGHT_GUARD = re.compile(f"(?!{_SPACED_WORD})")


def find_mention(text: str, mention: str, start: int = 0) -> int:
    """Index of the first whole-word occurrence of ``mention`` at or after ``start``, or -1."""
    if not mention:
        return -1
    check_left = not _NO_SPACE_CHAR.match(mention[0])
    check_right = not _NO_SPACE_CHAR.match(mention[-1])
    pos = text.find(mention, start)
    while pos >= 0:
        if ((not check_left or _LEFT_GUARD.match(text, pos))
                and (not check_right or _RIGHT_GUARD.match(text, pos + len(mention)))):
            return pos
        pos = text.find(mention, pos + 1)
    return -1


@dataclass(frozen=True)
class MentionPattern:
    """Whole-word finder for one mention, with the ``search`` interface of ``re.Pattern``."""

    mention: str

    def search(self, text: str, pos: int = 0) -> re.Match[str] | None:
        index = find_mention(text, self.mention, pos)
        return None if index < 0 else re.compile(re.escape(self.mention)).match(text, index)


def mention_pattern(mention: str) -> MentionPattern:
    """``mention_pattern(m).search(text)``: the first whole-word occurrence, as an ``re.Match``."""
    return MentionPattern(mention)


def _overlaps(start: int, end: int, regions: list[tuple[int, int]]) -> bool:
    return any(start < r_end and r_start < end for r_start, r_end in regions)


def tag_mentions(text: str, mentions: Iterable[str]) -> tuple[str, list[str]]:
    """Tag each mention's first free whole-word occurrence in ``text``.

    Returns the tagged text and the mentions actually tagged, in the order they occur in the
    text (the order the classifier is asked to answer in). A mention missing from that list was
    not found (or only inside a longer mention): the caller decides whether to count or drop it.
    """
    unique = list(dict.fromkeys(m for m in mentions if m))
    unique.sort(key=len, reverse=True)  # stable: equal lengths keep the caller's order
    regions: list[tuple[int, int]] = []
    for mention in unique:
        pos = find_mention(text, mention)
        while pos >= 0:
            if not _overlaps(pos, pos + len(mention), regions):
                regions.append((pos, pos + len(mention)))
                break
            pos = find_mention(text, mention, pos + 1)
    regions.sort()
    pieces: list[str] = []
    cursor = 0
    for start, end in regions:
        pieces += [text[cursor:start], OPEN_TAG, text[start:end], CLOSE_TAG]
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces), [text[start:end] for start, end in regions]
