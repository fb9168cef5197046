"""The user's labels for NER on their own text: read, checked, and made into a domain.

Labels come as a YAML file (a list of names, or a mapping name -> definition) or, from Python, a
list of names or a dict. Without a definition a label's name stands in for it, so the calibrator
(stage 3) sees only the names, which costs it the hints a definition gives. Unless the labels
include ``misc``, a hidden ``misc`` label is offered to the calibrator (as CrossNER's domains
offer theirs), so a discovered mention that fits none of the labels is rejected instead of forced
into one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.io import DataError, ProjectError, not_utf8
from core.mappings import Archetypes

DOMAIN_NAME = "text"  # run files go to OUT/text/ (the pipeline names them after the domain)
MISC = "misc"
MISC_DEFINITION = "An entity that fits none of the other types."

Labels = str | os.PathLike[str] | Sequence[str] | Mapping[str, str | None]


class PredictError(ProjectError):
    """Unusable input or labels; the message names the file and line, or the argument."""


@dataclass(frozen=True)
class LabelEntry:
    where: str  # "labels.yaml:3" or "labels[2]": where the user wrote it
    name: str
    definition: str | None


def _yaml_entries(path: Path) -> list[tuple[str, Any, Any]]:
    """(``file:line``, name, definition) of a YAML list of names or mapping name -> definition."""
    raw = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise not_utf8(path, raw, exc) from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if isinstance(root, yaml.SequenceNode):
            return [(f"{path}:{node.start_mark.line + 1}", loader.construct_object(node, True),
                     None) for node in root.value]
        if isinstance(root, yaml.MappingNode):
            return [(f"{path}:{key.start_mark.line + 1}", loader.construct_object(key, True),
                     loader.construct_object(value, True)) for key, value in root.value]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise DataError(path, mark.line + 1 if mark else None,
                        f"invalid YAML ({exc.problem or exc.context})") from None
    finally:
        loader.dispose()
    if root is None:
        return []
    raise DataError(path, root.start_mark.line + 1, "expected a list of label names or a "
                    "mapping name: definition")


def read_labels(labels: Labels) -> list[LabelEntry]:
    """Checked label entries: names are non-empty one-line strings, unique case-insensitively
    (the calibrator's answer is read back case-insensitively), definitions text or empty."""
    if isinstance(labels, str | os.PathLike):
        if not Path(labels).is_file():
            hint = "" if isinstance(labels, os.PathLike) else " (to give names, pass a list)"
            raise PredictError(f"{labels}: labels file not found{hint}")
        where, raw = str(labels), _yaml_entries(Path(labels))
    elif isinstance(labels, Mapping):
        where, raw = "labels", [(f"labels[{k!r}]", k, v) for k, v in labels.items()]
    elif isinstance(labels, Sequence):
        where, raw = "labels", [(f"labels[{i}]", k, None) for i, k in enumerate(labels)]
    else:
        raise PredictError(f"labels: expected a path, a list or a mapping, got "
                           f"{type(labels).__name__}")
    if not raw:
        raise PredictError(f"{where}: no labels (write a list of names, or a mapping "
                           "name: definition)")
    entries: list[LabelEntry] = []
    seen: dict[str, LabelEntry] = {}
    for at, name, definition in raw:
        if not isinstance(name, str):
            shown = "an empty entry" if name is None else f"{name!r} ({type(name).__name__})"
            raise PredictError(f"{at}: a label name must be text, got {shown}; quote it in YAML")
        name = name.strip()
        if not name or len(name.splitlines()) != 1:
            raise PredictError(f"{at}: label name {name!r} is empty or spans several lines")
        if definition is not None and not isinstance(definition, str):
            raise PredictError(f"{at}: the definition of {name!r} must be text, got "
                               f"{type(definition).__name__}")
        first = seen.get(name.lower())
        if first:
            raise PredictError(f"{at}: duplicate label {name!r}: same as {first.name!r} at "
                               f"{first.where} (names compare case-insensitively)")
        entry = LabelEntry(at, name, (definition or "").strip() or None)
        seen[name.lower()] = entry
        entries.append(entry)
    if all(e.name.lower() == MISC for e in entries):
        raise PredictError(f"{where}: only {MISC!r}: give at least one label to look for")
    return entries


def domain_data(entries: Sequence[LabelEntry], archetypes: Archetypes) -> dict[str, Any]:
    """The on-the-fly domain: one label per entry (its name is also its tag; a label spelled
    misc in any case takes the tag ``misc``), the hidden ``misc`` when none was given, and the
    no-calibration fallback for labels named like an archetype."""
    labels = {(MISC if e.name.lower() == MISC else e.name):
              {"name": e.name, "definition": e.definition or e.name} for e in entries}
    labels.setdefault(MISC, {"name": MISC, "definition": MISC_DEFINITION})
    by_name = {body["name"].lower(): tag for tag, body in labels.items()}
    fallback = {a: by_name[a.lower()] for a in archetypes.names if a.lower() in by_name}
    return {"name": DOMAIN_NAME, "sentences": "sentences.jsonl", "labels": labels,
            "archetype_fallback": fallback}
