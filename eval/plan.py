"""``make infer DRY_RUN=1``: what a run would do, checked, without starting an engine.

Prints one line per data-parallel shard (``shard <i>: CUDA_VISIBLE_DEVICES=<ids>``), then what is
not there yet (adapters to train or fetch, a model dir, converted data) as ``missing:`` lines, so
a GPU job can be checked on a login node before it queues. A wrong config or an impossible
placement is still an error (exit 2); missing files are part of the plan (exit 0). Nothing is
written: the output dir is not even created.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from core.backbones import backbone_of
from core.devices import looks_local, visible_gpu_ids
from core.mappings import CROSSNER_DOMAINS, load_domain
from eval.config import (
    InferenceConfig,
    _build,
    ablation_output_dir,
    adapter_section,
    read_config_data,
    validate,
)
from eval.make_hints import adapter_command
from eval.placement import base_models, check_placement


def load_unchecked(path: str, overrides: Sequence[str]) -> InferenceConfig:
    """The config validated like ``load_config`` except for the files later steps make."""
    config = _build(InferenceConfig, read_config_data(path, overrides), "")
    validate(config, check_paths=False)
    return config


def missing_assets(config: InferenceConfig, config_path: str) -> list[str]:
    """What a real run needs and does not find, each with the command that makes it."""
    missing = []
    for role, adapter in config.adapters_by_role().items():
        if (Path(adapter.path) / "adapter_config.json").is_file():
            continue
        how = adapter_command(role, adapter, config_path)
        missing.append(f"{adapter_section(role)}: {adapter.path} has no adapter_config.json "
                       f"({how})")
    for model in base_models(config):
        if looks_local(model) and not (Path(model) / "config.json").is_file():
            missing.append(f"model: {model} is not a local model dir (build or download it)")
    for name in config.domains:
        path = load_domain(name).sentences_path(config.data_dir)
        if not path.is_file():
            how = "make data" if name in CROSSNER_DOMAINS else f"the {name} domain's sentences"
            missing.append(f"data: {path} not found ({how})")
    return missing


def hub_notes(config: InferenceConfig) -> list[str]:
    """Base models that come from the Hub: downloaded on first use; their heads are known only
    for a registered backbone (core/backbones.py)."""
    notes = []
    for model in base_models(config):
        if looks_local(model):
            continue
        revision = config.revision_of(model) or "unpinned"
        heads = ("the TP/attention-head check used the registered backbone's heads"
                 if backbone_of(model) else
                 "the TP/attention-head check is skipped (no local config.json)")
        notes.append(f"{model} (revision {revision}) is a Hub id: vLLM downloads it on first "
                     f"use; {heads}")
    return notes


def shard_lines(shards: list[list[str]]) -> list[str]:
    return [f"shard {i}: CUDA_VISIBLE_DEVICES={','.join(ids)}" if ids
            else f"shard {i}: CPU (no GPU visible)" for i, ids in enumerate(shards)]


def dry_run(config_path: str, overrides: Sequence[str], suffix: str | None = None,
            visible: Sequence[str] | None = None) -> int:
    """Print the plan; raises :class:`ConfigError` for what no later step can fix."""
    config = load_unchecked(config_path, overrides)
    visible = visible_gpu_ids() if visible is None else visible
    shards = check_placement(config, visible)
    out = ablation_output_dir(config.output_dir, suffix) if suffix else config.output_dir
    engine = config.engine
    where = f"{len(visible)} visible GPUs" if visible else "CPU"
    print(f"plan: {config_path} -> {out} (domains: {', '.join(config.domains)})")
    print(f"engine: DP={engine.data_parallel_size} x TP={engine.tensor_parallel_size} on {where}")
    for line in shard_lines(shards):
        print(line)
    for note in hub_notes(config):
        print(f"note: {note}")
    for item in missing_assets(config, config_path):
        print(f"missing: {item}")
    print("dry run: no engine started, nothing written")
    return 0
