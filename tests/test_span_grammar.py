"""eval.discovery.span_grammar: xgrammar (vLLM's backend) accepts exactly the JSON answers whose
mentions are runs of consecutive words of the sentence."""

from __future__ import annotations

import json

import pytest

from eval.config import ExtractionConfig, InferenceConfig
from eval.discovery import span_grammar
from tests.conftest import run_json

TEXT = 'Björk sang "Army of Me" live'
TYPES = ["song", "person"]

# (answer, accepted without a span limit, accepted with max_span_words=2)
CASES = [
    ('{"song":[],"person":[]}', True, True),
    ('{"song":["\\"Army of Me\\""],"person":["Björk"]}', True, False),  # 3 words, quotes escaped
    ('{"song":["\\"Army of"],"person":["Björk","live"]}', True, True),
    ('{"song":["Björk sang \\"Army of Me\\" live"],"person":[]}', True, False),  # whole sentence
    ('{"song":["Army"],"person":[]}', False, False),         # not a word: the word is '"Army'
    ('{"song":["sang live"],"person":[]}', False, False),    # words, but not consecutive
    ('{"song":["Björk  sang"],"person":[]}', False, False),  # two spaces
    ('{"song":[""],"person":[]}', False, False),             # empty mention
    ('{"person":[],"song":[]}', False, False),               # types out of order
    ('{"song":[]}', False, False),                           # a type missing
    ('{"song":["live","live","live"],"person":[]}', False, False),  # over 2 mentions a type
    ('{"song":["live","live"],"person":[]}', True, True),
    ('{"song": [],"person":[]}', False, False),              # whitespace padding
]

SCRIPT = r"""
import json, sys
import xgrammar as xgr
from xgrammar.testing import _is_grammar_accept_string
grammars, answers = json.loads(sys.stdin.read())
out = {}
for name, ebnf in grammars.items():
    grammar = xgr.Grammar.from_ebnf(ebnf)
    out[name] = [_is_grammar_accept_string(grammar, a) for a in answers]
print(json.dumps(out))
"""


def config(constrain: bool = True, max_span_words: int | None = None) -> InferenceConfig:
    return InferenceConfig(extraction=ExtractionConfig(
        constrain_to_spans=constrain, max_span_words=max_span_words, max_mentions_per_type=2))


def grammar(max_span_words: int | None = None, text: str = TEXT) -> str:
    result = span_grammar(TYPES, text, config(max_span_words=max_span_words))
    assert result is not None
    return result


def test_no_grammar_when_unconstrained():
    assert span_grammar(TYPES, TEXT, config(constrain=False)) is None


def test_unbounded_grammar_is_linear_in_sentence_length():
    words = len(TEXT.split())
    rules = [line for line in grammar().splitlines() if line.startswith("w")]
    assert len(rules) == words
    assert len([r for r in grammar(2).splitlines()
                if r.startswith("w")]) == 2 * words - 1  # last word can only end a run


@pytest.mark.slow
def test_xgrammar_accepts_exactly_the_sentence_spans(venv_python):
    grammars = {"unbounded": grammar(), "two words": grammar(2), "empty sentence": grammar(text="")}
    answers = [answer for answer, _, _ in CASES]
    result = run_json(venv_python("infer"), SCRIPT, stdin=json.dumps([grammars, answers]))
    assert result["unbounded"] == [want for _, want, _ in CASES]
    assert result["two words"] == [want for _, _, want in CASES]
    # an empty sentence leaves only no mention or the empty mention to answer
    empty_ok = ('{"song":[],"person":[]}', '{"song":[""],"person":[]}')
    assert result["empty sentence"] == [a in empty_ok for a in answers]
