"""The confusion matrix on a hand-made case whose every cell was counted by hand.

s1 "Bob Dylan sang in New York City": gold Bob Dylan/musicalartist, New York City/location;
   predicted Bob Dylan/person (a wrong type), New York/location (other boundaries: one missed
   location + one spurious location)
s2 "Blowin' in the Wind is a song": gold Blowin' in the Wind/song; predicted Columbia/organisation
   (nowhere in the sentence): the song is missed, organisation spurious
s3 "Joan Baez and Bob Dylan toured Europe": gold Joan Baez, Bob Dylan/musicalartist,
   Europe/location; predicted all three right, and "Joan Baez " with a trailing space (stripped:
   the same mention, collapses)

Labels in the order given (musicalartist, song, person, location), organisation not in it: last.
"""

from __future__ import annotations

import pytest

from core.records import Sentence, Span
from eval.confusion import (
    MISSED,
    SPURIOUS,
    Confusion,
    confusion,
    pair_keys,
    sentence_cells,
)
from eval.score import MODES, DomainScore, matched, score_sentence


def sent(sid: str, text: str, spans: list[tuple[int, int, str]]) -> Sentence:
    tokens = text.split()
    return Sentence(sid, "music", tokens, [Span(s, e, t, " ".join(tokens[s:e]))
                                           for s, e, t in spans])


SENTENCES = [
    sent("s1", "Bob Dylan sang in New York City", [(0, 2, "musicalartist"), (4, 7, "location")]),
    sent("s2", "Blowin' in the Wind is a song", [(0, 4, "song")]),
    sent("s3", "Joan Baez and Bob Dylan toured Europe",
         [(0, 2, "musicalartist"), (3, 5, "musicalartist"), (6, 7, "location")]),
]
PREDICTIONS = {
    "s1": [("Bob Dylan", "person"), ("New York", "location")],
    "s2": [("Columbia", "organisation")],
    "s3": [("Joan Baez", "musicalartist"), ("Joan Baez ", "musicalartist"),
           ("Bob Dylan", "musicalartist"), ("Europe", "location")],
}
ORDER = ["musicalartist", "song", "person", "location"]
LABELS = ["musicalartist", "song", "person", "location", "organisation"]
#            ma song person loc org missed
EXPECTED = [[2, 0, 1, 0, 0, 0],  # musicalartist: 2 right, Bob Dylan typed person
            [0, 0, 0, 0, 0, 1],  # song: missed
            [0, 0, 0, 0, 0, 0],  # person: never gold
            [0, 0, 0, 1, 0, 1],  # location: Europe right, New York City missed
            [0, 0, 0, 0, 0, 0],  # organisation: never gold
            [0, 0, 0, 1, 1, 0]]  # spurious: New York/location, Columbia/organisation


def test_hand_computed_matrix_in_string_mode():
    c = confusion(SENTENCES, PREDICTIONS, "string", True, ORDER)
    assert c.labels == LABELS
    assert c.rows == [*LABELS, SPURIOUS] and c.columns == [*LABELS, MISSED]
    assert c.matrix == EXPECTED
    assert c.cell("musicalartist", "person") == 1  # musical artist typed as person
    assert c.to_json() == {"rows": c.rows, "columns": c.columns, "matrix": EXPECTED}


def test_boundaries_that_differ_are_one_missed_and_one_spurious():
    cells = sentence_cells(SENTENCES[0], PREDICTIONS["s1"])
    assert {(c.boundary, c.gold, c.pred) for c in cells} == {
        (("Bob Dylan",), "musicalartist", "person"),
        (("New York City",), "location", None),
        (("New York",), None, "location")}


def test_span_mode_boundaries_are_token_offsets():
    """"Bob met Bob": gold Bob(0,1)/person, Bob(2,3)/musicalartist; predicted Bob/person. In string
    mode "Bob" is one boundary (person right, musicalartist missed); in span mode the prediction
    is placed at both occurrences: (0,1) right, (2,3) musicalartist typed person."""
    s = sent("b", "Bob met Bob", [(0, 1, "person"), (2, 3, "musicalartist")])
    preds = {"b": [("Bob", "person")]}
    string = confusion([s], preds, "string", order=["person", "musicalartist"])
    span = confusion([s], preds, "span", order=["person", "musicalartist"])
    assert string.matrix == [[1, 0, 0], [0, 0, 1], [0, 0, 0]]
    assert span.matrix == [[1, 0, 0], [1, 0, 0], [0, 0, 0]]
    # a mention found nowhere has no boundaries in span mode: spurious, never a wrong type
    nowhere = confusion([s], {"b": [("Rob", "person")]}, "span", order=["person"])
    assert nowhere.labels == ["person", "musicalartist"]
    assert nowhere.matrix == [[0, 0, 1], [0, 0, 1], [1, 0, 0]]


def test_misc_off_drops_misc_from_gold_and_predictions():
    s = sent("m", "English song Yesterday", [(0, 1, "misc"), (2, 3, "song")])
    preds = {"m": [("English", "misc"), ("Yesterday", "album")]}
    on = confusion([s], preds, misc=True, order=["misc", "song", "album"])
    off = confusion([s], preds, misc=False, order=["misc", "song", "album"])
    assert on.labels == ["misc", "song", "album"]
    assert on.matrix == [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert off.labels == ["song", "album"]
    assert off.matrix == [[0, 1, 0], [0, 0, 0], [0, 0, 0]]


def test_pairing_agreeing_types_first_then_sorted():
    cells = pair_keys({("x", "a"), ("x", "b"), ("x", "c")}, {("x", "c"), ("x", "z")})
    assert [(c.gold, c.pred) for c in cells] == [("c", "c"), ("a", "z"), ("b", None)]
    cells = pair_keys({("x", "a")}, {("x", "y"), ("x", "z")})
    assert [(c.gold, c.pred) for c in cells] == [("a", "y"), (None, "z")]


def test_no_mentions_gives_an_empty_matrix():
    s = sent("e", "nothing here", [])
    assert confusion([s], {}) == Confusion([], [[0]])


@pytest.mark.parametrize("mode", MODES.names())
@pytest.mark.parametrize("misc", [True, False])
def test_the_matrix_agrees_with_the_scorer(mode, misc):
    """Diagonal = TP, a gold row = TP + FN, a predicted column = TP + FP, per type: the matrix
    counts what the scorer counts."""
    c = confusion(SENTENCES, PREDICTIONS, mode, misc, ORDER)
    scored = DomainScore()
    for s in SENTENCES:
        score_sentence(scored, s, PREDICTIONS.get(s.id, ()), mode, misc)
        m = matched(s, PREDICTIONS.get(s.id, ()), misc)
        assert len(m.pairs) == len(set(m.pairs))
    n = len(c.labels)
    for i, label in enumerate(c.labels):
        counts = scored.per_type.get(label)
        tp, fp, fn = (counts.tp, counts.fp, counts.fn) if counts else (0, 0, 0)
        assert c.matrix[i][i] == tp, label
        assert sum(c.matrix[i]) == tp + fn, label
        assert sum(row[i] for row in c.matrix) == tp + fp, label
    assert c.matrix[n][n] == 0
    assert sum(c.matrix[i][i] for i in range(n)) == scored.total.tp
