"""Sentences with their entities highlighted, as one self-contained HTML file (inline CSS and JS,
no network, no fonts): for reading a run's output and paging through its errors in a browser.

:func:`predictions_page` shows records with CHARACTER offsets (``text[start:end]`` is the
entity's text), a colour per label, a legend that is also a label filter. :func:`evaluation_page`
(``make eval``'s ``errors.html``) shows per sentence the gold line above the predicted line, each
false positive (FP), false negative (FN) and wrong type (WT) marked by a CSS class and a text
marker, filterable by domain and label, with an "only sentences with errors" toggle. Every row is
rendered and JS only hides rows, so the file is the whole run and reads without JS.

Spans never overlap in our output, but a page must not hide what it was given: of overlapping
spans the earlier (then the longer) one is drawn in the text and the others are listed under it;
a span whose offsets do not fit its text is listed too. Everything is escaped with
:func:`html.escape`; a small template was enough (spaCy's displaCy would add a heavy dependency
and no error marking). Text lines carry ``dir="auto"`` so right-to-left text reads right.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from core.records import Sentence
from core.text import find_occurrences
from eval.confusion import pair_keys
from eval.score import MODES, Key, Matched, Prediction, matched

# status -> (text marker, what it means): the CSS class is the status itself
STATUS = {"fp": ("FP", "false positive: predicted, no gold at these boundaries"),
          "fn": ("FN", "false negative: gold, no prediction at these boundaries"),
          "wt": ("WT", "wrong type: right boundaries, another type")}


@dataclass(frozen=True, order=True)
class Mark:
    """A span to highlight: character offsets, label, and an error status ("" when right)."""

    start: int
    end: int
    label: str
    status: str = ""
    note: str = ""  # e.g. the other side's type of a wrong type
    text: str = ""  # the span's own text, when given: drawn only where the offsets hold it


@dataclass
class EvalItem:
    """One sentence of the evaluation page."""

    id: str
    domain: str
    text: str
    gold: list[Mark] = field(default_factory=list)
    pred: list[Mark] = field(default_factory=list)
    unplaced: list[Mark] = field(default_factory=list)  # predicted, nowhere in the text
    errors: int = 0  # wrong types + missed + spurious, as the confusion matrix counts them

    @property
    def flagged(self) -> bool:
        return bool(self.errors) or any(m.status for m in (*self.gold, *self.pred,
                                                           *self.unplaced))


CSS = """body{font:15px/1.5 system-ui,sans-serif;margin:1em 2em;color:#222}
.bar{position:sticky;top:0;background:#fff;padding:.4em 0;border-bottom:1px solid #ccc}
.bar label{margin-right:1em;white-space:nowrap}.lg mark{cursor:default}
.r{border-bottom:1px solid #eee;padding:.3em 0}.h{font-size:80%;color:#777}
.x{margin:.1em 0;white-space:pre-wrap}.k{display:inline-block;width:3em;font-size:80%;color:#777}
mark{border-radius:3px;padding:0 2px;color:inherit}mark sub{font-size:65%;margin-left:2px}
mark.n{background:#eee}mark.off{background:none!important;outline:1px dotted #aaa}
mark i{font-style:normal;font-weight:bold;font-size:65%;margin-left:2px;color:#b00}
mark.fp{outline:2px solid #d00}mark.fn{outline:2px dashed #e80}
mark.wt{outline:2px double #73c}ul.ov{margin:0;font-size:90%}"""

JS_PREDICTIONS = """function upd(){const on=new Set([...document.querySelectorAll(
'input.lab:checked')].map(i=>i.value)),only=document.getElementById('only').checked;let n=0;
for(const m of document.querySelectorAll('.r mark'))m.classList.toggle('off',!on.has(m.dataset.l));
for(const r of document.querySelectorAll('.r')){const s=!only||[...r.querySelectorAll('mark')]
.some(m=>on.has(m.dataset.l));r.hidden=!s;n+=s}document.getElementById('n').textContent=n}"""

JS_EVALUATION = """function upd(){const d=document.getElementById('fd').value,
l=document.getElementById('fl').value,e=document.getElementById('fe').checked;let n=0;
for(const r of document.querySelectorAll('.r')){const s=(!d||r.dataset.d===d)&&(!e||!!r.dataset.e)
&&(!l||[...r.querySelectorAll('mark')].some(m=>m.dataset.l===l));r.hidden=!s;n+=s}
document.getElementById('n').textContent=n}"""


def _colours(labels: Iterable[str]) -> tuple[dict[str, int], str]:
    """A class index per label and its CSS: hues a golden angle apart, distinct for any count."""
    index = {label: i for i, label in enumerate(sorted(set(labels)))}
    css = "".join(f".c{i}{{background:hsl({i * 137.508 % 360:.0f},75%,84%)}}"
                  for i in range(len(index)))
    return index, css


def _mark(text: str, m: Mark, colour: dict[str, int], extra: str = "") -> str:
    """One highlighted span: the text, its label in a ``sub``, the error marker in an ``i``."""
    classes = " ".join(c for c in (f"c{colour[m.label]}", m.status) if c)
    marker = ""
    if m.status:
        marker = f"<i>{STATUS[m.status][0]}{escape(m.note and ' ' + m.note)}</i>"
    return (f'<mark class="{classes}" data-l="{escape(m.label)}"{extra}>{escape(text)}'
            f"<sub>{escape(m.label)}</sub>{marker}</mark>")


def highlight(text: str, marks: Sequence[Mark], colour: dict[str, int]
              ) -> tuple[str, list[str]]:
    """``text`` with ``marks`` drawn in it, and the marks that could not be drawn (each with
    why and its offsets as ``data-s``/``data-e``): spans overlapping one drawn before, spans whose
    offsets do not hold their text."""
    parts: list[str] = []
    left: list[str] = []
    pos = 0
    for m in sorted(marks, key=lambda m: (m.start, -m.end, m.label)):
        inside = 0 <= m.start < m.end <= len(text)
        fits = inside and (not m.text or text[m.start:m.end] == m.text)
        if not fits or m.start < pos:
            why = "overlaps the span before it" if fits else "offsets do not hold its text"
            where = f' data-s="{m.start}" data-e="{m.end}"'
            left.append(f"{why} [{m.start}:{m.end}]: "
                        f"{_mark(m.text or text[m.start:m.end], m, colour, where)}")
            continue
        parts += [escape(text[pos:m.start]), _mark(text[m.start:m.end], m, colour)]
        pos = m.end
    parts.append(escape(text[pos:]))
    return "".join(parts), left


def _items(entries: Iterable[str]) -> str:
    entries = [f"<li>{e}</li>" for e in entries]
    return f'<ul class="ov">{"".join(entries)}</ul>' if entries else ""


def _page(title: str, css: str, script: str, bar: str, rows: list[str], intro: str = "") -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}{css}</style>"
            f"<script>{script}</script></head>\n"
            f'<body onload="upd()"><h1>{escape(title)}</h1>{intro}<div class="bar">{bar} '
            f'<span id="n">{len(rows)}</span> of {len(rows)} shown</div>\n'
            + "\n".join(rows) + "\n</body></html>\n")


def _record_marks(record: Mapping[str, Any]) -> list[Mark]:
    """A record's entities as marks (with their own text: one whose offsets do not hold it is
    listed, not drawn wrong)."""
    return [Mark(int(e["start"]), int(e["end"]), str(e["type"]), text=str(e.get("text", "")))
            for e in record.get("entities") or []]


def predictions_page(records: Iterable[Mapping[str, Any]], title: str = "predictions") -> str:
    """Records ``{"id", "text", "entities": [{"start", "end", "type", "text"}]}`` (character
    offsets) highlighted, a colour per label, the legend's checkboxes as a label filter."""
    records = list(records)
    marks = [_record_marks(r) for r in records]
    colour, css = _colours(m.label for ms in marks for m in ms)
    legend = " ".join(
        f'<label><input type="checkbox" class="lab" value="{escape(label)}" checked '
        f'onchange="upd()"> <mark class="c{i}">{escape(label)}</mark></label>'
        for label, i in colour.items())
    bar = (f'<span class="lg">{legend}</span> <label><input type="checkbox" id="only" '
           f'onchange="upd()"> only texts with a checked label</label>')
    rows = []
    for record, ms in zip(records, marks, strict=True):
        body, left = highlight(str(record.get("text", "")), ms, colour)
        rows.append(f'<div class="r"><div class="h">{escape(str(record.get("id", "")))}</div>'
                    f'<p class="x" dir="auto">{body}</p>{_items(left)}</div>')
    return _page(title, css, JS_PREDICTIONS, bar, rows)


def _offsets(tokens: Sequence[str]) -> list[int]:
    """Character start of every token in the tokens joined by single spaces (Sentence.text)."""
    starts, pos = [], 0
    for token in tokens:
        starts.append(pos)
        pos += len(token) + 1
    return starts


def _only(keys: tuple[set[Key], set[Key]], side: int) -> Key:
    (key,) = keys[side]
    return key


def evaluation_items(sentences: Iterable[Sentence], predictions: Mapping[str, Sequence[Prediction]],
                     mode: str = "string", misc: bool = True) -> list[EvalItem]:
    """Each sentence's gold and predicted spans marked as the scorer's ``mode`` counts them: the
    pairing of :mod:`eval.confusion` (right boundaries = the mode's key but for the type). A
    predicted mention is drawn at every token-aligned occurrence; one that is nowhere in the
    sentence is listed under it. Each drawn span's key is asked of the mode itself."""
    keys_of = MODES[mode].keys
    items = []
    for s in sentences:
        predicted = predictions.get(s.id, ())
        m = matched(s, predicted, misc)
        gold_status: dict[Key, tuple[str, str]] = {}
        pred_status: dict[Key, tuple[str, str]] = {}
        cells = pair_keys(*keys_of(m))
        for c in cells:
            right = c.gold == c.pred
            if c.gold is not None:
                gold_status[(*c.boundary, c.gold)] = (
                    "" if right else "fn" if c.pred is None else "wt",
                    "" if right or c.pred is None else f"predicted {c.pred}")
            if c.pred is not None:
                pred_status[(*c.boundary, c.pred)] = (
                    "" if right else "fp" if c.gold is None else "wt",
                    "" if right or c.gold is None else f"gold {c.gold}")
        starts = _offsets(s.tokens)
        item = EvalItem(s.id, s.domain, s.text, errors=sum(c.gold != c.pred for c in cells))
        for span in m.gold:
            key = _only(keys_of(Matched(s, [span], set(), set(), [])), 0)
            end = starts[span.end - 1] + len(s.tokens[span.end - 1])
            item.gold.append(Mark(starts[span.start], end, span.type, *gold_status[key]))
        for text, etype in sorted(m.pairs):
            n = len(text.split())
            occurrences = find_occurrences(s.tokens, text.split())
            for start in occurrences:
                one = Matched(s, [], {(text, etype)}, {(start, start + n, etype)}, [])
                status = pred_status[_only(keys_of(one), 1)]
                end = starts[start + n - 1] + len(s.tokens[start + n - 1])
                item.pred.append(Mark(starts[start], end, etype, *status))
            if not occurrences:
                one = Matched(s, [], {(text, etype)}, set(), [(text, etype)])
                status = pred_status[_only(keys_of(one), 1)]
                item.unplaced.append(Mark(-1, -1, etype, *status, text=text))
        items.append(item)
    return items


def _eval_row(item: EvalItem, colour: dict[str, int]) -> str:
    gold, gold_left = highlight(item.text, item.gold, colour)
    pred, pred_left = highlight(item.text, item.pred, colour)
    left = [f"gold: {entry}" for entry in gold_left]
    left += [f"predicted: {entry}" for entry in pred_left]
    left += [f"predicted, not in the sentence: {_mark(m.text, m, colour)}"
             for m in item.unplaced]
    errors = f" · {item.errors} error{'s' if item.errors > 1 else ''}" if item.errors else ""
    return (f'<div class="r" data-d="{escape(item.domain)}"{" data-e=1" if item.flagged else ""}>'
            f'<div class="h">{escape(item.domain)} · {escape(item.id)}{errors}</div>'
            f'<p class="x g" dir="auto"><span class="k">gold</span>{gold}</p>'
            f'<p class="x p" dir="auto"><span class="k">pred</span>{pred}</p>{_items(left)}</div>')


def evaluation_page(items: Sequence[EvalItem], title: str = "errors", intro: str = "") -> str:
    """Gold above prediction per sentence, errors marked, filters by domain, label and errors.
    ``intro``: HTML put under the title as is (the caller escapes it)."""
    labels = {m.label for it in items for m in (*it.gold, *it.pred, *it.unplaced)}
    colour, css = _colours(labels)
    domains = list(dict.fromkeys(it.domain for it in items))

    def select(ident: str, everything: str, values: Iterable[str]) -> str:
        options = "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)
        return (f'<select id="{ident}" onchange="upd()"><option value="">{everything}</option>'
                f"{options}</select>")

    legend = " ".join(f'<mark class="n {status}" title="{escape(meaning)}">{short}</mark> '
                      f"{escape(meaning)};" for status, (short, meaning) in STATUS.items())
    bar = (f"<label>domain {select('fd', 'all domains', domains)}</label>"
           f"<label>label {select('fl', 'all labels', sorted(labels))}</label>"
           '<label><input type="checkbox" id="fe" onchange="upd()"> only sentences with '
           f'errors</label> <span class="lg">{legend if labels else ""}</span>')
    intro += (f"<p>{sum(1 for it in items if it.flagged)} of {len(items)} sentences have an "
              "error. Gold above, prediction below.</p>")
    return _page(title, css, JS_EVALUATION, bar, [_eval_row(it, colour) for it in items], intro)

