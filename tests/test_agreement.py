"""Annotator agreement and disagreements on a hand-made case whose every number was worked out by
hand (the arithmetic is in the comments).

s1 "Bob Dylan met Joan Baez in Paris ."
   A: Bob Dylan/musicalartist, Joan Baez/musicalartist, Paris/location
   B: Bob Dylan/person, Joan Baez/musicalartist, Paris/location, "  Paris " (the same pair again)
   C: Bob Dylan/musicalartist, "Joan  Baez"/musicalartist (collapses to Joan Baez)
s2 "The Beatles recorded Abbey Road ."
   A: The Beatles/band, Abbey Road/album
   B: The Beatles/band
   C: The Beatles/band, Abbey Road/album, Abbey Road/song (two labels for one mention)
s3 "Nothing here ."
   A: (no record)  B: (no record)  C: Nothing/misc

Sets per annotator: A 3+2+0 = 5 pairs, B 3+1+0 = 4, C 2+3+1 = 6.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from core.records import Sentence
from eval.agreement import (
    AgreementError,
    Disagreement,
    agreement,
    agreement_plot,
    disagreement_counts,
    disagreements,
    kappa_labels,
    pair_f1,
    pair_kappa,
    pair_label_f1,
    sample_disagreements,
)

A = {"s1": [("Bob Dylan", "musicalartist"), ("Joan Baez", "musicalartist"),
            ("Paris", "location")],
     "s2": [("The Beatles", "band"), ("Abbey Road", "album")]}
B = {"s1": [("Bob Dylan", "person"), ("Joan Baez", "musicalartist"), ("Paris", "location"),
            ("  Paris ", "location")],
     "s2": [("The Beatles", "band")]}
C = {"s1": [("Bob Dylan", "musicalartist"), ("Joan  Baez", "musicalartist")],
     "s2": [("The Beatles", "band"), ("Abbey Road", "album"), ("Abbey Road", "song")],
     "s3": [("Nothing", "misc")]}
ANNOTATIONS = {"A": A, "B": B, "C": C}
IDS = ["s1", "s2", "s3"]


def sentence(sid: str, text: str) -> Sentence:
    return Sentence(sid, "music", text.split())


SENTENCES = [sentence("s1", "Bob Dylan met Joan Baez in Paris ."),
             sentence("s2", "The Beatles recorded Abbey Road ."),
             sentence("s3", "Nothing here .")]


def test_pair_f1_by_hand() -> None:
    # A∩B: s1 {Joan Baez/ma, Paris/loc} + s2 {The Beatles/band} = 3 -> 2*3/(5+4) = 6/9
    assert pair_f1(A, B, IDS) == pytest.approx(2 / 3)
    # A∩C: s1 {Bob Dylan/ma, Joan Baez/ma} + s2 {The Beatles/band, Abbey Road/album} = 4 -> 8/11
    assert pair_f1(A, C, IDS) == pytest.approx(8 / 11)
    # B∩C: s1 {Joan Baez/ma} + s2 {The Beatles/band} = 2 -> 4/(4+6)
    assert pair_f1(B, C, IDS) == pytest.approx(0.4)
    assert pair_f1(C, B, IDS) == pair_f1(B, C, IDS)


def test_pair_f1_only_counts_the_given_sentences() -> None:
    # s1 alone: A∩C = 2 of 3 + 2 -> 4/5; s3 (C's misc) left out
    assert pair_f1(A, C, ["s1"]) == pytest.approx(0.8)
    # a repeated id counts once: still 8/11
    assert pair_f1(A, C, ["s1", "s2", "s3", "s1"]) == pytest.approx(8 / 11)


def test_both_empty_is_agreement() -> None:
    assert pair_f1({}, {"s9": [("  ", "person")]}, ["s1", "s9"]) == 1.0  # blank: no mention
    assert pair_f1({}, {"s1": [("x", "person")]}, ["s1"]) == 0.0
    assert pair_label_f1({}, {}, ["s1"]) == {}
    assert pair_kappa({}, {}, ["s1"]) is None


def test_pair_label_f1_by_hand() -> None:
    # musicalartist: A 2 (Bob Dylan, Joan Baez), B 1, overlap 1 -> 2/3; location 1/1/1 -> 1;
    # band 1/1/1 -> 1; album A only -> 0; person B only -> 0
    assert pair_label_f1(A, B, IDS) == pytest.approx(
        {"album": 0.0, "band": 1.0, "location": 1.0, "musicalartist": 2 / 3, "person": 0.0})
    # song and misc are C's only; album 1/1/1; location A only
    assert pair_label_f1(A, C, IDS) == pytest.approx(
        {"album": 1.0, "band": 1.0, "location": 0.0, "misc": 0.0, "musicalartist": 1.0,
         "song": 0.0})
    assert list(pair_label_f1(B, C, IDS)) == [
        "album", "band", "location", "misc", "musicalartist", "person", "song"]


def test_kappa_by_hand() -> None:
    # A,B shared single-labelled mentions: Bob Dylan (ma | person), Joan Baez (ma | ma),
    # Paris (loc | loc), The Beatles (band | band). po = 3/4.
    # A marginals ma 2/4, loc 1/4, band 1/4; B person 1/4, ma 1/4, loc 1/4, band 1/4
    # pe = 2/4*1/4 + 1/4*1/4 + 1/4*1/4 = 4/16 = 1/4; kappa = (3/4 - 1/4) / (1 - 1/4) = 2/3
    assert kappa_labels(A, B, IDS) == (["musicalartist", "musicalartist", "location", "band"],
                                       ["person", "musicalartist", "location", "band"], 0)
    assert pair_kappa(A, B, IDS) == pytest.approx(2 / 3)
    # B,C: Bob Dylan (person | ma), Joan Baez (ma | ma), The Beatles (band | band): po = 2/3
    # B person 1/3, ma 1/3, band 1/3; C ma 2/3, band 1/3: pe = 1/3*2/3 + 1/3*1/3 = 1/3
    # kappa = (2/3 - 1/3) / (1 - 1/3) = 1/2
    assert pair_kappa(B, C, IDS) == pytest.approx(0.5)
    # A,C: Abbey Road has two labels from C: left out as ambiguous; the other three agree
    assert kappa_labels(A, C, IDS) == (["musicalartist", "musicalartist", "band"],
                                       ["musicalartist", "musicalartist", "band"], 1)
    assert pair_kappa(A, C, IDS) == pytest.approx(1.0)


def test_kappa_single_class() -> None:
    one = {"s1": [("Ada", "person"), ("Bob", "person")]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no sklearn warning: the case is decided before it
        assert pair_kappa(one, dict(one), ["s1"]) == 1.0
    # each annotator a single class, but different ones: po = 0, pe = 0 -> 0, not "identical"
    other = {"s1": [("Ada", "location"), ("Bob", "location")]}
    assert pair_kappa(one, other, ["s1"]) == 0.0


def test_kappa_without_shared_mention() -> None:
    assert pair_kappa({"s1": [("Ada", "person")]}, {"s1": [("Bob", "person")]}, ["s1"]) is None
    # shared, but only ambiguously labelled: nothing to compare
    two = {"s1": [("Ada", "person"), ("Ada", "location")]}
    assert kappa_labels(two, {"s1": [("Ada", "person")]}, ["s1"]) == ([], [], 1)
    assert pair_kappa(two, {"s1": [("Ada", "person")]}, ["s1"]) is None


def test_agreement_matrix() -> None:
    matrix = agreement(ANNOTATIONS, IDS)
    assert matrix.annotators == ["A", "B", "C"]
    assert matrix.pairs == [("A", "B"), ("A", "C"), ("B", "C")]
    # (2/3 + 8/11 + 2/5) / 3 = (110 + 120 + 66) / 165 / 3 = 296/495
    assert matrix.mean_f1 == pytest.approx(296 / 495)
    # (2/3 + 1 + 1/2) / 3 = 13/18
    assert matrix.mean_kappa == pytest.approx(13 / 18)
    assert matrix.shared == {("A", "B"): 4, ("A", "C"): 3, ("B", "C"): 3}
    assert matrix.ambiguous == {("A", "B"): 0, ("A", "C"): 1, ("B", "C"): 0}
    assert matrix.label_f1[("A", "B")]["musicalartist"] == pytest.approx(2 / 3)
    data = matrix.to_json()
    assert list(data) == ["annotators", "sentences", "mean_f1", "mean_kappa", "f1", "label_f1",
                          "kappa", "shared", "ambiguous"]
    assert data["sentences"] == 3
    assert data["f1"] == pytest.approx({"A|B": 2 / 3, "A|C": 8 / 11, "B|C": 0.4})
    assert data["kappa"] == pytest.approx({"A|B": 2 / 3, "A|C": 1.0, "B|C": 0.5})
    assert data["ambiguous"] == {"A|B": 0, "A|C": 1, "B|C": 0}


def test_agreement_keeps_the_given_order() -> None:
    matrix = agreement({"C": C, "A": A}, IDS)
    assert matrix.pairs == [("C", "A")]
    assert list(matrix.to_json()["f1"]) == ["C|A"]


def test_agreement_mean_kappa_none() -> None:
    matrix = agreement({"x": {"s1": [("Ada", "person")]}, "y": {}}, ["s1"])
    assert matrix.mean_f1 == 0.0
    assert matrix.kappa == {("x", "y"): None}
    assert matrix.mean_kappa is None


def test_agreement_needs_two_annotators() -> None:
    with pytest.raises(AgreementError, match="at least two annotators"):
        agreement({"A": A}, IDS)


def test_disagreements_exact() -> None:
    assert disagreements(ANNOTATIONS, SENTENCES) == [
        Disagreement("s1", "Bob Dylan met Joan Baez in Paris .", "Bob Dylan", "type",
                     {"A": ("musicalartist",), "B": ("person",), "C": ("musicalartist",)},
                     (), ("musicalartist", "person")),
        # Joan Baez: everyone says musicalartist (C after collapsing): no disagreement
        Disagreement("s1", "Bob Dylan met Joan Baez in Paris .", "Paris", "presence",
                     {"A": ("location",), "B": ("location",)}, ("C",), ("location",)),
        Disagreement("s2", "The Beatles recorded Abbey Road .", "Abbey Road", "type",
                     {"A": ("album",), "C": ("album", "song")}, ("B",), ("album", "song")),
        Disagreement("s3", "Nothing here .", "Nothing", "presence", {"C": ("misc",)},
                     ("A", "B"), ("misc",)),
    ]


def test_disagreement_order_and_single_finder() -> None:
    """Mentions by first offset in the text, a tie by text, one found nowhere last; one finder
    with two labels is a presence disagreement (a type one needs two finders)."""
    found = {"x": {"t": [("Bob", "person"), ("Amy", "person"), ("Amy", "location"),
                         ("Zed met", "misc"), ("Zed", "person")]},
             "y": {}}
    items = disagreements(found, [sentence("t", "Zed met Amy .")])
    assert [(d.mention, d.kind) for d in items] == [
        ("Zed", "presence"), ("Zed met", "presence"), ("Amy", "presence"), ("Bob", "presence")]
    assert items[2].labels == {"x": ("location", "person")}
    assert items[2].missing == ("y",)
    assert items[2].tags == ("location", "person")


def test_disagreement_json() -> None:
    item = disagreements(ANNOTATIONS, SENTENCES)[2]
    assert item.to_json() == {
        "sentence_id": "s2", "text": "The Beatles recorded Abbey Road .", "mention": "Abbey Road",
        "kind": "type", "labels": {"A": ["album"], "C": ["album", "song"]}, "missing": ["B"],
        "tags": ["album", "song"]}


def item(sid: str, kind: str, *tags: str) -> Disagreement:
    return Disagreement(sid, "text", sid, kind, {"x": tags}, ("y",), tags)


def test_disagreement_counts() -> None:
    items = [item("1", "type", "person", "musicalartist"), item("2", "presence", "person"),
             item("3", "presence", "person"), item("4", "type", "band", "person")]
    assert disagreement_counts(items) == {
        "band": {"type": 1, "presence": 0},
        "musicalartist": {"type": 1, "presence": 0},
        "person": {"type": 2, "presence": 2},
    }
    assert list(disagreement_counts(disagreements(ANNOTATIONS, SENTENCES))) == [
        "album", "location", "misc", "musicalartist", "person", "song"]


SAMPLE = [item("0", "presence", "c"), item("1", "type", "a", "b"), item("2", "presence", "b"),
          item("3", "presence", "a"), item("4", "presence", "c"), item("5", "presence", "a")]


def test_sample_round_robin() -> None:
    # queues a: [1, 3, 5], b: [1, 2], c: [0, 4]
    # round 1: a -> 1, b -> 2 (1 taken), c -> 0; round 2: a -> 3, b empty, c -> 4; round 3: a -> 5
    order = [d.sentence_id for d in sample_disagreements(SAMPLE, 10)]
    assert order == ["1", "2", "0", "3", "4", "5"]
    assert [d.sentence_id for d in sample_disagreements(SAMPLE, 4)] == ["1", "2", "0", "3"]
    assert [d.sentence_id for d in sample_disagreements(SAMPLE, 2)] == ["1", "2"]
    assert sample_disagreements([], 3) == []


@pytest.mark.parametrize("limit", [0, -1])
def test_sample_limit_must_be_positive(limit: int) -> None:
    with pytest.raises(AgreementError, match="positive limit"):
        sample_disagreements(SAMPLE, limit)


def test_agreement_plot(tmp_path: Path) -> None:
    path = tmp_path / "plots" / "agreement.png"
    agreement_plot([{"round": 0, "mean_f1": 0.5, "mean_kappa": None},
                    {"round": 1, "mean_f1": 0.7, "mean_kappa": 0.4}], path)
    assert path.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in path.parent.iterdir()] == ["agreement.png"]  # no temporary left
    with pytest.raises(AgreementError, match="no rounds"):
        agreement_plot([], tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()
