"""Find strings in label definitions that are gold mentions of a benchmark's test split only."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from data_prep import mit
from data_prep.crossner import parse_bio
from data_prep.records import Sentence

# Zero-shot means zero: nothing a model is shown (definitions, examples, descriptions) may carry
# information from a test split. A string is a leak when it is a gold mention of the test split
# and of no train/dev sentence. What is checked in a YAML file's text (every string, key or
# value, of the parsed YAML, plus full-line comments):
#   * every quoted example ("..." or “...”), of any length, single words included;
#   * every unquoted run of 2 or more words (word n-grams).
# A single unquoted word is NOT checked: generic words ("novel", "country", "piano") are gold
# mentions somewhere in nearly every test split, so flagging them would be noise, and a single
# word of ordinary prose carries no benchmark-specific information. Quote it if it is an example.
# Matching is case-sensitive and exact on the string as written, and also on the string
# tokenised the CrossNER way (punctuation split off: "Clash's" -> "Clash ' s" / "Clash 's").

QUOTED = re.compile(r'"([^"\n]+)"|“([^”\n]+)”')
_SPLIT_OFF = re.compile(r'([()\[\],;:!?"“”‘’])')
_FINAL_PERIOD = re.compile(r"(?<=[^\s.]{4})\.(?=\s|$)")  # "event." -> "event ." but not "Dr."


def gold_mentions(sentences: Iterable[Sentence]) -> set[str]:
    """Every gold span's text: its tokens joined by single spaces (the CrossNER spelling)."""
    return {span.text for sentence in sentences for span in sentence.entities}


def crossner_gold(raw_dir: str | os.PathLike[str], domain: str) -> tuple[set[str], set[str]]:
    """(train+dev gold mentions, test gold mentions) read from ``raw_dir/<domain>/<split>.txt``."""
    seen: set[str] = set()
    for split in ("train", "dev"):
        seen |= gold_mentions(parse_bio(Path(raw_dir) / domain / f"{split}.txt", domain, split)[0])
    test = gold_mentions(parse_bio(Path(raw_dir) / domain / "test.txt", domain, "test")[0])
    return seen, test


def mit_gold(raw_dir: str | os.PathLike[str], domain: str) -> tuple[set[str], set[str]]:
    """(train gold mentions, test gold mentions) of ``mit_movie``/``mit_restaurant``, read from
    ``raw_dir/<movie|restaurant>/<split>.txt``; MIT has no dev split: train is the allowed set."""
    folder = Path(raw_dir) / mit.DOMAINS[domain]
    train, _ = parse_bio(folder / "train.txt", domain, "train", tag_first=True)
    test, _ = parse_bio(folder / "test.txt", domain, "test", tag_first=True)
    return gold_mentions(train), gold_mentions(test)


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


def spellings(text: str) -> list[list[str]]:
    """Word sequences to match: as written, and tokenised the CrossNER way (two possessives)."""
    padded = _FINAL_PERIOD.sub(" .", _SPLIT_OFF.sub(r" \1 ", text))
    split_s = re.sub(r"(\w)'s\b", r"\1 ' s", padded)
    joined_s = re.sub(r"(\w)'s\b", r"\1 's", padded)
    return [text.split(), split_s.split(), joined_s.split()]


def find_leaks(
    source: os.PathLike[str] | str | dict[str, Any], train_dev_gold: set[str], test_gold: set[str]
) -> list[str]:
    """Test-only gold mentions (in ``test_gold``, not in ``train_dev_gold``; CrossNER spelling)
    that ``source`` (as for :func:`yaml_texts`) quotes, or contains as a run of 2+ words."""
    test_only = test_gold - train_dev_gold
    if not test_only:
        return []
    longest = max(len(mention.split()) for mention in test_only)
    found: set[str] = set()
    for text in yaml_texts(source):
        for match in QUOTED.finditer(text):
            quoted = (match.group(1) or match.group(2)).strip()
            found |= {" ".join(words) for words in spellings(quoted)} & test_only
        for words in spellings(text):
            for n in range(2, longest + 1):
                grams = {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}
                found |= grams & test_only
    return sorted(found)
