"""Label definitions must not leak a benchmark's test split: zero-shot means zero.

No string that is a gold mention of a benchmark's test split may appear in what a model is shown,
even when it is also gold in train or dev. Checked for the default definitions of every shipped
benchmark domain (``mappings/domains/<domain>.yaml``), for ``mappings/archetypes.yaml`` (shown
with every domain) and for every shipped definitions variant (``mappings/definitions/*.yaml``).
The rule and its limits (lower-case single unquoted words are not checked) are in
``core/leakage.py``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from core.definitions import VARIANTS_DIR, load_definitions
from core.leakage import (
    BENCHMARK_TEST_GOLD,
    find_leaks,
    leak_report,
    yaml_texts,
)
from core.mappings import CROSSNER_DOMAINS, DOMAINS_DIR, MAPPINGS_DIR

ARCHETYPES = MAPPINGS_DIR / "archetypes.yaml"
VARIANTS = sorted(VARIANTS_DIR.glob("*.yaml"))


@pytest.fixture(scope="module")
def test_gold(shared_data: Path) -> dict[str, set[str]]:
    return {name: load(shared_data) for name, load in BENCHMARK_TEST_GOLD.items()}


def test_every_benchmark_domain_is_checked():
    assert set(BENCHMARK_TEST_GOLD) == {*CROSSNER_DOMAINS, "mit_movie", "mit_restaurant"}
    assert all((DOMAINS_DIR / f"{name}.yaml").is_file() for name in BENCHMARK_TEST_GOLD)


@pytest.mark.parametrize("domain", sorted(BENCHMARK_TEST_GOLD))
def test_default_definitions_quote_no_test_gold(domain, test_gold):
    problems = leak_report([DOMAINS_DIR / f"{domain}.yaml", ARCHETYPES], test_gold[domain],
                           MAPPINGS_DIR.parent)
    assert not problems, (
        f"gold mentions of the {domain} test split (train/dev gold too is not allowed; invent "
        "an example or describe the type without one):\n  " + "\n  ".join(problems))


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda p: p.stem)
def test_definition_variants_quote_no_test_gold(variant, test_gold):
    definitions = load_definitions(variant)
    problems = [
        f"{variant.relative_to(MAPPINGS_DIR.parent)} [{domain}]: {leak!r}"
        for domain, labels in definitions.domains.items()
        for leak in find_leaks({"labels": {tag: label.definition for tag, label in
                                           labels.items()}}, test_gold[domain])
    ]
    assert not problems, "gold mentions of a test split:\n  " + "\n  ".join(problems)


def test_the_rule_catches_what_the_old_rule_let_through(test_gold):
    # Gold in the train split AND the test split: the old rule (test - train/dev) passed these.
    text = 'A programming language, e.g. "Java". A research area such as machine learning.'
    assert find_leaks(text, test_gold["ai"]) == ["Java", "machine learning"]
    assert find_leaks("A planet like Jupiter.", test_gold["science"]) == ["Jupiter"]


# --- the checker itself, on hand-made inputs ------------------------------------------------

TEST = {"Nobel Prize", "Zeta Prize", "Quill", "Mira Vance", "novel", "Clash ' s",
        "Old Harbour Poems", "Java", "johnny depp", "name"}
leaks = partial(find_leaks, test_gold=TEST)


def _domain(definition: str) -> str:
    return f"labels:\n  award:\n    definition: >-\n      {definition}\n"


def test_quoted_test_string_is_caught():
    assert leaks(_domain('A prize, e.g. "Zeta Prize".')) == ["Zeta Prize"]


def test_quoted_single_word_is_caught():
    assert leaks(_domain('A magazine, e.g. "Quill".')) == ["Quill"]


def test_typographic_quotes_are_caught():
    assert leaks(_domain("A magazine, e.g. “Quill”.")) == ["Quill"]


def test_a_string_also_gold_in_train_is_still_a_leak():
    assert leaks(_domain('A prize, e.g. "Nobel Prize".')) == ["Nobel Prize"]


def test_unquoted_multi_word_string_is_caught():
    assert leaks(_domain("A person such as Mira Vance, a singer.")) == ["Mira Vance"]


def test_unquoted_capitalised_word_inside_a_sentence_is_caught():
    assert leaks(_domain("A language such as Java or another.")) == ["Java"]
    assert leaks(_domain("A language, e.g. Java.")) == ["Java"]


def test_a_title_cased_label_name_is_checked_as_a_whole():
    # "Name" is not looked up alone in a text without prose; the whole title still is.
    assert leaks("labels:\n  Restaurant_Name:\n    name: Restaurant Name\n") == []
    assert leaks("labels:\n  award:\n    name: Zeta Prize\n") == ["Zeta Prize"]


def test_capital_opening_a_sentence_is_not_a_name():
    # "Quill" opens the second sentence: an ordinary capital, not an example.
    assert leaks(_domain("A magazine. Quill pens are not magazines.")) == []


def test_matching_ignores_case():
    # MIT's gold is lower-cased: "Johnny Depp" in a definition is the gold "johnny depp".
    assert leaks(_domain('An actor, e.g. "Johnny Depp".')) == ["johnny depp"]


def test_invented_string_passes():
    assert leaks(_domain('A prize, e.g. "Golden Acorn Medal", or Tova Reinholt.')) == []


def test_single_lower_case_unquoted_word_is_not_flagged():
    # "novel" is test gold, but one unquoted lower-case word is ordinary prose: too noisy.
    assert leaks(_domain("A long novel of sorts.")) == []


def test_crossner_tokenisation_is_matched():
    # CrossNER splits possessives off: gold "Clash ' s" matches the written "Clash's".
    assert leaks(_domain('Named after "Clash\'s" first record.')) == ["Clash ' s"]


def test_example_folded_over_two_lines_is_caught():
    assert leaks(_domain('A poem, e.g. "Old Harbour\n      Poems".')) == ["Old Harbour Poems"]


def test_comments_are_checked(tmp_path):
    path = tmp_path / "domain.yaml"
    path.write_text("# written after reading Mira Vance\n" + _domain("A person."), encoding="utf-8")
    assert leaks(path) == ["Mira Vance"]
    assert leak_report([path], TEST, tmp_path) == ["domain.yaml: 'Mira Vance'"]


def test_parsed_data_is_accepted():
    data = {"labels": {"person": {"definition": 'A person, e.g. "Mira Vance".'}}}
    assert leaks(data) == ["Mira Vance"]
    assert 'A person, e.g. "Mira Vance".' in yaml_texts(data)


# --- the gold sets ----------------------------------------------------------------------------


def test_test_gold_is_read_from_the_test_split(shared_data):
    # distinct gold strings of the test splits, counted from the files
    ai = BENCHMARK_TEST_GOLD["ai"](shared_data)
    assert "machine learning" in ai and "Java" in ai
    sizes = {"mit_movie": 2217, "mit_restaurant": 1526}
    for domain, expected in sizes.items():
        assert len(BENCHMARK_TEST_GOLD[domain](shared_data)) == expected, domain
    assert "romantic comedies" in BENCHMARK_TEST_GOLD["mit_movie"](shared_data)
