"""Stage-1 consensus rules: how the extractors' mention lists become one discovered set.

Each rule is registered by name beside its implementation; the inference config's
``consensus.rule`` is validated against :data:`RULES`, and adding a rule is one function here.
A rule gets the mentions each enabled extractor found in one sentence (extractor order kept) and
the ``consensus`` settings, and returns (kept, dropped), both de-duplicated, kept in extractor
order (the first extractor's mentions first).

* ``ccr``: the SAM-NER authors' Collaborative Consensus Refinement. Every mention of the
  ``corroborator`` (the anchor) is kept; another extractor's mention in ``scope``
  (``single_token``: one whitespace token, the authors' rule; ``all``: every mention) is kept only
  if the corroborator found the same string. Without the corroborator (its ablation) nothing can
  corroborate, so nothing is dropped.
* ``union``: every mention (the paper's "w/o CCR").
* ``intersection``: mentions every extractor found.
* ``vote``: mentions at least ``min_votes`` extractors found; with ``scope: single_token`` the
  vote applies to one-token mentions only and longer ones are always kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.registry import Registry

Found = Mapping[str, Sequence[str]]  # extractor name -> its mentions in one sentence
Result = tuple[list[str], list[str]]  # (kept, dropped)
SCOPES = ("single_token", "all")


@dataclass(frozen=True)
class Rule:
    name: str
    apply: Callable[[Found, Any], Result]
    params: tuple[str, ...]  # the consensus settings the rule reads (the report lists them)


RULES: Registry[Rule] = Registry("consensus rule")


def register(name: str, *params: str):
    def wrap(fn: Callable[[Found, Any], Result]) -> Callable[[Found, Any], Result]:
        RULES.add(name, Rule(name, fn, params))
        return fn

    return wrap


def _in_order(found: Found) -> list[str]:
    return list(dict.fromkeys(m for mentions in found.values() for m in mentions))


def _split(found: Found, keep: Callable[[str], bool]) -> Result:
    every = _in_order(found)
    return [m for m in every if keep(m)], [m for m in every if not keep(m)]


def _in_scope(mention: str, scope: str) -> bool:
    return scope == "all" or len(mention.split()) == 1


@register("ccr", "corroborator", "scope")
def ccr(found: Found, settings: Any) -> Result:
    corroborator = settings.corroborator
    if corroborator not in found:
        return _in_order(found), []
    anchor = set(found[corroborator])
    # a mention the corroborator found is kept wherever it appears
    return _split(found, lambda m: m in anchor or not _in_scope(m, settings.scope))


@register("union")
def union(found: Found, settings: Any) -> Result:
    return _in_order(found), []


@register("intersection")
def intersection(found: Found, settings: Any) -> Result:
    sets = [set(mentions) for mentions in found.values()]
    return _split(found, lambda m: all(m in s for s in sets))


@register("vote", "min_votes", "scope")
def vote(found: Found, settings: Any) -> Result:
    votes = Counter(m for mentions in found.values() for m in set(mentions))
    return _split(found, lambda m: votes[m] >= settings.min_votes
                  or not _in_scope(m, settings.scope))


def apply(found: Found, settings: Any) -> Result:
    """The configured rule over one sentence's mentions by extractor."""
    return RULES[settings.rule].apply(found, settings)
