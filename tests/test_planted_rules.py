"""Exact, hand-computed rules that a plausible one-line slip would break unnoticed.

Each slip was planted in the product code to see a test here fail while the module's own tests
(test_score, test_resume, test_span_grammar, test_predict) still passed: string scoring turned
case-insensitive; span scoring (or predict's placement) splitting mentions on single spaces
only; the answer digest leaving out temperature, the seed or the stage-1 grammar; the raw-text
tokenizer of ``make predict`` splitting a decimal or hyphenated word whose last part is the
line's last character.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from core.messages import Request
from core.records import Sentence, Span
from core.text import place_mentions, token_spans
from eval.config import load_config
from eval.discovery import extractor_requests
from eval.engine import CharTokenizer, FakeBackend
from eval.identity import request_digest
from eval.pipeline import request_context
from eval.score import score
from tests.conftest import REPO

# --- a. string mode compares mentions exactly (case included) ----------------------------------

PARIS = Sentence("s1", "geo", ["He", "flew", "to", "Paris", "."], [Span(3, 4, "city", "Paris")])


@pytest.mark.parametrize("mode", ["string", "span"])
def test_a_mention_differing_only_in_case_is_wrong(mode: str) -> None:
    report = score([PARIS], {"s1": [("paris", "city"), ("PARIS", "city")]}, mode)
    total = report.domains["geo"].total
    assert (total.tp, total.fp, total.fn) == (0, 2, 1)
    assert report.domains["geo"].not_found == 2
    exact = score([PARIS], {"s1": [("Paris", "city")]}, mode).domains["geo"].total
    assert (exact.tp, exact.fp, exact.fn) == (1, 0, 0)


# --- b. span mode splits a mention on any whitespace --------------------------------------------

NEW_YORK = Sentence("s2", "geo", ["She", "left", "New", "York", "for", "New", "Delhi", "."],
                    [Span(2, 4, "city", "New York"), Span(5, 7, "city", "New Delhi")])


def test_span_mode_splits_a_mention_on_any_whitespace() -> None:
    # two spaces, a tab, a newline and a no-break space all separate words like one space does
    predicted = [("New  York", "city"), ("New\tDelhi", "city"), ("New\nYork", "city"),
                 ("New\u00a0Delhi", "city")]
    report = score([NEW_YORK], {"s2": predicted}, "span")
    total = report.domains["geo"].total
    assert (total.tp, total.fp, total.fn) == (2, 0, 0)  # four strings, two distinct spans
    assert report.domains["geo"].not_found == 0
    # string mode compares the stripped strings themselves: none of them is a gold string
    strict = score([NEW_YORK], {"s2": predicted}, "string").domains["geo"].total
    assert (strict.tp, strict.fp, strict.fn) == (0, 4, 2)


def test_predict_places_a_mention_split_on_any_whitespace() -> None:
    line = "She left New York."
    counts: Counter[str] = Counter()
    assert place_mentions(line, token_spans(line), [("New \t York", "city")], counts) == [
        {"start": 9, "end": 17, "text": "New York", "type": "city"}]
    assert not counts


# --- c. what the saved-answer digest depends on ------------------------------------------------

TINY = REPO / "recipes" / "infer" / "tiny-cpu.yaml"
QUEEN = Sentence("m1", "music", ["Queen", "played", "Bohemian", "Rhapsody", "at", "Wembley", "."])


def adapter_dirs(root: Path) -> list[str]:
    """Overrides pointing the tiny config's four adapters at small dirs of known content."""
    overrides = []
    for role, key in (("anchor", "extractors.anchor"), ("explorer", "extractors.explorer"),
                      ("classifier", "classifier_adapter"),
                      ("direct_classifier", "direct_classifier_adapter")):
        folder = root / role
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "adapter_config.json").write_text(f'{{"r": 8, "role": "{role}"}}')
        (folder / "adapter_model.safetensors").write_bytes(role.encode())
        overrides.append(f"{key}.path={folder}")
    return overrides


def anchor_digest(overrides: list[str], key: str = "") -> tuple[Request, str]:
    """The digest of the tiny config's anchor request for :data:`QUEEN` (fake backend)."""
    config = load_config(TINY, overrides)
    request = extractor_requests("anchor", [QUEEN], ["person", "song", "location"], config,
                                 CharTokenizer())[0]
    if key:
        request = Request(key, request.prompt_ids, request.adapter, request.max_tokens,
                          request.stop, request.choices, request.grammar, sentence=key)
    return request, request_digest(request, request_context(config, FakeBackend(str)))


@pytest.fixture
def adapters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("SAMNER_CACHE", str(tmp_path / "cache"))
    return adapter_dirs(tmp_path / "lora")


@pytest.mark.parametrize("change", ["sampling.temperature=0.7", "engine.seed=1",
                                    "sampling.top_p=0.9", "sampling.repetition_penalty=1.1",
                                    "sampling.max_tokens_extract=65", "engine.dtype=bfloat16",
                                    "engine.max_model_len=4096",
                                    "engine.extra={quantization: fp8}"])
def test_every_decoding_setting_changes_the_digest(adapters: list[str], change: str) -> None:
    request, before = anchor_digest(adapters)
    changed, after = anchor_digest([*adapters, change])
    if change.startswith("sampling.max_tokens"):
        assert changed.max_tokens == request.max_tokens + 1
    else:
        assert changed == request  # the request itself is the same: only its context differs
    assert after != before


@pytest.mark.parametrize("change", ["extraction.max_span_words=3",
                                    "extraction.max_mentions_per_type=2",
                                    "extraction.constrain_to_spans=false"])
def test_the_stage1_grammar_changes_the_digest(adapters: list[str], change: str) -> None:
    request, before = anchor_digest(adapters)
    changed, after = anchor_digest([*adapters, change])
    assert request.grammar and request.grammar.startswith('root ::= "{" "\\"person\\"" ":" list')
    # same prompt, adapter and budget: only the grammar differs
    assert (changed.prompt_ids, changed.adapter, changed.max_tokens) == (
        request.prompt_ids, request.adapter, request.max_tokens)
    assert changed.grammar != request.grammar
    assert after != before


@pytest.mark.parametrize("change", [
    ["engine.block_size=64"], ["engine.single_process=false", "engine.tensor_parallel_size=2"],
    ["engine.data_parallel_size=2"], ["engine.max_num_seqs=8"], ["engine.chunk_size=16"],
    ["engine.gpu_memory_utilization=0.5"], ["output_dir=elsewhere"], ["limit=3"]])
def test_what_does_not_change_an_answer_keeps_the_digest(adapters: list[str],
                                                         change: list[str]) -> None:
    """Batching, parallelism and block size change greedy answers only at the noise level
    (eval.pipeline.request_context): a run may change them and still reuse its answers."""
    assert anchor_digest([*adapters, *change])[1] == anchor_digest(adapters)[1]


def test_the_digest_keys_an_answer_by_content_not_key_or_path(adapters: list[str],
                                                              tmp_path: Path) -> None:
    _, digest = anchor_digest(adapters)
    assert anchor_digest(adapters, key="elsewhere#0")[1] == digest  # keys are positions
    moved = adapter_dirs(tmp_path / "moved")  # the same files at other paths
    assert anchor_digest(moved)[1] == digest
    (tmp_path / "moved" / "anchor" / "adapter_model.safetensors").write_bytes(b"retrained")
    assert anchor_digest(moved)[1] != digest


def test_the_digest_payload_is_pinned() -> None:
    """A digest change invalidates every saved answer of every run: change it only on purpose."""
    request = Request("k", [1, 2, 3], "anchor", 8, ("<|eot_id|>",), None, 'root ::= "x"')
    context = {"model": {"fake": "fake"}, "adapters": {"anchor": "a" * 64},
               "decoding": {"temperature": 0.0, "top_p": 1.0, "repetition_penalty": 1.0,
                            "seed": 0},
               "engine": {"dtype": "float32", "max_model_len": 2048, "extra": {}}}
    assert request_digest(request, context) == PINNED_DIGEST


PINNED_DIGEST = "bf578f2165bb93b923e0aca1eb70aff6439b14d36198628ca8b01de960b276cf"


# --- d. the raw-text tokenizer of make predict ---------------------------------------------------


@pytest.mark.parametrize(("line", "spans"), [
    ("Python 3.5", [(0, 6), (7, 10)]),
    ("state-of-the-art", [(0, 16)]),
    ("a-b", [(0, 3)]),
    ("x.y", [(0, 3)]),
    ("v3.", [(0, 2), (2, 3)]),  # a final period is a token of its own
    ("3.5-inch", [(0, 8)]),
    ("end-", [(0, 3), (3, 4)]),
    ("Python 3.5, state-of-the-art", [(0, 6), (7, 10), (10, 11), (12, 28)]),
])
def test_a_decimal_or_hyphenated_word_at_the_end_of_a_line_stays_whole(
        line: str, spans: list[tuple[int, int]]) -> None:
    assert token_spans(line) == spans
