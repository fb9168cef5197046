"""Raw text -> what the models see, and back to character offsets: tokens, sentences, windows.

Offsets are Python string offsets (code points; end exclusive) into the text as given, so
``text[start:end]`` is always the token, sentence or entity; nothing is normalised.

Tokens (:func:`token_spans`). The unit is an extended grapheme cluster (UAX #29, ``regex``'s
``\\X``), cut further at whitespace, so a token never splits what a reader sees as one
character (a flag, 👩‍🔬, e + U+0301) and never holds whitespace. A unit is
  * whitespace: a separator, in no token;
  * an emoji: it holds an Extended_Pictographic or Regional_Indicator code point, U+FE0F (emoji
    presentation) or U+20E3 (keycap), so 🇷🇺, 👍🏽, 1️⃣ (a digit first) and 🫨 (newer than
    Python's own Unicode tables) alike: always a token of its own, never merged with a word,
    never split; an emoji is a symbol, as it was when tokens were cut per code point;
  * a word unit: its first code point is not punctuation or a symbol (Unicode categories P*,
    S*, from the pinned ``regex``'s tables, the ones its ``\\X`` uses; ``_`` is a letter);
  * else punctuation or a symbol.
A token is a maximal run of word units; a unit ``-`` or ``.`` between two word units stays in
the token ("e-mail", "3.5", "Node.js"); every other punctuation or symbol unit is a token of its
own ("Apple's" -> ``Apple ' s``, "(IBM)" -> ``( IBM )``, "U.S." -> ``U.S .``). Scripts written
without spaces (Chinese, Japanese, Thai) get no word splits: a run between punctuation is one
token. The sentence the stages see is the tokens joined by single spaces.

Given tokens (:func:`align_tokens`): pre-tokenised input keeps its own tokens. Each is a
non-empty string without whitespace, found in the text in order with only whitespace (or
nothing: "U.S" then "." in "U.S.") before it and only whitespace after the last, so the tokens
are all the text holds and their spans follow without search or ambiguity. Their spans then
stand in for :func:`token_spans` in :func:`sentence_spans` and :func:`windows` (``spans=``).

Mentions -> offsets (:func:`place_mentions`): each predicted mention is split on whitespace and
placed at every run of tokens equal to it (as span scoring does), longest mentions first; an
occurrence that overlaps a longer mention already placed is skipped (the stage-2 tagging rule).
A mention that is not a run of whole tokens ("York" inside "York-based") is counted and left out.

Sentences (:func:`sentence_spans`). Paragraphs are separated by blank lines (lines holding only
whitespace; ``\\n``, ``\\r\\n`` and ``\\r`` end a line). Inside a paragraph a sentence ends after
a run of ``.``, ``!``, ``?``, ``…``, ``‽`` and any closing quotes or brackets, followed by
whitespace; after ``。``, ``！``, ``？`` (and closers) it ends with or without whitespace. Not an
end:
  * when the next word starts with a lowercase letter (after opening quotes or brackets):
    "etc. and", "Yahoo! said", "U.S. in";
  * after one period that ends a known abbreviation (:data:`ABBREVIATIONS`: "Dr.", "Mr.",
    "St.", "vs.", ...) or single letters each followed by a period ("J.", "U.S.", "e.g.",
    "i.e.", so "J. R. R. Tolkien" and "e.g. Paris" stay whole, and "Plan B. Next" too);
  * after one period that follows a number opening its line (a list item "1. Milk").
A number ending a sentence ("born in 1990. He") is an end.
With given token spans (``spans=``) a sentence never cuts a token: a token belongs to the
sentence it starts in, which then ends where that token ends; a sentence left with no token
of its own is dropped. (Ends followed by whitespace always fall between tokens; only the
``。`` rule, which needs none, can fall inside a given token.)
Hand-written rules are enough here: windows pack several sentences, so a missed end only makes
a window hold one sentence more; a spurious end cuts an entity only if it falls inside a name,
and the abbreviation and initials rules cover the common cases of a period inside one.

Windows (:func:`windows`): consecutive sentences of one paragraph packed while the model's
token count of the window's text stays within budget; see there.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import regex

from core.io import ProjectError

IN_WORD = frozenset("-.")  # a unit that stays inside a token when both neighbours are word units
ABBREVIATIONS = frozenset({
    # titles and name parts: the capitalised word after them belongs to the same name
    "Dr", "Mr", "Mrs", "Ms", "Mx", "Prof", "Jr", "Sr", "St", "Mt", "Ft", "Gen", "Col", "Capt",
    "Lt", "Sgt", "Rev", "Sen", "Rep", "Gov", "Pres",
    # always followed by more of the sentence
    "vs", "cf", "viz", "approx", "ca", "No", "Nos", "Fig", "Figs", "Vol", "Ch",
})
CLAUSE_PUNCT = frozenset(",;:|，、；：")  # where a sentence too long for a window is best cut

_CLUSTER = regex.compile(r"\X")
_EMOJI = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}\uFE0F\u20E3]")
_NOT_WORD = regex.compile(r"[\p{P}\p{S}--_]", regex.V1)  # P* or S*, except "_"
# str.isspace() (re's \s is exactly that; regex's \s leaves out \x1c-\x1f)
_SPACE_RUN = re.compile(r"\s+")
_NON_SPACE_RUN = re.compile(r"\S+")
_LINE_END = re.compile(r"\r\n|\r|\n")
_CLOSERS = r"[\"'\p{Pe}\p{Pf}]*"
# The second branch ends between two clusters, so between two tokens: it takes whole clusters
# ("。" + a mark ends after the mark) and no "。" glued to a prepended mark (Arabic U+0600).
_END = regex.compile(rf"(?P<stop>[.!?…‽]+){_CLOSERS}(?=\s|\Z)"
                     r"|(?<!\p{Grapheme_Cluster_Break=Prepend})(?:(?=[。！？｡])\X)+"
                     r"(?:(?=[\"'\p{Pe}\p{Pf}])\X)*")
_NEXT_LOWER = regex.compile(r"\s*[\"'¿¡\p{Ps}\p{Pi}]*\p{Ll}")
_INITIALS = regex.compile(r"(?:\p{L}\.)*\p{L}")
_OPENERS = "\"'¿¡([{“‘«‹"

Span = tuple[int, int]


class TextError(ProjectError):
    """Text that cannot be fitted to the model (one character over the token budget)."""


class TokenError(ValueError):
    """Given tokens that are not the text's: the message names the first one that is not."""


# --- tokens -------------------------------------------------------------------------------------

_SPACE, _WORD, _EMOJI_UNIT, _PUNCT = range(4)


def _kind(unit: str) -> int:
    first = unit[0]
    if first.isspace():
        return _SPACE
    if (len(unit) > 1 or not first.isascii()) and _EMOJI.search(unit):
        return _EMOJI_UNIT
    return _PUNCT if _NOT_WORD.match(first) else _WORD


def _units(text: str) -> Iterator[tuple[int, int, int]]:
    """``(start, end, kind)`` of the grapheme clusters, a cluster cut at whitespace inside it
    (a mark after a space, a space after a prepended Arabic number sign)."""
    for match in _CLUSTER.finditer(text):
        start, end = match.span()
        cluster = match.group()
        if end - start > 1 and any(ch.isspace() for ch in cluster):
            for part in re.finditer(r"\s|\S+", cluster):
                yield start + part.start(), start + part.end(), _kind(part.group())
        else:
            yield start, end, _kind(cluster)


def token_spans(text: str) -> list[Span]:
    """Character spans ``(start, end)`` of the text's tokens, by the rule in the module doc."""
    units = list(_units(text))
    spans: list[Span] = []
    start: int | None = None
    for k, (s, e, kind) in enumerate(units):
        if kind == _WORD:
            if start is None:
                start = s
            continue
        if (kind == _PUNCT and start is not None and text[s:e] in IN_WORD
                and k + 1 < len(units) and units[k + 1][2] == _WORD):
            continue
        if start is not None:
            spans.append((start, s))
            start = None
        if kind != _SPACE:
            spans.append((s, e))
    if start is not None:
        spans.append((start, len(text)))
    return spans


def align_tokens(text: str, tokens: Sequence[str]) -> list[Span]:
    """Character spans of given ``tokens`` in ``text``, by the rule in the module doc (whitespace
    as ``str.isspace``, as :func:`token_spans` cuts at it); else :class:`TokenError`."""
    spans: list[Span] = []
    cursor = 0
    for i, token in enumerate(tokens):
        check_token(i, token)
        gap = _SPACE_RUN.match(text, cursor)
        at = gap.end() if gap else cursor
        if not text.startswith(token, at):
            reads = repr(text[at:at + len(token)]) if at < len(text) else "nothing (the end)"
            raise TokenError(f"tokens[{i}] {token!r} does not match the text at offset {at}, "
                             f"which reads {reads}: tokens must appear in order, separated "
                             "only by whitespace")
        cursor = at + len(token)
        spans.append((at, cursor))
    rest = _SPACE_RUN.match(text, cursor)
    at = rest.end() if rest else cursor
    if at < len(text):
        raise TokenError(f"the text goes on after the last token at offset {at}: "
                         f"{text[at:at + 20]!r}: every word of the text must be a token")
    return spans


def check_token(i: int, token: object) -> None:
    """A given token is a non-empty string without whitespace: the model sees the tokens joined
    by single spaces, so one holding a space would come back as two."""
    if not isinstance(token, str):
        raise TokenError(f"tokens[{i}] must be a string, got {type(token).__name__}")
    if not token:
        raise TokenError(f"tokens[{i}] is empty")
    if _SPACE_RUN.search(token):
        raise TokenError(f"tokens[{i}] {token!r} holds whitespace")


# --- mentions back to offsets -------------------------------------------------------------------


def find_occurrences(tokens: Sequence[str], mention_tokens: Sequence[str]) -> list[int]:
    """Start offsets of every run of ``tokens`` equal to ``mention_tokens``."""
    n = len(mention_tokens)
    if n == 0:
        return []
    first, words = mention_tokens[0], list(mention_tokens)
    return [i for i in range(len(tokens) - n + 1)
            if tokens[i] == first and list(tokens[i:i + n]) == words]


def place_mentions(text: str, spans: Sequence[Span], pairs: Sequence[tuple[str, str]],
                   counts: Counter[str]) -> list[dict[str, Any]]:
    """Entities ``{"start", "end", "text", "type"}`` in ``text``'s offsets for ``(mention, type)``
    pairs, by the rule in the module doc. ``spans`` are the tokens the model saw (a line's, or
    a window's in document offsets); misses are counted under ``mentions_not_token_aligned``
    and ``mentions_inside_longer``."""
    tokens = [text[s:e] for s, e in spans]
    taken = [False] * len(tokens)
    entities = []
    for mention, label in sorted(pairs, key=lambda p: len(p[0].split()), reverse=True):
        words = mention.split()
        starts = find_occurrences(tokens, words)
        if not starts:
            counts["mentions_not_token_aligned"] += 1
            continue
        placed = 0
        for i in starts:
            j = i + len(words)
            if any(taken[i:j]):
                continue
            taken[i:j] = [True] * (j - i)
            start, end = spans[i][0], spans[j - 1][1]
            entities.append({"start": start, "end": end, "text": text[start:end],
                             "type": label})
            placed += 1
        if not placed:
            counts["mentions_inside_longer"] += 1
    return sorted(entities, key=lambda e: (e["start"], e["end"]))


# --- paragraphs and sentences -------------------------------------------------------------------


def _is_paragraph_break(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` (whitespace) holds a blank line: two line ends or more."""
    ends = _LINE_END.finditer(text, start, end)
    return next(ends, None) is not None and next(ends, None) is not None


def paragraph_spans(text: str) -> list[Span]:
    """Spans of the paragraphs (blank lines between them), surrounding whitespace excluded."""
    spans: list[Span] = []
    start = end = 0
    for word in _NON_SPACE_RUN.finditer(text):
        if end == 0:  # the first word
            start = word.start()
        elif _is_paragraph_break(text, end, word.start()):
            spans.append((start, end))
            start = word.start()
        end = word.end()
    if end:
        spans.append((start, end))
    return spans


def _line_start(text: str, start: int, at: int) -> bool:
    """Whether only spaces or tabs lie between the line's start (or ``start``) and ``at``."""
    line = max(text.rfind("\n", start, at), text.rfind("\r", start, at)) + 1
    return not text[max(line, start):at].strip()


def _is_end(text: str, match: regex.Match[str], start: int, end: int) -> bool:
    """Whether the terminator ``match`` inside paragraph ``[start, end)`` ends a sentence."""
    after = match.end()
    if after >= end:
        return True
    if _NEXT_LOWER.match(text, after, end):
        return False
    if match.group("stop") != ".":
        return True
    word_start = match.start()
    while word_start > start and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:match.start()].lstrip(_OPENERS)
    if word in ABBREVIATIONS or _INITIALS.fullmatch(word):
        return False
    return not (word.isdecimal() and _line_start(text, start, match.start() - len(word)))


def sentence_spans(text: str, spans: Sequence[Span] | None = None) -> list[Span]:
    """Spans of the sentences, by the rule in the module doc; surrounding whitespace excluded.
    With ``spans`` (given tokens, in order) a sentence is snapped to whole tokens."""
    found = _sentences(text)
    return found if spans is None else snap_sentences(found, spans)


def snap_sentences(sentences: Sequence[Span], spans: Sequence[Span]) -> list[Span]:
    """Each sentence as the run of ``spans`` that start inside it (none: the sentence is
    dropped), so no sentence boundary cuts a token; spans and sentences in order."""
    out: list[Span] = []
    k = 0
    for start, end in sentences:
        while k < len(spans) and spans[k][0] < start:  # taken by the sentence before
            k += 1
        first = k
        while k < len(spans) and spans[k][0] < end:
            k += 1
        if k > first:
            out.append((spans[first][0], spans[k - 1][1]))
    return out


def _sentences(text: str) -> list[Span]:
    """The sentences by the rules alone, before any snapping to given tokens."""
    spans: list[Span] = []
    for start, end in paragraph_spans(text):
        begin = start
        for match in _END.finditer(text, start, end):
            if match.end() <= begin or not _is_end(text, match, start, end):
                continue
            spans.append((begin, match.end()))
            gap = _SPACE_RUN.match(text, match.end(), end)
            begin = gap.end() if gap else match.end()
        if begin < end:
            spans.append((begin, end))
    return spans


# --- windows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A stretch of a document the model reads at once.

    ``spans`` are its tokens in document offsets and ``text`` what the model sees: those tokens
    joined by single spaces. ``piece`` is 0 for whole sentences, else this window's number
    (1, 2, ...) among the pieces of one sentence that did not fit whole.
    """

    start: int
    end: int
    spans: tuple[Span, ...]
    text: str
    piece: int = 0

    @property
    def split(self) -> bool:
        return self.piece > 0


def _window(text: str, spans: Sequence[Span], piece: int = 0) -> Window:
    return Window(spans[0][0], spans[-1][1], tuple(spans),
                  " ".join(text[s:e] for s, e in spans), piece)


def windows(text: str, sentences: Sequence[Span], max_tokens: int,
            count: Callable[[str], int], *, spans: Sequence[Span] | None = None
            ) -> list[Window]:
    """Windows over ``text``: consecutive ``sentences`` (spans in order, e.g. from
    :func:`sentence_spans`) packed while ``count(window.text) <= max_tokens``.

    ``count`` is the model tokenizer's token count: a window's text is counted whole, since
    tokenizers are not additive across the joining space. A window never crosses a paragraph
    break (a blank line between two sentences). A sentence that does not fit alone is cut into
    pieces at token boundaries, preferring a line end or a clause mark (``,`` ``;`` ``:``) in
    the second half of a piece, where a cut is less likely to fall inside a name; each piece is
    a window of its own (``piece`` 1, 2, ...). A token that alone does not fit (a long URL, an
    unbroken run of Chinese) is cut between grapheme clusters, the only place left that keeps
    offsets exact; a single cluster over the budget raises :class:`TextError`.

    ``spans`` are the tokens to pack (given tokens, e.g. from :func:`align_tokens`); default:
    :func:`token_spans` of each sentence's text. A given token goes with the sentence its start
    lies in, whole even if the sentence ends inside it; one starting in no sentence is left
    out, as text outside the sentences is.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    tokens_of = _sentence_tokens(text, spans)
    out: list[Window] = []
    current: list[Span] = []
    current_text = ""
    previous_end = 0
    for start, end in sentences:
        if not previous_end <= start <= end <= len(text):
            raise ValueError(f"sentence span ({start}, {end}) is not in order within the text")
        tokens = tokens_of(start, end)
        if not tokens:
            continue
        if current and _is_paragraph_break(text, previous_end, start):
            out.append(_window(text, current))
            current = []
        previous_end = end
        joined = " ".join(text[s:e] for s, e in tokens)
        if current:
            candidate = f"{current_text} {joined}"
            if count(candidate) <= max_tokens:
                current.extend(tokens)
                current_text = candidate
                continue
            out.append(_window(text, current))
            current = []
        if count(joined) <= max_tokens:
            current, current_text = tokens, joined
        else:
            out.extend(_window(text, piece, number)
                       for number, piece in enumerate(_pieces(text, tokens, max_tokens, count),
                                                      start=1))
    if current:
        out.append(_window(text, current))
    return out


def _sentence_tokens(text: str, spans: Sequence[Span] | None
                     ) -> Callable[[int, int], list[Span]]:
    """``(start, end) -> the token spans of that sentence``: our tokens of its text, or the given
    ``spans`` that start inside it (checked once: in order, non-empty, within the text)."""
    if spans is None:
        return lambda start, end: [(start + s, start + e)
                                   for s, e in token_spans(text[start:end])]
    given = [(s, e) for s, e in spans]
    previous = 0
    for s, e in given:
        if not previous <= s < e <= len(text):
            raise ValueError(f"token span ({s}, {e}) is empty, overlaps the one before or is "
                             "not within the text")
        previous = e
    starts = [s for s, _ in given]
    return lambda start, end: given[bisect_left(starts, start):bisect_left(starts, end)]


def _longest_fit(text: str, spans: Sequence[Span], first: int, max_tokens: int,
                 count: Callable[[str], int], sep: str) -> int:
    """The most spans from ``first`` on whose text (joined by ``sep``) fits: 0 if none does.
    Doubling then bisecting: O(log n) calls of ``count``, each verified, so a tokenizer that is
    not quite monotone can only make a piece shorter, never too long."""
    def fits(n: int) -> bool:
        return count(sep.join(text[s:e] for s, e in spans[first:first + n])) <= max_tokens

    left = len(spans) - first
    if not fits(1):
        return 0
    good, bad = 1, None
    while bad is None and good < left:
        step = min(good * 2, left)
        if fits(step):
            good = step
        else:
            bad = step
    while bad is not None and bad - good > 1:
        middle = (good + bad) // 2
        if fits(middle):
            good = middle
        else:
            bad = middle
    return good


def _pieces(text: str, spans: Sequence[Span], max_tokens: int,
            count: Callable[[str], int]) -> Iterator[list[Span]]:
    """The token spans of a sentence that does not fit, in pieces that do (see :func:`windows`)."""
    first = 0
    while first < len(spans):
        n = _longest_fit(text, spans, first, max_tokens, count, " ")
        if n == 0:  # one token over the budget: runs of its grapheme clusters
            s, e = spans[first]
            clusters = [(s + m.start(), s + m.end()) for m in _CLUSTER.finditer(text[s:e])]
            at = 0
            while at < len(clusters):
                k = _longest_fit(text, clusters, at, max_tokens, count, "")
                if k == 0:
                    a, b = clusters[at]
                    raise TextError(f"offset {a}: the character {text[a:b]!r} alone is more "
                                    f"than {max_tokens} model tokens")
                yield [(clusters[at][0], clusters[at + k - 1][1])]
                at += k
            first += 1
            continue
        if first + n < len(spans):
            n = _soft_cut(text, spans, first, n)
        yield list(spans[first:first + n])
        first += n


def _soft_cut(text: str, spans: Sequence[Span], first: int, n: int) -> int:
    """``n``, or fewer spans ending at a line end or a clause mark in the second half."""
    for k in range(n, max(n // 2, 1) - 1, -1):
        s, e = spans[first + k - 1]
        following = spans[first + k][0]
        if text[s:e] in CLAUSE_PUNCT or _LINE_END.search(text, e, following):
            return k
    return n
