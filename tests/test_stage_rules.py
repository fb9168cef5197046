"""The method's rules, each pinned by hand-computed cases: consensus (CCR, union, intersection,
vote), archetype assignment, label parsing and the archetype fallback.

Flip a condition in eval/consensus.py, eval/mediation.py or eval/calibration.py and a case here
fails."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from core.mappings import load_domain
from core.messages import Completion, Request
from core.records import Sentence
from eval import consensus
from eval.calibration import collect, fallback_label, label_parser, request_key
from eval.discovery import discover
from eval.mediation import assign_archetypes

ARCHETYPES = ["person", "organization", "location", "misc"]


@dataclass
class Settings:
    rule: str = "ccr"
    corroborator: str = "anchor"
    scope: str = "single_token"
    min_votes: int = 2


# anchor: precise; explorer: broad, with generic one-word nouns; base: a third opinion
FOUND = {
    "anchor": ["Paris", "Nine Inch Nails"],
    "explorer": ["Paris", "data", "Trent Reznor", "system"],
    "base": ["system", "Trent Reznor", "Reznor"],
}


@pytest.mark.parametrize(("settings", "kept", "dropped"), [
    # CCR (authors): one-token mentions of non-anchors need the anchor's same string
    (Settings(), ["Paris", "Nine Inch Nails", "Trent Reznor"], ["data", "system", "Reznor"]),
    # CCR, scope all: every non-anchor mention needs the anchor
    (Settings(scope="all"), ["Paris", "Nine Inch Nails"],
     ["data", "Trent Reznor", "system", "Reznor"]),
    (Settings(rule="union"), ["Paris", "Nine Inch Nails", "data", "Trent Reznor", "system",
                              "Reznor"], []),
    # only "Paris"... is not in base: nothing is found by all three
    (Settings(rule="intersection"), [], ["Paris", "Nine Inch Nails", "data", "Trent Reznor",
                                         "system", "Reznor"]),
    # votes: Paris 2, Nine Inch Nails 1, data 1, Trent Reznor 2, system 2, Reznor 1
    (Settings(rule="vote", scope="all"), ["Paris", "Trent Reznor", "system"],
     ["Nine Inch Nails", "data", "Reznor"]),
    # vote on one-token mentions only: Nine Inch Nails (3 tokens) is kept with 1 vote
    (Settings(rule="vote"), ["Paris", "Nine Inch Nails", "Trent Reznor", "system"],
     ["data", "Reznor"]),
    (Settings(rule="vote", scope="all", min_votes=3), [],
     ["Paris", "Nine Inch Nails", "data", "Trent Reznor", "system", "Reznor"]),
    (Settings(rule="vote", scope="all", min_votes=1), ["Paris", "Nine Inch Nails", "data",
                                                       "Trent Reznor", "system", "Reznor"], []),
])
def test_consensus_rules(settings, kept, dropped):
    assert consensus.apply(FOUND, settings) == (kept, dropped)


def test_ccr_without_its_corroborator_drops_nothing():
    """The no-anchor ablation: nothing can corroborate, so every mention stays (paper Table 6)."""
    found = {"explorer": ["data", "Trent Reznor"]}
    assert consensus.apply(found, Settings()) == (["data", "Trent Reznor"], [])


def test_ccr_keeps_the_anchors_one_token_mentions_and_whatever_it_corroborates():
    found = {"explorer": ["data", "Paris"], "anchor": ["Paris", "Ohio"]}
    # extractor order decides the output order; the anchor's own one-token "Ohio" stays
    assert consensus.apply(found, Settings()) == (["Paris", "Ohio"], ["data"])


def test_every_rule_is_registered_with_the_settings_it_reads():
    assert {name: rule.params for name, rule in consensus.RULES.items()} == {
        "ccr": ("corroborator", "scope"), "union": (), "intersection": (),
        "vote": ("min_votes", "scope")}


def test_discover_drops_and_counts_mentions_not_in_the_sentence():
    tokens = ["Trent", "Reznor", "founded", "Nine", "Inch", "Nails", "in", "Ohio"]
    sentence = Sentence("s1", "d", tokens, [])
    result = discover(sentence, {"anchor": ["Nine Inch Nails", "Cleveland"],
                                 "explorer": ["Trent Reznor", "founded", "Reznor's"]}, Settings())
    assert result.mentions == ["Nine Inch Nails", "Trent Reznor"]
    assert result.not_in_sentence == ["Cleveland"]
    assert result.consensus_dropped == ["founded", "Reznor's"]
    assert result.found == {"anchor": ["Nine Inch Nails", "Cleveland"],
                            "explorer": ["Trent Reznor", "founded", "Reznor's"]}


def test_archetype_assignment_rules():
    counts: Counter[str] = Counter()
    tagged = ["Trent Reznor", "Nine Inch Nails", "Ohio", "Halo"]
    answer = [("Nine Inch Nails", "Organization"),  # case-insensitive archetype
              ("Trent Reznor", "person"),
              ("Trent Reznor", "location"),  # a second answer for a mention: the first wins
              ("Ohio", "planet"),  # not an archetype -> misc, counted
              ("Cleveland", "location")]  # not a tagged mention -> counted, ignored
    assert assign_archetypes(tagged, answer, ARCHETYPES, counts) == [
        ("Trent Reznor", "person"), ("Nine Inch Nails", "organization"), ("Ohio", "misc"),
        ("Halo", "misc")]  # omitted -> misc, counted
    assert counts == Counter(answer_mention_not_tagged=1, unknown_archetype_to_misc=1,
                             omitted_to_misc=1)


MUSIC = load_domain("music")


def completion(text: str) -> Completion:
    return Completion(text, 0, 0, "stop")


def test_label_parser_maps_names_and_raw_tags_to_tags():
    parse = label_parser(MUSIC)
    request = Request("k", [], None, 8)
    assert parse(request, completion("musical artist")) == ("musicalartist", "ok")
    assert parse(request, completion(" Musical Artist\n")) == ("musicalartist", "ok")
    assert parse(request, completion("musicalartist")) == ("musicalartist", "ok")
    assert parse(request, completion("singer")) == (None, "invalid")


def test_fallback_label_uses_the_domains_table_then_misc():
    counts: Counter[str] = Counter()
    assert fallback_label(MUSIC, "person", counts) == MUSIC.archetype_fallback["person"]
    assert fallback_label(MUSIC, "vehicle", counts) == "misc"  # not in music's table
    assert counts == Counter(fallback_to_misc=1)


def test_a_domain_without_misc_drops_what_it_cannot_map():
    no_misc = load_domain("mit_restaurant")
    assert "misc" not in no_misc.labels
    counts: Counter[str] = Counter()
    assert fallback_label(no_misc, "vehicle", counts) is None
    assert counts == Counter(fallback_dropped=1)


def test_calibration_collect_by_mention_with_fallbacks():
    assigned = {"s1": [("Trent Reznor", "person"), ("Ohio", "location")]}
    records = {request_key("s1", "Trent Reznor"): {"parsed": "musicalartist"},
               request_key("s1", "Ohio"): {"parsed": None}}  # an invalid answer
    counts: Counter[str] = Counter()
    assert collect(records, assigned, MUSIC, counts) == {
        "s1": ["musicalartist", MUSIC.archetype_fallback["location"]]}
    assert counts == Counter(invalid_label_to_fallback=1)
    off: Counter[str] = Counter()  # calibration switched off: every mention falls back
    assert collect(None, assigned, MUSIC, off) == {
        "s1": [MUSIC.archetype_fallback["person"], MUSIC.archetype_fallback["location"]]}
    assert off == Counter()
