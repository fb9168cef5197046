"""Label definitions must not leak a benchmark's test split: zero-shot means zero.

Every example or multi-word string in ``mappings/domains/<domain>.yaml`` and in
``mappings/archetypes.yaml`` (shown with every domain) must be invented, generic, or a gold mention
of that benchmark's train/dev splits, never a gold mention found only in its test split. The rule
and its limits (single unquoted words are not checked) are in ``data_prep/leakage.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from data_prep.leakage import crossner_gold, find_leaks, mit_gold, yaml_texts
from data_prep.mappings import CROSSNER_DOMAINS, DOMAINS_DIR, MAPPINGS_DIR

ARCHETYPES = MAPPINGS_DIR / "archetypes.yaml"

GoldLoader = Callable[[Path], tuple[set[str], set[str]]]  # shared data dir -> (train+dev, test)

# One row per benchmark domain the project ships: mappings/domains/<name>.yaml -> its gold loader.
# Adding a benchmark is one row. MIT has no dev split: its train split is the allowed set.
BENCHMARKS: dict[str, GoldLoader] = {
    **{domain: (lambda data, domain=domain: crossner_gold(data / "crossner", domain))
       for domain in CROSSNER_DOMAINS},
    "mit_movie": lambda data: mit_gold(data / "mit", "mit_movie"),
    "mit_restaurant": lambda data: mit_gold(data / "mit", "mit_restaurant"),
}


@pytest.fixture(scope="module")
def gold(shared_data: Path) -> dict[str, tuple[set[str], set[str]]]:
    return {name: load(shared_data) for name, load in BENCHMARKS.items()}


def test_every_crossner_domain_is_checked():
    assert set(CROSSNER_DOMAINS) <= set(BENCHMARKS)


@pytest.mark.parametrize("domain", sorted(BENCHMARKS))
def test_definitions_do_not_leak_the_test_split(domain, gold):
    train_dev, test = gold[domain]
    assert test - train_dev, f"{domain}: no test-only gold mention at all (wrong data?)"
    problems = [
        f"{path.relative_to(MAPPINGS_DIR.parent)}: {leak!r}"
        for path in (DOMAINS_DIR / f"{domain}.yaml", ARCHETYPES)
        for leak in find_leaks(path, train_dev, test)
    ]
    assert not problems, (
        f"gold mentions found only in the {domain} test split (replace each by an invented "
        f"example or one of the {domain} train/dev gold mentions):\n  " + "\n  ".join(problems))


# --- the checker itself, on hand-made inputs ------------------------------------------------

TRAIN_DEV = {"Nobel Prize", "Orla Fenwick", "Blue Danube"}
TEST = {"Nobel Prize", "Orla Fenwick", "Zeta Prize", "Quill", "Mira Vance", "novel",
        "Clash ' s", "Old Harbour Poems"}
leaks = partial(find_leaks, train_dev_gold=TRAIN_DEV, test_gold=TEST)


def _domain(definition: str) -> str:
    return f"labels:\n  award:\n    definition: >-\n      {definition}\n"


def test_quoted_test_only_string_is_caught():
    assert leaks(_domain('A prize, e.g. "Zeta Prize".')) == ["Zeta Prize"]


def test_quoted_single_word_is_caught():
    assert leaks(_domain('A magazine, e.g. "Quill".')) == ["Quill"]


def test_typographic_quotes_are_caught():
    assert leaks(_domain("A magazine, e.g. “Quill”.")) == ["Quill"]


def test_string_also_in_train_dev_is_allowed():
    assert leaks(_domain('A prize, e.g. "Nobel Prize", or a person, "Orla Fenwick".')) == []


def test_unquoted_multi_word_test_only_string_is_caught():
    assert leaks(_domain("A person such as Mira Vance, a singer.")) == ["Mira Vance"]


def test_invented_string_passes():
    assert leaks(_domain('A prize, e.g. "Golden Acorn Medal", or Tova Reinholt.')) == []


def test_single_unquoted_word_is_not_flagged():
    # "novel" and "Quill" are test-only gold, but one unquoted word is ordinary prose: too noisy.
    assert leaks(_domain("A long novel, or a Quill of sorts.")) == []


def test_crossner_tokenisation_is_matched():
    # CrossNER splits possessives off: gold "Clash ' s" matches the written "Clash's".
    assert leaks(_domain('Named after "Clash\'s" first record.')) == ["Clash ' s"]


def test_example_folded_over_two_lines_is_caught():
    assert leaks(_domain('A poem, e.g. "Old Harbour\n      Poems".')) == ["Old Harbour Poems"]


def test_comments_are_checked(tmp_path):
    path = tmp_path / "domain.yaml"
    path.write_text("# written after reading Mira Vance\n" + _domain("A person."), encoding="utf-8")
    assert leaks(path) == ["Mira Vance"]


def test_parsed_data_is_accepted():
    data = {"labels": {"person": {"definition": 'A person, e.g. "Mira Vance".'}}}
    assert leaks(data) == ["Mira Vance"]
    assert 'A person, e.g. "Mira Vance".' in yaml_texts(data)



# --- MIT Movie / MIT Restaurant ---------------------------------------------------------------


def test_mit_domains_are_checked_against_their_train_split(shared_data):
    assert {"mit_movie", "mit_restaurant"} <= set(BENCHMARKS)
    # distinct gold strings (train, test, test-only), counted from the MIT files
    sizes = {"mit_movie": (6166, 2217, 1046), "mit_restaurant": (4933, 1526, 757)}
    for domain, expected in sizes.items():
        train, test = mit_gold(shared_data / "mit", domain)
        assert (len(train), len(test), len(test - train)) == expected, domain
    train, test = mit_gold(shared_data / "mit", "mit_movie")
    assert "johnny depp" in train and "romantic comedies" in test  # tag first, token second
