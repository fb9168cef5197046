"""Load and validate the data in ``mappings/``: archetypes, the type projection, and domains.

The mappings are data, not code (YAML a researcher edits); this module is the one place that
reads them and refuses inconsistent content early, before any model is loaded.

``mappings/archetypes.yaml``::

    version: 1
    archetypes: {person: {definition: ...}, ...}      # order = order shown to models
    projection: {person: [actor, character, ...], ...} # archetype -> fine-grained source types
    dropped_types: [cardinal, ordinal, ...]            # number/time types removed before projection

``mappings/domains/<name>.yaml`` (or ``<name>/domain.yaml`` beside a ``sentences.jsonl``)::

    name: music
    labels: {album: {name: album, definition: ...}, ...}  # raw tag -> natural name, definition
    more_specific: {musicalartist: [person], ...}         # label -> labels it is a refinement of
    archetype_fallback: {person: person, ...}             # only for the w/o-calibration ablation
    sentences: crossner/music/test.jsonl                  # optional; relative to the data dir
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.io import ProjectError, read_yaml_mapping

MAPPINGS_DIR = Path(__file__).resolve().parent.parent / "mappings"
DOMAINS_DIR = MAPPINGS_DIR / "domains"
CROSSNER_DOMAINS = ("ai", "literature", "music", "politics", "science")


class MappingError(ProjectError):
    """Inconsistent mapping data; the message names the file and the offending entry."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that rejects duplicate keys: plain YAML silently keeps the last one, which
    would quietly drop half of an archetype's projection list or a label's definition."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    loader.flatten_mapping(node)
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def _body(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MappingError(f"{where}: expected a mapping, got {value!r}")
    return value


def _load_yaml(path: Path) -> dict[str, Any]:
    return read_yaml_mapping(path, MappingError, _UniqueKeyLoader)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MappingError(f"{where}: expected a non-empty string, got {value!r}")
    return value.strip()


@dataclass(frozen=True)
class Archetypes:
    version: int
    definitions: dict[str, str]
    projection: dict[str, str]  # fine type -> archetype
    dropped_types: frozenset[str]

    @property
    def names(self) -> list[str]:
        return list(self.definitions)

    def project(self, fine_type: str) -> str | None:
        """Archetype of a fine-grained type, or ``None`` when the table has no entry.

        Exact match only: the SPEC asks for unknown types to be reported, not guessed.
        """
        return self.projection.get(fine_type.strip())

    def is_dropped(self, fine_type: str) -> bool:
        return fine_type.strip() in self.dropped_types


def load_archetypes(path: str | os.PathLike[str] | None = None) -> Archetypes:
    path = Path(path) if path is not None else MAPPINGS_DIR / "archetypes.yaml"
    data = _load_yaml(path)
    raw_archetypes = data.get("archetypes")
    if not isinstance(raw_archetypes, dict) or not raw_archetypes:
        raise MappingError(f"{path}: 'archetypes' must be a non-empty mapping")
    definitions = {
        name: _text(_body(body, f"{path}: archetypes.{name}").get("definition"),
                    f"{path}: archetypes.{name}.definition")
        for name, body in raw_archetypes.items()
    }
    projection: dict[str, str] = {}
    raw_projection = data.get("projection") or {}
    if not isinstance(raw_projection, dict):
        raise MappingError(f"{path}: 'projection' must map archetype -> list of types")
    for archetype, fine_types in raw_projection.items():
        if archetype not in definitions:
            raise MappingError(f"{path}: projection.{archetype} is not a defined archetype")
        if not isinstance(fine_types, list):
            raise MappingError(f"{path}: projection.{archetype} must be a list")
        for fine in fine_types:
            fine = _text(fine, f"{path}: projection.{archetype}")
            if fine in projection and projection[fine] != archetype:
                raise MappingError(
                    f"{path}: type {fine!r} projects to both {projection[fine]!r} and {archetype!r}"
                )
            projection[fine] = archetype
    dropped = frozenset(_text(t, f"{path}: dropped_types") for t in data.get("dropped_types") or [])
    overlap = sorted(dropped & projection.keys())
    if overlap:
        raise MappingError(f"{path}: types both dropped and projected: {overlap}")
    return Archetypes(int(data.get("version", 1)), definitions, projection, dropped)


@dataclass(frozen=True)
class Label:
    tag: str  # the raw label as it appears in the data, e.g. "programlang"
    name: str  # natural-language name shown to models, e.g. "programming language"
    definition: str
    # The type name the stage-1 extractors are asked for, when it should differ from ``name``
    # (e.g. a training set's spelling, "organization" for our "organisation"); "" = ``name``.
    extract_as: str = ""


@dataclass(frozen=True)
class Domain:
    name: str
    labels: dict[str, Label]
    more_specific: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # archetype -> label, used only when calibration is switched off (ablation); others -> misc
    archetype_fallback: dict[str, str] = field(default_factory=dict)
    sentences: str | None = None  # path of the sentences JSONL, relative to the data dir
    source: Path | None = None
    # a file written by make refine: where its definitions came from (eval/refine.py)
    refined: dict[str, Any] | None = None

    def tag_lookup(self) -> dict[str, str]:
        """Lower-cased label name or raw tag -> raw tag (a raw tag wins a clash): how a model's
        answer naming a label is read back."""
        known = {label.name.lower(): tag for tag, label in self.labels.items()}
        known.update({tag.lower(): tag for tag in self.labels})
        return known

    def label_names(self, include_misc: bool = True) -> list[str]:
        return [tag for tag in self.labels if include_misc or tag != "misc"]

    def sentences_path(self, data_dir: str | os.PathLike[str] | None = None) -> Path:
        if not self.sentences:
            raise MappingError(f"{self.source}: domain {self.name!r} names no 'sentences' file")
        path = Path(self.sentences)
        if path.is_absolute():
            return path
        if self.source is not None and (self.source.parent / path).exists():
            return self.source.parent / path
        return Path(data_dir or "data") / path


def _domain_file(ref: str | os.PathLike[str]) -> Path:
    candidates = [Path(ref), Path(ref) / "domain.yaml"]
    if isinstance(ref, str) and os.sep not in ref and not ref.endswith((".yaml", ".yml")):
        candidates += [DOMAINS_DIR / f"{ref}.yaml", DOMAINS_DIR / ref / "domain.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    known = ", ".join(list_domains()) or "none"
    raise MappingError(f"unknown domain {str(ref)!r} (known domains: {known})")


def load_domain(ref: str | os.PathLike[str]) -> Domain:
    """Load a domain by name (``mappings/domains/``) or by path to its YAML file or folder."""
    path = _domain_file(ref)
    data = _load_yaml(path)
    raw_labels = data.get("labels")
    if not isinstance(raw_labels, dict) or not raw_labels:
        raise MappingError(f"{path}: 'labels' must be a non-empty mapping")
    labels = {}
    for tag, body in raw_labels.items():
        body = _body(body, f"{path}: labels.{tag}")
        labels[str(tag)] = Label(
            tag=str(tag),
            name=_text(body.get("name", tag), f"{path}: labels.{tag}.name"),
            definition=_text(body.get("definition"), f"{path}: labels.{tag}.definition"),
            extract_as=(_text(body["extract_as"], f"{path}: labels.{tag}.extract_as")
                        if body.get("extract_as") is not None else ""),
        )
    check_distinct_labels(path, labels)
    more_specific: dict[str, tuple[str, ...]] = {}
    for tag, general in (data.get("more_specific") or {}).items():
        general = [general] if isinstance(general, str) else list(general or [])
        for name in [tag, *general]:
            if name not in labels:
                raise MappingError(f"{path}: more_specific names unknown label {name!r}")
        if tag in general:
            raise MappingError(f"{path}: more_specific relates {tag!r} to itself")
        more_specific[str(tag)] = tuple(general)
    fallback = {str(k): str(v) for k, v in (data.get("archetype_fallback") or {}).items()}
    for archetype, label in fallback.items():
        if label not in labels:
            raise MappingError(
                f"{path}: archetype_fallback.{archetype} names unknown label {label!r}")
    default_name = path.parent.name if path.name == "domain.yaml" else path.stem
    name = str(data.get("name") or default_name)
    refined = data.get("refined") if isinstance(data.get("refined"), dict) else None
    return Domain(name, labels, more_specific, fallback, data.get("sentences"), path, refined)


def check_distinct_labels(path: Path, labels: dict[str, Label]) -> None:
    """Refuse two labels that answer to the same word. Calibration reads the model's answer by
    label name or raw tag, case-insensitively, so such a pair would map to one of them and the
    other could never be predicted."""
    owner: dict[str, str] = {}  # lower-cased name or tag -> the tag it stands for
    for tag, label in labels.items():
        for word in dict.fromkeys((label.name.lower(), tag.lower())):
            other = owner.setdefault(word, tag)
            if other != tag:
                raise MappingError(
                    f"{path}: labels {other!r} and {tag!r} both answer to {word!r} (names and "
                    f"tags match case-insensitively): one of them could never be predicted")


def list_domains() -> list[str]:
    if not DOMAINS_DIR.is_dir():
        return []
    names = {p.stem for p in DOMAINS_DIR.glob("*.yaml")}
    names |= {p.parent.name for p in DOMAINS_DIR.glob("*/domain.yaml")}
    return sorted(names)
