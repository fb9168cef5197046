"""Gold label against predicted label, over the mentions found with the right boundaries.

F1 says how much was lost; the confusion matrix says where to: "musicalartist typed as person"
is one off-diagonal cell. Rows are the gold labels plus ``spurious`` (a predicted mention with no
gold mention at the same boundaries), columns the predicted labels plus ``missed`` (a gold mention
with no prediction at the same boundaries). The cell (``spurious``, ``missed``) is always 0.

**The right boundaries** follow the scorer's mode, whose keys the matrix is built from (asked of
the registered mode itself, :data:`eval.score.MODES`, so no matching is re-implemented here): a
key is (boundaries..., type), and the boundaries are the key without its type.

``string`` (the report's: the main setting, string mode with misc kept)
    boundaries = the same stripped mention string in the same sentence; repeats collapse, as
    the authors' scorer counts them.
``span``
    boundaries = the same token (start, end): a predicted mention is placed at every
    token-aligned occurrence (:func:`eval.score.find_occurrences`); a mention found nowhere has
    no boundaries and is spurious.

At one boundary, gold and predicted types that agree are paired first (the diagonal); the rest
are paired in sorted order (wrong types), and whatever is left is missed (gold) or spurious
(predicted). So the diagonal is the mode's TP, a gold label's row sums to its gold count
(TP + FN) and a predicted label's column to its prediction count (TP + FP): a wrong type is one
FP and one FN to the scorer, and one off-diagonal cell here. A mention predicted with boundaries
that differ from gold's is one missed and one spurious.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.records import Sentence
from eval.score import MODES, Key, Prediction, matched

MISSED = "missed"
SPURIOUS = "spurious"
RULE = ("right boundaries = the same key but for the type under the scoring mode: string mode, "
        "the same stripped mention string in the sentence; span mode, the same token (start, "
        "end). Agreeing types are paired first, the rest in sorted order; the remainder is "
        "missed (gold) or spurious (predicted).")


@dataclass(frozen=True, slots=True)
class Cell:
    """One pairing at one boundary: a gold type, a predicted type, or both."""

    boundary: tuple[Any, ...]  # the mode's key without its type
    gold: str | None
    pred: str | None


@dataclass(frozen=True)
class Confusion:
    """``matrix[i][j]``: rows :attr:`rows` (gold), columns :attr:`columns` (predicted)."""

    labels: list[str]  # the types, the same order on both axes (the diagonal is right)
    matrix: list[list[int]]

    @property
    def rows(self) -> list[str]:
        return [*self.labels, SPURIOUS]

    @property
    def columns(self) -> list[str]:
        return [*self.labels, MISSED]

    def cell(self, gold: str, pred: str) -> int:
        return self.matrix[self.rows.index(gold)][self.columns.index(pred)]

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "columns": self.columns, "matrix": self.matrix}


def pair_keys(gold: Iterable[Key], pred: Iterable[Key]) -> list[Cell]:
    """Pair gold and predicted keys that share their boundaries (the rule in the docstring)."""
    by_boundary: dict[tuple[Any, ...], tuple[set[str], set[str]]] = defaultdict(
        lambda: (set(), set()))
    for key in gold:
        by_boundary[key[:-1]][0].add(key[-1])
    for key in pred:
        by_boundary[key[:-1]][1].add(key[-1])
    cells: list[Cell] = []
    for boundary in sorted(by_boundary, key=repr):  # deterministic: keys may mix None and ints
        golds, preds = by_boundary[boundary]
        cells += [Cell(boundary, t, t) for t in sorted(golds & preds)]
        rest_gold, rest_pred = sorted(golds - preds), sorted(preds - golds)
        cells += [Cell(boundary, g, p) for g, p in zip(rest_gold, rest_pred, strict=False)]
        n = min(len(rest_gold), len(rest_pred))
        cells += [Cell(boundary, g, None) for g in rest_gold[n:]]
        cells += [Cell(boundary, None, p) for p in rest_pred[n:]]
    return cells


def sentence_cells(sentence: Sentence, predicted: Iterable[Prediction], mode: str = "string",
                   misc: bool = True) -> list[Cell]:
    """The pairings of one sentence under ``mode`` (a registered score mode)."""
    return pair_keys(*MODES[mode].keys(matched(sentence, predicted, misc)))


def confusion(sentences: Iterable[Sentence], predictions: Mapping[str, Sequence[Prediction]],
              mode: str = "string", misc: bool = True, order: Sequence[str] = ()) -> Confusion:
    """The matrix over ``sentences``; labels that occur, those in ``order`` (the domain's) first,
    then the others sorted. Counted by :func:`sklearn.metrics.confusion_matrix` on label indices
    (the last index standing for "none": spurious as a row, missed as a column)."""
    cells = [c for s in sentences for c in sentence_cells(s, predictions.get(s.id, ()), mode, misc)]
    seen = {t for c in cells for t in (c.gold, c.pred) if t is not None}
    labels = [t for t in dict.fromkeys(order) if t in seen] + sorted(seen - set(order))
    if not cells:
        return Confusion(labels, [[0] * (len(labels) + 1) for _ in range(len(labels) + 1)])
    from sklearn.metrics import confusion_matrix  # deferred: only the report needs it

    index = {t: i for i, t in enumerate(labels)}
    none = len(labels)
    y_true = [index[c.gold] if c.gold is not None else none for c in cells]
    y_pred = [index[c.pred] if c.pred is not None else none for c in cells]
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(none + 1)))
    return Confusion(labels, matrix.tolist())
