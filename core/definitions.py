"""Label definitions chosen per run (``DEFINITIONS=...``), in place of a domain file's defaults.

The default definitions of a domain live in its own file (``mappings/domains/<name>.yaml``):
guideline-style text with no string from any test split, the paper's setting. A run may take its
definitions from elsewhere, and says so in ``run.json`` and at the top of its report:

* a shipped variant by name, from ``mappings/definitions/<name>.yaml`` (``train_examples``: the
  definitions with in-domain train-split examples; research only, not the paper's setting);
* any file by path, in one of two layouts, told apart by their top level:

  - this repository's (YAML or JSON)::

        setting: in_domain_train_examples   # what kind of text this is (see SETTINGS)
        description: ...                    # shown in run.json
        domains:
          ai:
            algorithm: A named computational method ...      # a definition, or
            task: {name: task, definition: ...}              # a name and a definition

  - the SAM-NER authors' (their ``schema_define_crossNER.json``): a JSON object of domain ->
    {raw tag -> definition}. The authors' text is not shipped; a user who has the file passes its
    path (``DEFINITIONS=path/to/schema_define_crossNER.json``).

A domain the file does not list keeps its defaults (recorded per domain in ``run.json``). A domain
it lists must define every one of that domain's labels and no other: a missing or unknown raw tag
is an error before any model loads.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.io import read_json_mapping, read_yaml_mapping, sha256_of
from core.mappings import MAPPINGS_DIR, Domain, MappingError, check_distinct_labels

VARIANTS_DIR = MAPPINGS_DIR / "definitions"

# What a definitions file holds, and whether a run with it is in the paper's setting.
SETTINGS = {
    "guidelines": "guideline-style definitions, no test-split string (the paper's setting)",
    "in_domain_train_examples": "definitions with in-domain train examples: not the paper's "
                                "setting",
    "external": "definitions from a file outside this repository (e.g. the authors'): not "
                "checked by this repository's zero-shot rule",
}
PAPER_SETTINGS = ("guidelines",)


class DefinitionsError(MappingError):
    """A definitions file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class LabelText:
    definition: str
    name: str = ""  # "" = keep the domain's name for the label


@dataclass(frozen=True)
class Definitions:
    source: Path
    sha256: str
    layout: str  # "samner" | "authors"
    setting: str  # a key of SETTINGS
    description: str
    domains: dict[str, dict[str, LabelText]]  # domain -> raw tag -> text

    @property
    def paper_setting(self) -> bool:
        return self.setting in PAPER_SETTINGS

    def record(self) -> dict[str, Any]:
        """What ``run.json`` keeps of the file (its content by hash)."""
        return {"source": str(self.source), "sha256": self.sha256, "layout": self.layout,
                "setting": self.setting, "setting_means": SETTINGS[self.setting],
                "paper_setting": self.paper_setting, "description": self.description}


def _read(path: Path) -> dict[str, Any]:
    if path.suffix.lower() == ".json":
        return read_json_mapping(path, DefinitionsError)
    return read_yaml_mapping(path, DefinitionsError)


def _label_text(value: Any, where: str) -> LabelText:
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"name", "definition"})
        if unknown:
            raise DefinitionsError(f"{where}: unknown keys {unknown} (name, definition)")
        value, name = value.get("definition"), value.get("name", "")
        if not isinstance(name, str):
            raise DefinitionsError(f"{where}.name: expected a string, got {name!r}")
    else:
        name = ""
    if not isinstance(value, str) or not value.strip():
        raise DefinitionsError(f"{where}: expected a non-empty definition, got {value!r}")
    return LabelText(" ".join(value.split()), name.strip())


def resolve(ref: str | os.PathLike[str]) -> Path:
    """A variant name (``mappings/definitions/<name>.yaml``) or a path."""
    path = Path(ref)
    if path.is_file():
        return path
    variant = VARIANTS_DIR / f"{ref}.yaml"
    if isinstance(ref, str) and os.sep not in ref and variant.is_file():
        return variant
    known = ", ".join(sorted(p.stem for p in VARIANTS_DIR.glob("*.yaml"))) or "none"
    raise DefinitionsError(f"definitions {str(ref)!r}: no such file and no such variant "
                           f"(shipped variants: {known})")


def load_definitions(ref: str | os.PathLike[str]) -> Definitions:
    """Read a definitions file (either layout, see the module docstring)."""
    path = resolve(ref)
    data = _read(path)
    if "domains" in data:
        layout, body = "samner", data["domains"]
        unknown = sorted(set(data) - {"setting", "description", "domains"})
        if unknown:
            raise DefinitionsError(f"{path}: unknown top-level keys {unknown} "
                                   "(setting, description, domains)")
        setting = data.get("setting", "external")
        if setting not in SETTINGS:
            raise DefinitionsError(f"{path}: setting {setting!r} is not one of "
                                   f"{', '.join(SETTINGS)}")
        description = str(data.get("description") or "").strip()
    else:
        layout, body, setting = "authors", data, "external"
        description = "SAM-NER authors' layout: domain -> raw tag -> definition"
    if not isinstance(body, dict) or not body:
        raise DefinitionsError(f"{path}: no domain defined")
    domains: dict[str, dict[str, LabelText]] = {}
    for domain, labels in body.items():
        if not isinstance(labels, dict) or not labels:
            raise DefinitionsError(f"{path}: {domain}: expected a mapping raw tag -> definition")
        domains[str(domain)] = {str(tag): _label_text(text, f"{path}: {domain}.{tag}")
                                for tag, text in labels.items()}
    return Definitions(path, sha256_of(path), layout, setting, description, domains)


def definitions_origin(definitions: Definitions | None, domain_name: str) -> str:
    """Where a domain's definitions come from: ``"file"``, or ``"default"`` (no file, or a file
    that does not list the domain)."""
    return "file" if definitions is not None and domain_name in definitions.domains \
        else "default"


def apply_definitions(domain: Domain, definitions: Definitions | None) -> tuple[Domain, str]:
    """The domain with the file's definitions (and names, where given) for its labels, and where
    they came from (:func:`definitions_origin`)."""
    if definitions is None or definitions_origin(definitions, domain.name) == "default":
        return domain, "default"
    given = definitions.domains[domain.name]
    missing = [tag for tag in domain.labels if tag not in given]
    unknown = [tag for tag in given if tag not in domain.labels]
    if missing or unknown:
        problems = ([f"missing labels {missing}"] if missing else []) + (
            [f"labels not in the domain {unknown}"] if unknown else [])
        raise DefinitionsError(f"{definitions.source}: {domain.name}: {'; '.join(problems)} "
                               f"(the domain's labels: {', '.join(domain.labels)})")
    labels = {tag: dataclasses.replace(label, definition=given[tag].definition,
                                       name=given[tag].name or label.name)
              for tag, label in domain.labels.items()}
    check_distinct_labels(definitions.source, labels)
    return dataclasses.replace(domain, labels=labels), "file"

