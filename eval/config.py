"""The inference config (``recipes/infer/*.yaml``): load, apply ``key=value`` overrides, validate.

Everything about a run lives in this config (base model, adapters and their templates, sampling,
CCR rule, ablation switches, domains, paths, engine settings), so a run is reproduced from its
saved ``config.yaml``. Validation happens here, before any model loads: an unknown key (with a
suggestion), a wrong type, an unknown template, CCR rule or domain, a missing adapter directory.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.backbones import template_problems
from core.definitions import apply_definitions, load_definitions
from core.io import ConfigError, read_yaml_mapping
from core.mappings import MappingError, load_domain
from core.overrides import apply_overrides
from core.prompt_formats import PROMPT_FORMATS
from core.register import adapter_rank
from core.templates import TEMPLATES
from eval import consensus
from eval.make_hints import adapter_command

CALIBRATION_MODES = ("per_mention",)
# What the extractors are asked for: each label's extractor name (``extract_as``, else its
# ``name``; the default) or the raw data tags such as "musicalartist" (the authors' code).
TYPE_NAMES = ("label", "raw_tag")
RESERVED_NAMES = ("classifier", "direct_classifier", "calibrator", "discovery")  # not extractors
# Stage 2's typing. archetypes (the paper's pipeline): the archetype classifier, then calibration
# (or, with calibration.enabled=false, each domain's archetype_fallback lookup). direct (the
# paper's w/o-calibration ablation): a classifier trained on IEPile's own fine type names picks
# one target label per mention among the domain's label names; there is no stage 3.
TYPING_MODES = ("archetypes", "direct")
# The config section of each stage-2 adapter role (extractors live under extractors.<name>).
STAGE2_SECTIONS = {"classifier": "classifier_adapter",
                   "direct_classifier": "direct_classifier_adapter"}
OLD_STYLE = {
    "anchor_adapter": "extractors.anchor", "explorer_adapter": "extractors.explorer",
    "ccr": "consensus (rule: ccr, corroborator: anchor; rule none -> union)",
    "anchor": "iepile (instruction, split_num)",
}


@dataclass
class AdapterConfig:
    path: str = ""  # local PEFT dir (vLLM loads adapters from disk)
    template: str = "llama3"  # the LlamaFactory template the adapter was trained with
    enabled: bool = True
    hub_id: str = ""  # where `make models` downloads it from when path is missing
    revision: str = ""  # the hub_id commit `make models` fetches (required to download)
    # The adapter's own base model when it differs from `model` (the Qwen setup keeps the
    # Llama3 IEPile anchor): that stage then runs first on a separate engine of its base.
    base_model: str = ""
    base_model_revision: str = ""  # the Hub commit of base_model


@dataclass
class ExtractorConfig(AdapterConfig):
    """One stage-1 extractor: an adapter (``path`` "" = the base model itself, no adapter), the
    template it was trained with, and how it is asked (``prompt``: a name of
    ``core.prompt_formats.PROMPT_FORMATS``)."""

    prompt: str = "explorer"


def paper_extractors() -> dict[str, ExtractorConfig]:
    """The paper's pair: the precise IEPile anchor and the recall-oriented explorer."""
    return {"anchor": ExtractorConfig(template="iepile", prompt="iepile"),
            "explorer": ExtractorConfig(template="llama3", prompt="explorer")}


@dataclass
class IEPileConfig:
    # IEPile's English NER instruction (ie2instruction/convert/utils/instruction.py, key NER/en):
    # the exact interface the public IEPile LoRA was trained on, so it is quoted, not reworded.
    instruction: str = (
        "You are an expert in named entity recognition. Please extract entities that match the "
        "schema definition from the input. Return an empty list if the entity type does not "
        "exist. Please respond in the format of a JSON string."
    )
    # IEPile's NER schema split (split_num): chunks of 6 types, a remainder of fewer than 3
    # joins the last chunk; null = the whole type list in one query (the authors' code).
    split_num: int | None = 6


@dataclass
class ExtractionConfig:
    # Constrain stage-1 answers with a JSON schema whose mentions must be word n-grams of the
    # sentence (vLLM structured outputs). Off for the paper setup (the adapters answer freely);
    # on, a weak model can only answer well-formed JSON of real spans (runs of consecutive
    # words, at most max_span_words long; None = any length, the cheapest grammar to compile).
    constrain_to_spans: bool = False
    max_span_words: int | None = None
    max_mentions_per_type: int = 8
    type_names: str = "label"  # see TYPE_NAMES


@dataclass
class ConsensusConfig:
    # How the extractors' mentions are joined (eval/consensus.py RULES). ccr: the authors' CCR,
    # a one-token mention of another extractor needs the corroborator's same string.
    rule: str = "ccr"
    corroborator: str = "anchor"  # ccr: the extractor whose strings corroborate
    scope: str = "single_token"  # ccr/vote: which mentions need support (single_token | all)
    min_votes: int = 2  # vote: how many extractors must have found a mention


@dataclass
class CalibrationConfig:
    enabled: bool = True
    mode: str = "per_mention"  # one constrained choice per mention (paper eq. 12)


@dataclass
class SamplingConfig:
    temperature: float = 0.0  # greedy: reproducible, and what structured choices need
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    max_tokens_extract: int = 1024
    max_tokens_classify: int = 1024
    max_tokens_calibrate: int = 16


@dataclass
class EngineConfig:
    backend: str = "vllm"  # vllm | fake (tests)
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    dtype: str = "auto"
    max_model_len: int = 4096
    gpu_memory_utilization: float = 0.9
    enable_prefix_caching: bool = True
    # KV-cache block size = the granularity of prefix-cache reuse. vLLM's CPU default of 128
    # re-prefills up to 127 tokens of every shared prompt head; 32 took the demo's hit rate from
    # 73% to 80% and its inference from 458 s to 372 s. None = vLLM's default (16 on GPU).
    block_size: int | None = None
    max_num_seqs: int = 256
    cpu_kv_cache_gb: int = 4  # VLLM_CPU_KVCACHE_SPACE on CPU machines
    # Cores vLLM keeps away from its CPU worker (VLLM_CPU_NUM_OF_RESERVED_CPU); vLLM reserves
    # one by default, which on a 2-core machine leaves the model a single core. None = default.
    cpu_reserved_cores: int | None = None
    # Run engine core and worker inside this process (TP=1 only): saves two process starts,
    # each importing vLLM, which is most of a small CPU run; GPU runs keep the default.
    single_process: bool = False
    # vLLM's CPU LoRA ops copy the adapter per token; eval/cpu_lora.py groups rows by adapter
    # (same results, prefill many times faster). Applies where the model runs in this process.
    cpu_grouped_lora: bool = True
    seed: int = 0
    chunk_size: int = 256  # requests per saved chunk: the resume granularity
    extra: dict[str, Any] = field(default_factory=dict)  # passed to vllm.LLM as is


@dataclass
class DocumentsConfig:
    # Recognizer / make predict: a document is read in windows of whole sentences of at most
    # this many model tokens (fewer where a stage's prompt and answer would not fit the model)
    window_tokens: int = 256


@dataclass
class InferenceConfig:
    model: str = ""
    model_revision: str = ""  # the Hub commit of `model` (a local dir has none)
    calibrator_template: str = "llama3"
    # stage 1, in order: name -> extractor (the names key stage files, LoRA slots and ablations)
    extractors: dict[str, ExtractorConfig] = field(default_factory=paper_extractors)
    classifier_adapter: AdapterConfig = field(default_factory=AdapterConfig)
    # the direct-typing classifier (recipes/train/direct-classifier-*.yaml); loaded and asked
    # only with typing: direct
    direct_classifier_adapter: AdapterConfig = field(default_factory=AdapterConfig)
    typing: str = "archetypes"  # see TYPING_MODES
    iepile: IEPileConfig = field(default_factory=IEPileConfig)
    extraction: ExtractionConfig = field(default_factory=ExtractionConfig)
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    documents: DocumentsConfig = field(default_factory=DocumentsConfig)
    domains: list[str] = field(default_factory=lambda: ["ai", "literature", "music", "politics",
                                                        "science"])
    # label definitions in place of the domain files' defaults: a variant name under
    # mappings/definitions/ or a file path (core/definitions.py); "" = the defaults
    definitions: str = ""
    data_dir: str = "data"
    limit: int | None = None
    # first N sentences of these domains, beating `limit` (make demo: CrossNER as a taste)
    domain_limits: dict[str, int] = field(default_factory=dict)
    output_dir: str = "runs/default"

    def active_extractors(self) -> dict[str, ExtractorConfig]:
        return {name: e for name, e in self.extractors.items() if e.enabled}

    def stage2_role(self) -> str:
        """Who answers stage 2: "classifier" (archetypes) or "direct_classifier" (direct)."""
        return "direct_classifier" if self.typing == "direct" else "classifier"

    def stage2_adapter(self) -> AdapterConfig:
        return getattr(self, STAGE2_SECTIONS[self.stage2_role()])

    def adapters_by_role(self) -> dict[str, AdapterConfig]:
        """Every enabled LoRA adapter the run asks, by role (extractor names, then the stage-2
        role: "classifier", or "direct_classifier" with typing: direct), whatever its base
        model; an extractor without a ``path`` is the base model itself and has none."""
        roles: dict[str, AdapterConfig] = {n: e for n, e in self.active_extractors().items()
                                           if e.path}
        if self.stage2_adapter().enabled:
            roles[self.stage2_role()] = self.stage2_adapter()
        return roles

    def adapters(self, base: str | None = None) -> dict[str, AdapterConfig]:
        """Enabled adapters by role whose base model is ``base`` (default: ``model``); the
        calibrator is the frozen base and has none."""
        base = base or self.model
        return {role: a for role, a in self.adapters_by_role().items()
                if (a.base_model or self.model) == base}

    def revision_of(self, model: str) -> str:
        """The pinned Hub commit of a base model this config runs ("" = unpinned or local)."""
        if model == self.model:
            return self.model_revision
        return next((e.base_model_revision for e in self.extractors.values()
                     if e.base_model == model and e.base_model_revision), "")

    def foreign_bases(self) -> dict[str, str]:
        """Extractors that need an engine of another base model: name -> base model."""
        return {name: e.base_model for name, e in self.active_extractors().items()
                if e.base_model and e.base_model != self.model}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, data: Any, where: str) -> Any:
    """Construct dataclass ``cls`` from a mapping, checking keys and scalar types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
        kwargs[key] = _coerce(hints[key], value, f"{where}.{key}" if where else key)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value or {}, where)
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        return _coerce(next(o for o in options if o is not type(None)), value, where)
    if origin is list:
        if isinstance(value, str):
            value = value.split(",")  # DOMAINS=music,ai on the command line
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [str(v).strip() for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        item = typing.get_args(hint)[1] if typing.get_args(hint) else Any
        if dataclasses.is_dataclass(item):  # e.g. extractors: name -> ExtractorConfig
            return {str(k): _build(item, v or {}, f"{where}.{k}") for k, v in value.items()}
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if hint is int and value != int(value):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return hint(value)
    if hint is str:
        if not isinstance(value, str | int | float):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def read_config_data(path: str | os.PathLike[str], overrides: Sequence[str] = ()
                     ) -> dict[str, Any]:
    """The config's mapping with overrides applied; an old-style config (fixed anchor/explorer
    fields) is refused with how to convert it. Without an ``extractors`` section the paper's
    pair is written in first, so ``extractors.anchor.enabled=false`` works on any config."""
    data = read_yaml_mapping(path, ConfigError)
    fresh = "extractors" not in data
    data = apply_overrides(data, list(overrides), ConfigError)
    old = [key for key in OLD_STYLE if key in data]
    if old:
        moves = "; ".join(f"{key} -> {OLD_STYLE[key]}" for key in old)
        raise ConfigError(
            f"{path}: old-style config ({', '.join(old)}): stage 1 is now a list of extractors. "
            f"Move {moves}; each extractor needs `prompt` ({' | '.join(PROMPT_FORMATS)}). "
            "See recipes/infer/llama3-8b.yaml")
    if fresh:  # overrides of single extractor fields refine the paper's pair, not replace it
        given = data.pop("extractors", None) or {}
        data["extractors"] = {name: dataclasses.asdict(e)
                              for name, e in paper_extractors().items()}
        for name, fields in given.items():
            data["extractors"].setdefault(name, {}).update(fields or {})
    return data


def ablation_output_dir(output_dir: str, ablation: str) -> str:
    """Where ``make infer ABLATION=<name>`` writes without OUT: the output_dir, ``-<name>``."""
    return f"{output_dir.rstrip('/')}-{ablation}"


def load_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> InferenceConfig:
    """Read, override and validate an inference config; raises :class:`ConfigError`."""
    config = _build(InferenceConfig, read_config_data(path, overrides), "")
    validate(config, check_paths=config.engine.backend != "fake", source=path)
    return config


def _stage1_problems(config: InferenceConfig) -> list[str]:
    """Extractor entries and the consensus rule, against their registries."""
    problems = []
    for name, extractor in config.extractors.items():
        if name in RESERVED_NAMES or not name.replace("_", "").replace("-", "").isalnum():
            problems.append(f"extractors.{name}: not a usable extractor name (letters, digits, "
                            f"- and _; not one of {RESERVED_NAMES})")
        if extractor.prompt not in PROMPT_FORMATS:
            problems.append(f"extractors.{name}.prompt: unknown {extractor.prompt!r} "
                            f"(known: {', '.join(PROMPT_FORMATS)})")
        if extractor.hub_id and not extractor.path:
            problems.append(f"extractors.{name}: hub_id needs a path to download to")
    active = config.active_extractors()
    if not active:
        problems.append("extractors: stage 1 needs at least one enabled extractor")
    rule = config.consensus
    if rule.rule not in consensus.RULES:
        problems.append(f"consensus.rule: unknown {rule.rule!r} (known: "
                        f"{', '.join(consensus.RULES)})")
        return problems
    params = consensus.RULES[rule.rule].params
    if "corroborator" in params and rule.corroborator not in config.extractors:
        problems.append(f"consensus.corroborator: {rule.corroborator!r} is not an extractor "
                        f"(extractors: {', '.join(config.extractors)})")
    if "scope" in params and rule.scope not in consensus.SCOPES:
        problems.append(f"consensus.scope: unknown {rule.scope!r} (known: {consensus.SCOPES})")
    if "min_votes" in params and not 1 <= rule.min_votes <= max(len(active), 1):
        problems.append(f"consensus.min_votes: {rule.min_votes} must be between 1 and the "
                        f"{len(active)} enabled extractors")
    return problems


def _engine_and_sampling_problems(config: InferenceConfig) -> list[str]:
    """Values vLLM would reject only after the model loaded (or deep inside, with a traceback)."""
    problems = []
    sampling, engine = config.sampling, config.engine
    for name in ("max_tokens_extract", "max_tokens_classify", "max_tokens_calibrate"):
        if getattr(sampling, name) < 1:
            problems.append(f"sampling.{name} must be >= 1, got {getattr(sampling, name)}")
    if sampling.temperature < 0:
        problems.append(f"sampling.temperature must be >= 0, got {sampling.temperature}")
    if not 0 < sampling.top_p <= 1:
        problems.append(f"sampling.top_p must be in (0, 1], got {sampling.top_p}")
    if sampling.repetition_penalty <= 0:
        problems.append("sampling.repetition_penalty must be > 0, got "
                        f"{sampling.repetition_penalty}")
    for name in ("tensor_parallel_size", "data_parallel_size", "max_model_len", "max_num_seqs",
                 "cpu_kv_cache_gb"):
        if getattr(engine, name) < 1:
            problems.append(f"engine.{name} must be >= 1, got {getattr(engine, name)}")
    if config.documents.window_tokens < 1:
        problems.append(f"documents.window_tokens must be >= 1, got "
                        f"{config.documents.window_tokens}")
    if not 0 < engine.gpu_memory_utilization <= 1:
        problems.append("engine.gpu_memory_utilization must be in (0, 1], got "
                        f"{engine.gpu_memory_utilization}")
    return problems


def adapter_section(role: str) -> str:
    """Where a role's adapter lives in the config: ``classifier_adapter``,
    ``direct_classifier_adapter`` or ``extractors.<name>``."""
    return STAGE2_SECTIONS.get(role, f"extractors.{role}")


def _stage2_problems(config: InferenceConfig) -> list[str]:
    """The typing mode and the stage-2 adapters (shared base model, not switched off)."""
    problems = []
    if config.typing not in TYPING_MODES:
        problems.append(f"typing: unknown {config.typing!r} (known: {', '.join(TYPING_MODES)})")
        return problems
    for section in STAGE2_SECTIONS.values():
        if getattr(config, section).base_model not in ("", config.model):
            problems.append(f"{section}.base_model: the classifier must share the calibrator's "
                            "base model (only extractors may use another one)")
    section = adapter_section(config.stage2_role())
    if not config.stage2_adapter().enabled:
        problems.append(f"{section}: stage 2 cannot be disabled")
    if config.typing == "direct" and config.calibration.enabled:
        problems.append("typing: direct types the mentions in stage 2 and has no calibration "
                        "stage: set calibration.enabled=false too (ABLATION=no-calibration "
                        "sets both)")
    return problems


def _backbone_template_problems(config: InferenceConfig) -> list[str]:
    """The calibrator and the stage-2 adapters share the base model: its chat template."""
    return template_problems(config.model, {
        "calibrator_template": config.calibrator_template,
        **{f"{section}.template": getattr(config, section).template
           for section in STAGE2_SECTIONS.values() if getattr(config, section).enabled}})


def validate(config: InferenceConfig, check_paths: bool = True,
             source: str | os.PathLike[str] = "") -> None:
    problems = []
    if not config.model and config.engine.backend != "fake":
        problems.append("model: no base model given")
    templated = {**config.extractors, **{role: getattr(config, section)
                                         for role, section in STAGE2_SECTIONS.items()}}
    for role, adapter in templated.items():
        if adapter.enabled and adapter.template not in TEMPLATES:
            problems.append(f"{adapter_section(role)}.template: unknown {adapter.template!r} "
                            f"(known: {sorted(TEMPLATES)})")
    if check_paths:
        for role, adapter in config.adapters_by_role().items():
            if not adapter.path:
                problems.append(f"{adapter_section(role)}.path: not set (the trained adapter's "
                                "directory)")
                continue
            if not (Path(adapter.path) / "adapter_config.json").is_file():
                problems.append(f"{adapter_section(role)}.path: adapter {adapter.path}: no "
                                f"adapter_config.json ({adapter_command(role, adapter, source)})")
                continue
            try:
                adapter_rank(adapter.path)
            except ConfigError as exc:
                problems.append(f"{adapter_section(role)}.path: {exc}")
    problems += _stage1_problems(config)
    if config.calibrator_template not in TEMPLATES:
        problems.append(f"calibrator_template: unknown {config.calibrator_template!r}")
    problems += _backbone_template_problems(config)
    problems += _stage2_problems(config)
    if config.calibration.mode not in CALIBRATION_MODES:
        problems.append(f"calibration.mode: unknown {config.calibration.mode!r}")
    if config.iepile.split_num is not None and config.iepile.split_num < 1:
        problems.append("iepile.split_num must be >= 1 or null (no split)")
    if config.extraction.type_names not in TYPE_NAMES:
        problems.append(f"extraction.type_names: unknown {config.extraction.type_names!r} "
                        f"(known: {TYPE_NAMES})")
    problems += _engine_and_sampling_problems(config)
    extraction = config.extraction
    if (extraction.max_span_words is not None and extraction.max_span_words < 1) \
            or extraction.max_mentions_per_type < 1:
        problems.append("extraction: max_span_words and max_mentions_per_type must be >= 1")
    if config.engine.single_process and config.engine.tensor_parallel_size > 1:
        problems.append("engine.single_process needs tensor_parallel_size 1")
    block = config.engine.block_size
    if block is not None and (block < 16 or block % 16):  # what vLLM's attention kernels take
        problems.append(f"engine.block_size: {block} is not a positive multiple of 16 "
                        "(or null for vLLM's default)")
    if config.engine.chunk_size < 1:
        problems.append("engine.chunk_size must be >= 1")
    if config.limit is not None and config.limit < 1:
        problems.append("limit must be >= 1 or null")
    for name, limit in config.domain_limits.items():
        if not isinstance(limit, int) or limit < 1:
            problems.append(f"domain_limits.{name} must be an integer >= 1")
        if name not in config.domains:
            problems.append(f"domain_limits.{name}: {name} is not among domains")
    definitions = None
    if config.definitions:
        try:
            definitions = load_definitions(config.definitions)
        except MappingError as exc:
            problems.append(f"definitions: {exc}")
    for name in config.domains:
        try:
            domain = load_domain(name)
        except MappingError as exc:
            problems.append(f"domains: {exc}")
            continue
        try:
            apply_definitions(domain, definitions)
        except MappingError as exc:
            problems.append(f"definitions: {exc}")
    if config.engine.backend != "fake":  # GPUs, DP x TP, attention heads: eval/placement.py
        from core.devices import visible_gpu_ids
        from eval.placement import placement_problems

        problems += placement_problems(config, visible_gpu_ids())
    if problems:
        raise ConfigError("invalid inference config:\n  " + "\n  ".join(problems))
