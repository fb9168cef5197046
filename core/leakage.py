"""Find strings in label definitions that are gold mentions of a benchmark's test split.

Zero-shot means zero: nothing a model is shown (definitions, examples, descriptions) may carry a
string that is a gold mention of a test split, **whether or not it is also gold in train or
dev** (a train-split string that is also test gold still tells the model a test answer). What is
checked in a YAML file's text (every string, key or value, of the parsed YAML, plus full-line
comments):

* every quoted example (``"..."`` or ``“...”``), of any length, single words included;
* every unquoted run of 2 or more words (word n-grams);
* every unquoted single word written with a capital letter inside a sentence of prose (a
  proper-noun example such as ``Java`` that was left unquoted); a text without lower-case words,
  such as a label name "Restaurant Name", is checked as a run of words only.

A lower-case single word that is not quoted is NOT checked: generic words ("novel", "country",
"piano") are gold mentions somewhere in nearly every test split, and a single word of ordinary
prose carries no benchmark-specific information. Put examples in quotes.

Matching ignores case (MIT's gold is lower-cased) and is exact on the words as written, and also
on the string tokenised the CrossNER way (punctuation split off: "Clash's" -> "Clash ' s").
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from core.bio import parse_bio
from core.records import Sentence
from core.sources import DatasetSource, dataset_sources

QUOTED = re.compile(r'"([^"\n]+)"|“([^”\n]+)”')
_SPLIT_OFF = re.compile(r'([()\[\],;:!?"“”‘’])')
_FINAL_PERIOD = re.compile(r"(?<=[^\s.]{4})\.(?=\s|$)")  # "event." -> "event ." but not "Dr."
_SENTENCE_END = {".", "!", "?", ":"}  # a capital after these opens a sentence
_EXAMPLE_MARKS = ("e.g.", "i.e.")


def gold_mentions(sentences: Iterable[Sentence]) -> set[str]:
    """Every gold span's text: its tokens joined by single spaces (the CrossNER spelling)."""
    return {span.text for sentence in sentences for span in sentence.entities}


def source_test_gold(source: DatasetSource, dataset_dir: str | os.PathLike[str]) -> set[str]:
    """Test gold mentions of a benchmark domain, read from its raw BIO test file under
    ``dataset_dir`` (``<dataset_dir>/<folder>/test.txt``, columns as its source says)."""
    path = source.raw_file(dataset_dir, "test")
    return gold_mentions(parse_bio(path, source.domain, "test", tag_first=source.tag_first)[0])


def benchmark_test_gold(sources: Mapping[str, DatasetSource] | None = None
                        ) -> dict[str, Callable[[Path], set[str]]]:
    """Every benchmark domain with a source -> its test gold, read from a data folder laid out
    like ../shared/data (``<dataset>/<folder>/test.txt``: crossner/music/, mit/movie/)."""
    sources = dataset_sources() if sources is None else sources
    return {name: (lambda data, s=source: source_test_gold(s, Path(data) / s.dataset))
            for name, source in sources.items()}


BENCHMARK_TEST_GOLD = benchmark_test_gold()


def yaml_texts(source: os.PathLike[str] | str | dict[str, Any]) -> list[str]:
    """The text a YAML file shows: every string (keys and values; folded lines come joined) and
    every full-line comment. ``source`` is a path, the YAML text as a ``str``, or parsed data."""
    texts: list[str] = []
    if isinstance(source, dict):
        data: Any = source
    else:
        raw = source if isinstance(source, str) else Path(source).read_text(encoding="utf-8")
        lines = [line.strip() for line in raw.splitlines()]
        texts += [line.lstrip("#") for line in lines if line.startswith("#")]
        data = yaml.safe_load(raw)

    def walk(node: Any) -> None:
        if isinstance(node, str):
            texts.append(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(key)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(data)
    return texts


def archetype_texts(path: str | os.PathLike[str]) -> str:
    """What ``archetypes.yaml`` shows a model - the ``archetypes`` section (names and
    definitions) - plus its comments, as YAML text for :func:`find_leaks`. The ``projection``
    lists are IEPile's own type names, read only by the converters, never shown at inference."""
    raw = Path(path).read_text(encoding="utf-8")
    comments = [line for line in raw.splitlines() if line.strip().startswith("#")]
    shown = {"archetypes": (yaml.safe_load(raw) or {}).get("archetypes")}
    return "\n".join([*comments, yaml.safe_dump(shown, allow_unicode=True, width=10_000)])


def spellings(text: str) -> list[list[str]]:
    """Word sequences to match: as written, and tokenised the CrossNER way (two possessives)."""
    padded = _FINAL_PERIOD.sub(" .", _SPLIT_OFF.sub(r" \1 ", text))
    split_s = re.sub(r"(\w)'s\b", r"\1 ' s", padded)
    joined_s = re.sub(r"(\w)'s\b", r"\1 's", padded)
    return [text.split(), split_s.split(), joined_s.split()]


def _capitalised_inside(words: list[str]) -> Iterator[str]:
    """Single words with a capital letter that do not open a sentence (proper-noun-like); a
    word after "e.g." or "i.e." is an example and is checked."""
    for previous, word in pairwise(words):
        word = word.strip(".,;:!?")
        opens = previous in _SENTENCE_END or (
            previous.endswith((".", "!", "?")) and previous.lower() not in _EXAMPLE_MARKS)
        if word[:1].isupper() and not opens:
            yield word


def find_leaks(source: os.PathLike[str] | str | dict[str, Any], test_gold: set[str]
               ) -> list[str]:
    """Test gold mentions (CrossNER spelling, as the gold writes them) that ``source`` (as for
    :func:`yaml_texts`) quotes, contains as a run of 2+ words, or names as a capitalised word."""
    index: dict[str, str] = {}
    for mention in sorted(test_gold):
        index.setdefault(mention.lower(), mention)
    if not index:
        return []
    longest = max(len(mention.split()) for mention in index)
    found: set[str] = set()

    def look(words: Iterable[str]) -> None:
        written = " ".join(words)
        if written.lower() in index:  # the gold's own spelling, the one written if it is gold
            found.add(written if written in test_gold else index[written.lower()])

    for text in yaml_texts(source):
        for match in QUOTED.finditer(text):
            quoted = (match.group(1) or match.group(2)).strip()
            for words in spellings(quoted):
                look(words)
        for words in spellings(text):
            for n in range(2, longest + 1):
                for i in range(len(words) - n + 1):
                    look(words[i:i + n])
            if any(word[:1].islower() for word in words):  # prose, where a capital marks a
                for word in _capitalised_inside(words):  # name (a title like "Restaurant
                    look([word])  # Name" is checked as a run of words)
    return sorted(found)


def leak_report(paths: Iterable[Path], test_gold: set[str], root: Path | None = None
                ) -> list[str]:
    """``file: 'string'`` for every leak of every file (``root``: paths shown relative to it);
    an ``archetypes.yaml`` is checked for what it shows models (:func:`archetype_texts`)."""
    return [f"{path.relative_to(root) if root else path}: {leak!r}"
            for path in paths
            for leak in find_leaks(archetype_texts(path) if path.name == "archetypes.yaml"
                                   else path, test_gold)]
