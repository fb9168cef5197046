"""Dataset sources: where each benchmark domain comes from, read from its domain YAML.

A benchmark domain's YAML (``mappings/domains/<name>.yaml``) carries a ``source`` block: the
download entry (``recipes/data_sources.yaml``), the converter module that writes its JSONL, the
raw BIO folder and column layout, its splits and the published size of each split a conversion
must match. That block is the one home of those facts: the converters, the leak check and the
report ask :func:`dataset_sources` instead of importing each other for a size or a folder.
Adding a benchmark = its domain YAML with a ``source`` block (and a converter when its files are
not BIO).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from core.io import ProjectError, read_yaml_mapping
from core.mappings import MAPPINGS_DIR
from core.registry import Registry

DOMAINS_DIR = MAPPINGS_DIR / "domains"
LAYOUTS = ("token_tag", "tag_token")  # BIO columns: token<TAB>tag (CrossNER), tag<TAB>token (MIT)


class SourceError(ProjectError):
    """A domain YAML's ``source`` block that cannot be used; the message names the file."""


@dataclass(frozen=True)
class DatasetSource:
    domain: str
    dataset: str  # the recipes/data_sources.yaml entry that downloads it
    converter: str  # the module that converts it, e.g. data_prep.crossner
    folder: str  # raw files: <dataset dir>/<folder>/<split>.txt
    layout: str  # one of LAYOUTS
    splits: tuple[str, ...]
    published: dict[str, tuple[int, int]]  # split -> (sentences, entity spans)
    path: Path  # the domain YAML it was read from
    out_dir: str = ""  # where its <split>.jsonl go, relative to the data dir (from `sentences:`)

    @property
    def tag_first(self) -> bool:
        return self.layout == "tag_token"

    def raw_file(self, dataset_dir: str | os.PathLike[str], split: str) -> Path:
        return Path(dataset_dir) / self.folder / f"{split}.txt"

    def published_test(self) -> tuple[int, int] | None:
        return self.published.get("test")


def _pair(value: Any, where: str) -> tuple[int, int]:
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(n, int) and n > 0 for n in value)):
        raise SourceError(f"{where}: expected [sentences, spans], two positive integers")
    return value[0], value[1]


def parse_source(domain: str, block: Any, path: Path, sentences: str | None = None
                 ) -> DatasetSource:
    """The ``source`` block of ``path`` as a :class:`DatasetSource`, or an error naming it."""
    where = f"{path}: source"
    if not isinstance(block, dict):
        raise SourceError(f"{where}: expected a mapping")
    missing = [k for k in ("dataset", "converter", "folder", "layout", "splits") if k not in block]
    if missing:
        raise SourceError(f"{where}: missing {', '.join(missing)}")
    unknown = sorted(set(block) - {"dataset", "converter", "folder", "layout", "splits",
                                   "published"})
    if unknown:
        raise SourceError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if block["layout"] not in LAYOUTS:
        raise SourceError(f"{where}.layout: {block['layout']!r} is not one of {LAYOUTS}")
    splits = block["splits"]
    if not isinstance(splits, list) or not splits or not all(isinstance(s, str) for s in splits):
        raise SourceError(f"{where}.splits: expected a list of split names")
    published = block.get("published") or {}
    if not isinstance(published, dict) or not set(published) <= set(splits):
        raise SourceError(f"{where}.published: expected split: [sentences, spans] for splits "
                          f"among {splits}")
    return DatasetSource(
        domain, str(block["dataset"]), str(block["converter"]), str(block["folder"]),
        block["layout"], tuple(splits),
        {split: _pair(n, f"{where}.published.{split}") for split, n in published.items()},
        path, str(Path(sentences).parent) if sentences else domain)


def load_sources(domains_dir: str | os.PathLike[str] = DOMAINS_DIR) -> Registry[DatasetSource]:
    """Every domain YAML under ``domains_dir`` with a ``source`` block, by domain name."""
    sources: Registry[DatasetSource] = Registry("dataset source")
    for path in sorted(Path(domains_dir).glob("*.yaml")):
        data = read_yaml_mapping(path)
        if "source" in data:
            domain = str(data.get("name") or path.stem)
            sources.add(domain, parse_source(domain, data["source"], path, data.get("sentences")))
    return sources


@cache
def dataset_sources() -> Registry[DatasetSource]:
    """The shipped benchmark domains' sources (read once per process)."""
    return load_sources(DOMAINS_DIR)


def published_test_counts(sources: Mapping[str, DatasetSource] | None = None
                          ) -> dict[str, tuple[int, int]]:
    """Domain -> (sentences, spans) of its published test split."""
    sources = dataset_sources() if sources is None else sources
    return {name: s.published["test"] for name, s in sources.items() if "test" in s.published}


def of_dataset(dataset: str, sources: Registry[DatasetSource] | None = None
               ) -> dict[str, DatasetSource]:
    """The sources of one download entry (``crossner``: its five domains), in file order."""
    sources = dataset_sources() if sources is None else sources
    return {name: s for name, s in sources.items() if s.dataset == dataset}
