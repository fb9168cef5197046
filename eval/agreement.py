"""How far K annotators of the same unlabelled sentences agree, and where they do not.

The refinement loop (disagreement-guided rewriting of label definitions) reads this module: the
agreement numbers say whether a round of rewritten definitions helped, the disagreements are what
the supervisor is shown. Everything here is pure; the runner does the I/O.

``Annotations`` maps annotator -> sentence id -> ``(mention, tag)`` pairs. A sentence id absent
for an annotator means that annotator found nothing there. Mentions are compared the way the
scorer's ``string`` mode compares them - per sentence, as a SET of (mention, tag) pairs - after
stripping and collapsing inner whitespace, case-sensitively; a mention that is blank after that
is no mention and is dropped.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from statistics import mean
from typing import Any

from core.io import ProjectError, atomic_writer
from core.records import Sentence

Annotations = Mapping[str, Mapping[str, Sequence[tuple[str, str]]]]
Pair = tuple[str, str]
KINDS = ("type", "presence")  # the kinds of disagreement, in the order counts list them


class AgreementError(ProjectError):
    """Agreement cannot be measured as asked (fewer than two annotators, a bad sample size)."""


def normalise(mention: str) -> str:
    """The mention as compared: stripped, inner whitespace runs collapsed to one space."""
    return " ".join(mention.split())


def _pairs(annotator: Mapping[str, Sequence[tuple[str, str]]], sentence_id: str
           ) -> set[tuple[str, str]]:
    found = {(normalise(mention), tag) for mention, tag in annotator.get(sentence_id, ())}
    return {(mention, tag) for mention, tag in found if mention}


def _unique(sentence_ids: Iterable[str]) -> list[str]:
    """Ids once each (a repeated id would count its sentence twice), first order kept."""
    return list(dict.fromkeys(sentence_ids))


def _f1(overlap: int, total: int) -> float:
    """2|A∩B| / (|A|+|B|); two annotators that both found nothing agree: 1.0."""
    return 2 * overlap / total if total else 1.0


def pair_f1(a: Mapping[str, Sequence[tuple[str, str]]], b: Mapping[str, Sequence[tuple[str, str]]],
            sentence_ids: Iterable[str]) -> float:
    """Entity-level micro F1 between two annotators (symmetric: either may be the gold)."""
    overlap = total = 0
    for sid in _unique(sentence_ids):
        left, right = _pairs(a, sid), _pairs(b, sid)
        overlap += len(left & right)
        total += len(left) + len(right)
    return _f1(overlap, total)


def pair_label_f1(a: Mapping[str, Sequence[tuple[str, str]]],
                  b: Mapping[str, Sequence[tuple[str, str]]],
                  sentence_ids: Iterable[str]) -> dict[str, float]:
    """:func:`pair_f1` per label, for the labels either annotator gave (sorted by tag)."""
    overlap: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for sid in _unique(sentence_ids):
        left, right = _pairs(a, sid), _pairs(b, sid)
        for _, tag in left & right:
            overlap[tag] += 1
        for _, tag in [*left, *right]:
            total[tag] += 1
    return {tag: _f1(overlap[tag], total[tag]) for tag in sorted(total)}


def _tags_by_mention(annotator: Mapping[str, Sequence[tuple[str, str]]], sentence_id: str
                     ) -> dict[str, set[str]]:
    tags: dict[str, set[str]] = defaultdict(set)
    for mention, tag in _pairs(annotator, sentence_id):
        tags[mention].add(tag)
    return tags


def kappa_labels(a: Mapping[str, Sequence[tuple[str, str]]],
                 b: Mapping[str, Sequence[tuple[str, str]]],
                 sentence_ids: Iterable[str]) -> tuple[list[str], list[str], int]:
    """The two label lists kappa compares - one item per mention both annotators found (same
    sentence, same text) with exactly one label from each - and how many shared mentions were
    left out as ``ambiguous`` (an annotator gave them several labels: no single item to compare).
    Items come in sentence order, then mention text order."""
    left_labels: list[str] = []
    right_labels: list[str] = []
    ambiguous = 0
    for sid in _unique(sentence_ids):
        left, right = _tags_by_mention(a, sid), _tags_by_mention(b, sid)
        for mention in sorted(left.keys() & right.keys()):
            if len(left[mention]) == 1 and len(right[mention]) == 1:
                left_labels += left[mention]
                right_labels += right[mention]
            else:
                ambiguous += 1
    return left_labels, right_labels, ambiguous


def kappa_of(left: Sequence[str], right: Sequence[str]) -> float | None:
    """Cohen's kappa of two label lists; ``None`` when there is nothing to compare or kappa is
    undefined. Both lists identical with a single class is perfect agreement (sklearn calls it
    undefined, since chance agreement is 1 too): 1.0."""
    if not left:
        return None
    if len(set(left) | set(right)) == 1:
        return 1.0
    from sklearn.metrics import cohen_kappa_score  # dev/eval dependency: only loaded here

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(cohen_kappa_score(list(left), list(right)))
    return None if math.isnan(value) else value


def pair_kappa(a: Mapping[str, Sequence[tuple[str, str]]],
               b: Mapping[str, Sequence[tuple[str, str]]],
               sentence_ids: Iterable[str]) -> float | None:
    """Cohen's kappa on the labels of the mentions both annotators found (see
    :func:`kappa_labels`); ``None`` when they share no single-labelled mention."""
    left, right, _ = kappa_labels(a, b, sentence_ids)
    return kappa_of(left, right)


def _key(pair: Pair) -> str:
    return "|".join(pair)


@dataclass
class AgreementMatrix:
    """Pairwise agreement of the annotators; pairs ``(a, b)`` follow the annotators' order."""

    annotators: list[str]
    f1: dict[Pair, float]
    label_f1: dict[Pair, dict[str, float]]
    kappa: dict[Pair, float | None]
    shared: dict[Pair, int]  # single-labelled shared mentions kappa compared
    ambiguous: dict[Pair, int]  # shared mentions left out of kappa (several labels)
    sentences: int = 0
    pairs: list[Pair] = field(init=False)

    def __post_init__(self) -> None:
        self.pairs = list(combinations(self.annotators, 2))

    @property
    def mean_f1(self) -> float:
        return mean(self.f1[pair] for pair in self.pairs)

    @property
    def mean_kappa(self) -> float | None:
        values = [v for pair in self.pairs if (v := self.kappa[pair]) is not None]
        return mean(values) if values else None

    def to_json(self) -> dict[str, Any]:
        """For the round log: pairs as ``"a|b"`` keys."""
        return {
            "annotators": list(self.annotators),
            "sentences": self.sentences,
            "mean_f1": self.mean_f1,
            "mean_kappa": self.mean_kappa,
            "f1": {_key(p): self.f1[p] for p in self.pairs},
            "label_f1": {_key(p): dict(self.label_f1[p]) for p in self.pairs},
            "kappa": {_key(p): self.kappa[p] for p in self.pairs},
            "shared": {_key(p): self.shared[p] for p in self.pairs},
            "ambiguous": {_key(p): self.ambiguous[p] for p in self.pairs},
        }


def agreement(annotations: Annotations, sentence_ids: Iterable[str]) -> AgreementMatrix:
    """Every pairwise measure over ``sentence_ids``; annotators keep the mapping's order."""
    names = list(annotations)
    if len(names) < 2:
        raise AgreementError(f"agreement needs at least two annotators, got {names}: "
                             "refinement compares annotators")
    ids = _unique(sentence_ids)
    f1: dict[Pair, float] = {}
    label_f1: dict[Pair, dict[str, float]] = {}
    kappa: dict[Pair, float | None] = {}
    shared: dict[Pair, int] = {}
    ambiguous: dict[Pair, int] = {}
    for pair in combinations(names, 2):
        a, b = annotations[pair[0]], annotations[pair[1]]
        f1[pair] = pair_f1(a, b, ids)
        label_f1[pair] = pair_label_f1(a, b, ids)
        left, right, ambiguous[pair] = kappa_labels(a, b, ids)
        shared[pair] = len(left)
        kappa[pair] = kappa_of(left, right)
    return AgreementMatrix(names, f1, label_f1, kappa, shared, ambiguous, len(ids))


@dataclass(frozen=True)
class Disagreement:
    """One mention of one sentence on which the annotators differ.

    ``kind`` is ``"type"`` when at least two annotators found the mention and gave it different
    labels between them, else ``"presence"`` (some found it, some did not). ``labels`` holds the
    annotators that found it (annotator order) with their sorted tags; ``missing`` those that did
    not; ``tags`` every tag involved, sorted.
    """

    sentence_id: str
    text: str
    mention: str
    kind: str
    labels: dict[str, tuple[str, ...]]
    missing: tuple[str, ...]
    tags: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"sentence_id": self.sentence_id, "text": self.text, "mention": self.mention,
                "kind": self.kind, "labels": {k: list(v) for k, v in self.labels.items()},
                "missing": list(self.missing), "tags": list(self.tags)}


def _position(text: str, mention: str) -> tuple[int, str]:
    """Sort key: where the mention first occurs in the text (nowhere: after the end)."""
    at = text.find(mention)
    return (len(text) if at < 0 else at, mention)


def disagreements(annotations: Annotations, sentences: Sequence[Sentence]) -> list[Disagreement]:
    """Every disagreement, in sentence order, then by the mention's first offset in the text."""
    names = list(annotations)
    items: list[Disagreement] = []
    for sentence in sentences:
        given = {name: _tags_by_mention(annotations[name], sentence.id) for name in names}
        text = sentence.text
        mentions = {mention for tags in given.values() for mention in tags}
        for mention in sorted(mentions, key=lambda m: _position(text, m)):
            labels = {name: tuple(sorted(given[name][mention]))
                      for name in names if mention in given[name]}
            missing = tuple(name for name in names if name not in labels)
            tags = tuple(sorted({tag for found in labels.values() for tag in found}))
            if len(labels) >= 2 and len(tags) > 1:
                kind = "type"
            elif missing:
                kind = "presence"
            else:
                continue
            items.append(Disagreement(sentence.id, text, mention, kind, labels, missing, tags))
    return items


def disagreement_counts(items: Iterable[Disagreement]) -> dict[str, dict[str, int]]:
    """tag -> kind -> count (tags sorted, both kinds always listed); an item counts once for
    every tag it involves."""
    counts: dict[str, dict[str, int]] = {}
    for item in items:
        for tag in item.tags:
            counts.setdefault(tag, dict.fromkeys(KINDS, 0))[item.kind] += 1
    return {tag: counts[tag] for tag in sorted(counts)}


def sample_disagreements(items: Sequence[Disagreement], limit: int) -> list[Disagreement]:
    """At most ``limit`` items that show every involved label: round-robin over the tags
    (sorted), each tag taking its next item (list order) not yet taken. Deterministic, so a
    round's prompt can be rebuilt from its log."""
    if limit <= 0:
        raise AgreementError(f"a disagreement sample needs a positive limit, got {limit}")
    queues: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        for tag in item.tags:
            queues[tag].append(index)
    cursor = dict.fromkeys(queues, 0)
    taken: list[int] = []
    chosen: set[int] = set()
    while len(taken) < limit:
        progressed = False
        for tag in sorted(queues):
            if len(taken) == limit:
                break
            queue = queues[tag]
            while cursor[tag] < len(queue) and queue[cursor[tag]] in chosen:
                cursor[tag] += 1
            if cursor[tag] < len(queue):
                taken.append(queue[cursor[tag]])
                chosen.add(queue[cursor[tag]])
                progressed = True
        if not progressed:
            break
    return [items[index] for index in taken]


def agreement_plot(rounds: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """A PNG of mean pairwise F1 (and mean kappa, where it has a value) per round.

    Each round is a mapping with ``mean_f1`` and optionally ``mean_kappa`` (as
    :meth:`AgreementMatrix.to_json` writes them) and ``round`` (default: its position, from 0,
    round 0 being the starting definitions). Written atomically.
    """
    if not rounds:
        raise AgreementError("no rounds to plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [int(r.get("round", i)) for i, r in enumerate(rounds)]
    f1 = [float(r["mean_f1"]) for r in rounds]
    kappa = [(x, float(r["mean_kappa"])) for x, r in zip(xs, rounds, strict=True)
             if r.get("mean_kappa") is not None]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(xs) + 2.0), 3.2))
    ax.plot(xs, f1, marker="o", label="mean pairwise F1")
    if kappa:
        ax.plot([x for x, _ in kappa], [k for _, k in kappa], marker="s",
                label="mean Cohen's kappa (shared mentions)")
    ax.set_xticks(xs)
    ax.set_xlabel("round")
    ax.set_ylim(min(0.0, *(k for _, k in kappa)) if kappa else 0.0, 1.0)
    ax.set_ylabel("agreement")
    ax.set_title("annotator agreement per refinement round", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    with atomic_writer(path, "wb") as handle:
        handle.write(buffer.getvalue())
