"""The config of ``make refine`` (``recipes/refine/*.yaml``), checked before any model loads.

Annotators and the supervisor are data: each annotator is an inference config
(``recipes/infer/*.yaml``) plus ``key=value`` overrides (another base model, another extractor
set, another calibrator template); the supervisor is a base model with its chat template, run on
the engine of one annotator (``supervisor.annotator``: that annotator's base model, no adapter)
or on an engine of its own built from an inference config's engine and sampling settings
(``supervisor.config``, ``supervisor.model``). See :mod:`eval.refine` for the loop.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.io import ConfigError, read_yaml_mapping
from core.overrides import apply_overrides
from core.templates import TEMPLATES
from eval.config import InferenceConfig, _build, load_config
from eval.plan import load_unchecked

PILOT_SPLITS = ("train", "dev")  # never test: zero-shot means zero


@dataclass
class AnnotatorConfig:
    config: str = ""  # an inference config (recipes/infer/*.yaml)
    overrides: list[str] = field(default_factory=list)  # its key=value overrides


@dataclass
class PilotConfig:
    split: str = "dev"  # the domain's unlabelled train or dev sentences (their gold is not read)
    limit: int = 20  # the first N sentences (LIMIT=)
    input: str = ""  # or the user's own text (INPUT=): a file, a folder of .txt or .jsonl


@dataclass
class SupervisorConfig:
    annotator: str = ""  # run on this annotator's engine: its base model, no adapter
    config: str = ""  # or on an engine of its own, with this inference config's settings
    model: str = ""  # its base model (default: the annotator's or the config's model)
    template: str = ""  # its chat template (default: that config's calibrator_template)
    max_tokens: int = 1024  # answer budget of one revision
    max_definition_chars: int = 400  # the JSON schema bounds each definition (a weak model runs on)
    disagreements_shown: int = 20  # the bounded sample of disagreements in its prompt


@dataclass
class RefineConfig:
    rounds: int = 2  # supervisor revisions (ROUNDS=); round 0 measures the given definitions
    stop_when_flat: bool = True  # stop when a round's agreement does not rise above the last
    keep_engines: bool = True  # false: each engine starts and stops within a round (one GPU)
    output_dir: str = "runs/refine/default"
    data_dir: str = ""  # default: the first annotator's data_dir
    pilot: PilotConfig = field(default_factory=PilotConfig)
    annotators: dict[str, AnnotatorConfig] = field(default_factory=dict)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)


@dataclass
class Refine:
    """A checked refine config: its settings and each annotator's loaded inference config."""

    settings: RefineConfig
    annotators: dict[str, InferenceConfig]
    supervisor: InferenceConfig  # whose engine and sampling the supervisor uses
    supervisor_model: str
    supervisor_template: str
    source: str


def load_refine_config(path: str | os.PathLike[str], overrides: Sequence[str] = (),
                       check_paths: bool = True) -> Refine:
    """Read, override and check a refine config and every inference config it names; every
    problem is reported at once, before a model loads. ``check_paths=False`` skips what later
    steps make (adapters, models), as ``make infer DRY_RUN=1`` does."""
    load = load_config if check_paths else load_unchecked
    data = apply_overrides(read_yaml_mapping(path, ConfigError), list(overrides), ConfigError)
    settings: RefineConfig = _build(RefineConfig, data, "")
    problems: list[str] = []
    if settings.rounds < 1:
        problems.append("rounds: must be >= 1 (a round is one revision by the supervisor)")
    if settings.pilot.split not in PILOT_SPLITS:
        problems.append(f"pilot.split: {settings.pilot.split!r} is not one of {PILOT_SPLITS}: "
                        "pilot texts are unlabelled train or dev sentences, never the test split")
    if settings.pilot.limit < 1:
        problems.append("pilot.limit: must be >= 1 sentences")
    if len(settings.annotators) < 2:
        problems.append(f"annotators: {len(settings.annotators)} given; agreement needs at "
                        "least two")
    annotators: dict[str, InferenceConfig] = {}
    for name, annotator in settings.annotators.items():
        if not annotator.config:
            problems.append(f"annotators.{name}.config: no inference config given")
            continue
        try:
            annotators[name] = load(annotator.config, annotator.overrides)
        except ConfigError as exc:
            problems.append(f"annotators.{name} ({annotator.config}): "
                            + str(exc).replace("\n", "\n  "))
            continue
        if annotators[name].definitions:  # they would stand in for the ones being refined
            problems.append(f"annotators.{name}: definitions={annotators[name].definitions!r} "
                            "replaces the domain file's definitions, which refine revises; "
                            "drop it")
    sup = settings.supervisor
    supervisor: InferenceConfig | None = None
    if bool(sup.annotator) == bool(sup.config):
        problems.append("supervisor: name exactly one of annotator (share its engine) or "
                        "config (an engine of its own)")
    elif sup.annotator:
        if sup.annotator not in settings.annotators:
            problems.append(f"supervisor.annotator: {sup.annotator!r} is not an annotator "
                            f"(annotators: {sorted(settings.annotators)})")
        supervisor = annotators.get(sup.annotator)
        if sup.model and supervisor is not None and sup.model != supervisor.model:
            problems.append(f"supervisor.model: {sup.model!r} is not the base model of "
                            f"annotator {sup.annotator!r} ({supervisor.model}); give "
                            "supervisor.config for an engine of its own")
    else:
        try:
            supervisor = load(sup.config, [])
        except ConfigError as exc:
            problems.append(f"supervisor.config ({sup.config}): "
                            + str(exc).replace("\n", "\n  "))
    template = sup.template or (supervisor.calibrator_template if supervisor else "")
    if supervisor is not None and template not in TEMPLATES:
        problems.append(f"supervisor.template: unknown {template!r} (known: {sorted(TEMPLATES)})")
    for key in ("max_tokens", "max_definition_chars", "disagreements_shown"):
        if getattr(sup, key) < 1:
            problems.append(f"supervisor.{key}: must be >= 1")
    if problems:
        raise ConfigError("invalid refine config " + str(path) + ":\n  " + "\n  ".join(problems))
    assert supervisor is not None
    first = next(iter(annotators.values()))
    settings.data_dir = settings.data_dir or first.data_dir
    return Refine(settings, annotators, supervisor, sup.model or supervisor.model, template,
                  str(path))


def settings_dict(refine: Refine) -> dict[str, Any]:
    """What ``OUT/refine.yaml`` records: the refine settings and each annotator's full config."""
    import dataclasses

    return {"refine": dataclasses.asdict(refine.settings),
            "annotators": {name: c.to_dict() for name, c in refine.annotators.items()},
            "supervisor": {"model": refine.supervisor_model,
                           "template": refine.supervisor_template,
                           "engine_settings": refine.supervisor.to_dict()}}
