"""The infer environment's checks (``python -m tools.cuda_env_checks infer``): vLLM at its pin,
its kernels link, and what the project hands vLLM, built by eval/engine.py's own builders
(``llm_kwargs``, ``sampling_params``, ``lora_requests``, ``tokens_prompt``) from the stage
code's real requests, checked against the installed vLLM's classes; the data-parallel shard
commands against eval/placement.py's plan.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import importlib.metadata as metadata
import inspect
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tools.cuda_checks_common import (
    INFER_CONFIGS,
    REPO,
    TRAIN_RECIPES,
    check,
    check_native_libs,
    check_pins,
    check_pip,
    check_torch_cuda,
    emit_versions,
    pinned,
)

# The public IEPile LoRA's adapter_config.json at its pinned revision: r 64, alpha 64, the
# seven projections, no modules_to_save (docs: ENVIRONMENT "GPU stack facts").
IEPILE_LORA = {"r": 64, "lora_alpha": 64, "bias": "none", "modules_to_save": None,
               "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                  "up_proj", "down_proj"]}
# What LlamaFactory's `lora_target: all` becomes on a Llama / Qwen2 decoder.
ALL_LINEAR = IEPILE_LORA["target_modules"]
# A sentence to build the stages' real requests with (the stage code, the configured
# templates, a stand-in tokenizer: prompts are ids either way).
SENTENCE = "Bob Dylan played Blowin' in the Wind at the Newport Folk Festival in 1963 ."
MENTIONS = [("Bob Dylan", "person"), ("Newport Folk Festival", "event")]
# eval.infer --dp: (DP, TP, CUDA_VISIBLE_DEVICES or None, faked GPUs) -> each shard's mask.
DP_PLANS = {
    (4, 2, None, 8): ["0,1", "2,3", "4,5", "6,7"],
    (2, 2, "4,5,6,7", 4): ["4,5", "6,7"],
    (8, 1, None, 8): [str(i) for i in range(8)],
}


def adapter_lora_config(config: Any, role: str, adapter: Any) -> dict[str, Any]:
    """The adapter_config.json an adapter will have: the real one when it is on disk, else
    what the train recipe whose output_dir is its path makes, else the IEPile LoRA's."""
    path = Path(adapter.path)
    if (path / "adapter_config.json").is_file():
        return json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    import yaml

    for recipe in TRAIN_RECIPES:
        data = yaml.safe_load(recipe.read_text(encoding="utf-8"))
        if Path(str(data.get("output_dir", ""))) == path:
            if data.get("lora_target") != "all":
                raise AssertionError(f"{recipe.name}: lora_target {data.get('lora_target')!r}"
                                     ", this check knows only 'all'")
            return {"r": data["lora_rank"], "lora_alpha": data["lora_alpha"], "bias": "none",
                    "modules_to_save": None, "target_modules": ALL_LINEAR,
                    "_from": recipe.name}
    if getattr(adapter, "hub_id", "") == "zjunlp/llama3-8b-iepile-lora":
        return {**IEPILE_LORA, "_from": "the IEPile LoRA's adapter_config.json"}
    raise AssertionError(f"{role}: no adapter_config.json at {path} and no recipe trains it")


def engine_kwarg_problems(kwargs: Mapping[str, Any], fields: set[str], llm_params: set[str]
                          ) -> list[str]:
    """Keyword arguments ``vllm.LLM`` would not hand to a field of ``EngineArgs``."""
    return [k for k in kwargs if k not in fields and k not in llm_params]


def stage_requests(config: Any) -> dict[str, list[Any]]:
    """Each stage's real requests for one sentence, built by the stage code."""
    from core.mappings import load_archetypes, load_domain
    from core.records import Sentence
    from eval import calibration, discovery, mediation
    from eval.engine import CharTokenizer

    domain, archetypes, tok = load_domain("music"), load_archetypes(), CharTokenizer()
    sentence = Sentence("check-1", "music", SENTENCE.split())
    types = discovery.extractor_types(domain, config)
    found: dict[str, list[Any]] = {
        f"stage1_{name}": discovery.extractor_requests(name, [sentence], types, config, tok)
        for name in config.active_extractors()}
    tagged, _ = mediation.tag_sentence(sentence.text, [m for m, _ in MENTIONS])
    found["stage2_classifier"] = mediation.classifier_requests(
        [(sentence.id, tagged)], archetypes.names, config, tok)
    found["stage2_direct"] = mediation.direct_requests([(sentence.id, tagged)], domain, config,
                                                       tok)
    found["stage3_calibration"] = calibration.calibration_requests(
        [(sentence.id, sentence.text, MENTIONS)], domain, archetypes.definitions, config, tok)
    return found


def describe_params(request: Any, params: Any, sampling: Any) -> str:
    """Raise unless ``params`` carries exactly what ``request`` asks; a short description."""
    want = {"max_tokens": request.max_tokens, "temperature": sampling.temperature,
            "top_p": sampling.top_p, "repetition_penalty": sampling.repetition_penalty}
    for name, value in want.items():
        if getattr(params, name) != value:
            raise AssertionError(f"{name} is {getattr(params, name)!r}, asked {value!r}")
    if list(params.stop or []) != list(request.stop):
        raise AssertionError(f"stop is {params.stop!r}, asked {list(request.stop)!r}")
    so = params.structured_outputs
    if request.choices:
        if so is None or so.choice != list(request.choices):
            raise AssertionError(f"structured choice is {so!r}, asked {request.choices!r}")
        return f"choice of {len(request.choices)}"
    if request.grammar:
        if so is None or so.grammar != request.grammar:
            raise AssertionError("structured grammar differs from the request's")
        return f"EBNF grammar of {request.grammar.count('::=')} rules"
    if so is not None:
        raise AssertionError(f"unasked structured outputs {so!r}")
    return f"free text, stop {list(request.stop)}" if request.stop else "free text"


def infer_checks() -> None:
    env = "infer"
    emit_versions(env, ["vllm", "torch", "transformers", "tokenizers", "huggingface-hub",
                        "xgrammar", "llguidance", "flashinfer-python", "torchvision"])
    req = REPO / "requirements" / "infer-cuda.txt"
    vllm_pin = pinned(req).get("vllm", "?")

    def vllm_version() -> str:
        import vllm

        if vllm.__version__ != vllm_pin:
            raise AssertionError(f"vllm {vllm.__version__}, pinned {vllm_pin}")
        return f"vllm {vllm.__version__} == pin"

    if not check(env, "import vllm, version", vllm_version):
        return
    check(env, "pins", lambda: check_pins(req))
    check(env, "pip check", check_pip)
    torch_pin = next((re.sub(r"^torch\s*==\s*", "", r.split(";")[0]).strip()
                      for r in metadata.requires("vllm") or []
                      if re.match(r"^torch\s*==", r)), "?")
    check(env, "torch CUDA build (vllm's pin)", lambda: check_torch_cuda(torch_pin))
    check(env, "vLLM kernels link (ldd -r)", lambda: check_native_libs(["vllm"]))
    check(env, "vLLM API and eval modules import", infer_imports)
    check(env, "CUDA platform (how far without a GPU)", cuda_platform)
    check(env, "max_lora_rank values", lora_ranks)
    check(env, "outputs, shutdown, metrics VLLMBackend reads", engine_surface)
    from eval.plan import load_unchecked

    for path in INFER_CONFIGS:
        rel = str(path.relative_to(REPO))
        for variant, overrides in (("", []),
                                   (" constrained", ["extraction.constrain_to_spans=true"])):
            config = load_unchecked(rel, overrides)
            if not variant:
                for model in dict.fromkeys([config.model, *config.foreign_bases().values()]):
                    check(env, f"{path.stem} {model.split('/')[-1]}: engine args",
                          lambda c=config, m=model: engine_args(c, m))
            check(env, f"{path.stem}{variant}: stage requests",
                  lambda c=config: sampling_checks(c))
    check(env, "engine_args.create_engine_config", create_engine_config)
    check(env, "DP shard commands (eval.infer --dp)", dp_shards)


def infer_imports() -> str:
    from vllm import LLM, SamplingParams  # noqa: F401
    from vllm.inputs import TokensPrompt  # noqa: F401
    from vllm.lora.request import LoRARequest  # noqa: F401
    from vllm.sampling_params import StructuredOutputsParams  # noqa: F401

    modules = ["eval.engine", "eval.infer", "eval.pipeline", "eval.predict", "eval.cpu_lora"]
    for name in modules:
        importlib.import_module(name)
    import transformers

    return (f"LLM, SamplingParams, StructuredOutputsParams, LoRARequest, TokensPrompt; "
            f"{', '.join(modules)} under transformers {transformers.__version__}")


def cuda_platform() -> str:
    from vllm.platforms import current_platform

    name = type(current_platform).__name__
    try:
        importlib.import_module("vllm.platforms.cuda")
    except ImportError as exc:
        if "libcuda.so.1" not in str(exc):
            raise
        return (f"current_platform is {name}; vllm.platforms.cuda stops at its kernels' "
                "need for libcuda.so.1 (the NVIDIA driver): nothing further runs without one")
    return f"current_platform is {name}; vllm.platforms.cuda imports"


def lora_ranks() -> str:
    import typing

    from vllm.config.lora import LoRAConfig

    from eval.engine import supported_lora_rank

    hint = typing.get_type_hints(LoRAConfig)["max_lora_rank"]
    allowed = set(typing.get_args(hint))
    ours = {supported_lora_rank(r) for r in range(1, 513)}
    if not ours <= allowed:
        raise AssertionError(f"supported_lora_rank returns {sorted(ours - allowed)}, which "
                             f"vLLM does not allow ({sorted(allowed)})")
    picked = {r: supported_lora_rank(r) for r in (8, 64)}
    for rank in picked.values():
        LoRAConfig(max_lora_rank=rank, max_loras=3)
    return (f"vLLM allows {sorted(allowed)}; supported_lora_rank returns {sorted(ours)}; "
            f"ours 8 -> {picked[8]}, IEPile 64 -> {picked[64]}")


def engine_surface() -> str:
    """What VLLMBackend reads back: outputs, the engine-core shutdown (close), the cache config
    and the prefix-cache counters (stats)."""
    from vllm import LLM
    from vllm.outputs import CompletionOutput, RequestOutput
    from vllm.v1.engine import core_client, llm_engine
    from vllm.v1.metrics import loggers

    init = inspect.getsource(llm_engine.LLMEngine.__init__)
    problems = [f"LLMEngine has no {a}" for a in ("engine_core", "vllm_config")
                if f"self.{a} =" not in init]
    if not callable(getattr(core_client.EngineCoreClient, "shutdown", None)):
        problems.append("EngineCoreClient has no shutdown()")
    if not callable(getattr(LLM, "get_metrics", None)):
        problems.append("LLM has no get_metrics()")
    metrics = inspect.getsource(loggers)
    problems += [f"no metric {m}" for m in ("vllm:prefix_cache_queries",
                                             "vllm:prefix_cache_hits")
                 if f'"{m}"' not in metrics]
    fields = {f.name for f in dataclasses.fields(CompletionOutput)}
    problems += [f"CompletionOutput has no {f}" for f in ("text", "token_ids", "finish_reason")
                 if f not in fields]
    if "prompt_token_ids" not in inspect.signature(RequestOutput.__init__).parameters:
        problems.append("RequestOutput has no prompt_token_ids")
    if problems:
        raise AssertionError("; ".join(problems))
    return ("outputs (text, token_ids, finish_reason, prompt_token_ids), "
            "llm_engine.engine_core.shutdown() (close), llm_engine.vllm_config.cache_config, "
            "LLM.get_metrics() with vllm:prefix_cache_queries/hits (stats)")


def engine_args(config: Any, model: str) -> str:
    from vllm import LLM
    from vllm.config.lora import LoRAConfig
    from vllm.engine.arg_utils import EngineArgs
    from vllm.lora.peft_helper import PEFTHelper

    from eval.engine import llm_kwargs

    adapters = config.adapters(model)
    loras = {role: adapter_lora_config(config, role, a) for role, a in adapters.items()}
    ranks = {role: int(c["r"]) for role, c in loras.items()}
    kwargs = llm_kwargs(config, model, config.revision_of(model) or None, ranks, True)
    fields = {f.name for f in dataclasses.fields(EngineArgs)}
    llm_params = set(inspect.signature(LLM.__init__).parameters) - {"self", "kwargs"}
    unknown = engine_kwarg_problems(kwargs, fields, llm_params)
    if unknown:
        raise AssertionError(f"not engine arguments of vLLM: {unknown}")
    import huggingface_hub.constants as hub

    offline, hub.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE, False  # offline, EngineArgs looks the hub
    try:  # id up in the local cache, which has no snapshot here; online it keeps the id as is
        args = EngineArgs(**kwargs)
    finally:
        hub.HF_HUB_OFFLINE = offline
    detail = f"{len(kwargs)} kwargs are EngineArgs fields, EngineArgs(**kwargs) built"
    if ranks:  # the LoRAConfig create_engine_config would build, and each adapter against it
        lora_config = LoRAConfig(max_lora_rank=args.max_lora_rank, max_loras=args.max_loras)
        for adapter_config in loras.values():
            PEFTHelper.from_dict(dict(adapter_config)).validate_legal(lora_config)
        detail += (f"; LoRAConfig(max_lora_rank={args.max_lora_rank}, max_loras="
                   f"{args.max_loras}) accepts " + ", ".join(
                       f"{role} r{c['r']}" for role, c in loras.items()))
    return detail


def sampling_checks(config: Any) -> str:
    from vllm.v1.structured_output.backend_xgrammar import validate_xgrammar_grammar

    from eval.engine import lora_requests, sampling_params, tokens_prompt

    done = []
    roles = set()
    for stage, requests in stage_requests(config).items():
        if not requests:
            raise AssertionError(f"{stage}: the stage made no request")
        kinds = set()
        for request in requests:
            params = sampling_params(request, config.sampling)
            kinds.add(describe_params(request, params, config.sampling))
            if params.structured_outputs is not None:  # vLLM's own check, on a copy
                validate_xgrammar_grammar(copy.deepcopy(params))
            prompt = tokens_prompt(request)
            if prompt != {"prompt_token_ids": request.prompt_ids}:
                raise AssertionError(f"{stage}: TokensPrompt is {prompt!r}")
            if request.adapter:
                roles.add(request.adapter)
        done.append(f"{stage} x{len(requests)} ({'; '.join(sorted(kinds))})")
    adapters = config.adapters_by_role()
    loras = lora_requests({role: a.path for role, a in adapters.items()})
    for i, (role, adapter) in enumerate(adapters.items()):
        lora = loras[role]
        if (lora.lora_name, lora.lora_int_id, lora.lora_path) != (role, i + 1,
                                                                   str(adapter.path)):
            raise AssertionError(f"LoRARequest for {role} is {lora!r}")
    check_generate_call(config, loras)
    return ("; ".join(done) + f"; xgrammar validated every structured output; LoRARequest for "
            f"{', '.join(loras)}; LLM.generate accepts the call")


def check_generate_call(config: Any, loras: Mapping[str, Any]) -> None:
    """``LLM.generate`` binds the call VLLMBackend.generate makes."""
    from vllm import LLM

    signature = inspect.signature(LLM.generate)
    signature.bind(object(), [{"prompt_token_ids": [1]}], [object()],
                   lora_request=[next(iter(loras.values()), None)], use_tqdm=True)


def create_engine_config() -> str:
    """How far vLLM's own config building gets without a GPU (a local config-only model of
    Llama-3-8B's shape, so that nothing is downloaded)."""
    import tempfile

    from transformers import LlamaConfig
    from vllm.engine.arg_utils import EngineArgs

    from eval.engine import llm_kwargs
    from eval.plan import load_unchecked

    config = load_unchecked("recipes/infer/llama3-8b.yaml", [])
    with tempfile.TemporaryDirectory() as model:
        LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                    num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                    max_position_embeddings=8192).save_pretrained(model)
        args = EngineArgs(**llm_kwargs(config, model, None, {"anchor": 64, "explorer": 8},
                                       True))
        try:
            args.create_engine_config()
        except RuntimeError as exc:
            if "Device string must not be empty" not in str(exc):
                raise
            return ("stops at its first step, DeviceConfig(current_platform.device_type): no "
                    "CUDA platform without the driver (model, cache, parallel, scheduler and "
                    "LoRA configs are built after it and need a GPU box)")
    return "built the whole VllmConfig"


def dp_shards() -> str:
    from core.devices import FAKE_GPUS_ENV
    from eval import infer
    from eval.placement import check_placement
    from eval.plan import load_unchecked

    class Done:
        def wait(self) -> int:
            return 0

    class Lock:
        def close(self) -> None:
            pass

    started: list[tuple[list[str], dict[str, str]]] = []
    saved = (infer.prepare_run_dir, infer.load_work, infer.merge_shards, infer.subprocess.Popen)
    saved_env = {k: os.environ.get(k) for k in (FAKE_GPUS_ENV, "CUDA_VISIBLE_DEVICES")}
    infer.prepare_run_dir = lambda config, work: (Path(config.output_dir), Lock())
    infer.load_work = lambda config, shard=None: {}
    infer.merge_shards = lambda config, dirs: None
    infer.subprocess.Popen = lambda command, env: started.append((command, env)) or Done()
    done = []
    try:
        for (dp, tp, mask, gpus), want in DP_PLANS.items():
            os.environ[FAKE_GPUS_ENV] = str(gpus)
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            if mask is not None:
                os.environ["CUDA_VISIBLE_DEVICES"] = mask
            overrides = [f"engine.data_parallel_size={dp}", f"engine.tensor_parallel_size={tp}",
                         "output_dir=runs/check-dp"]
            config = load_unchecked("recipes/infer/llama3-8b.yaml", overrides)
            planned = [",".join(ids) for ids in check_placement(config)]
            started.clear()
            infer.run_data_parallel(config, "recipes/infer/llama3-8b.yaml", overrides, dp)
            masks = [env.get("CUDA_VISIBLE_DEVICES") for _, env in started]
            if planned != want or masks != want:
                raise AssertionError(f"DP={dp} TP={tp} mask={mask}: planned {planned}, "
                                     f"started {masks}, expected {want}")
            for i, (command, _) in enumerate(started):
                tail = command[command.index("-m"):]
                if (command[0] != sys.executable or tail[:2] != ["-m", "eval.infer"]
                        or command[-2:] != ["--shard", f"{i}/{dp}"]
                        or "engine.data_parallel_size=1" not in command):
                    raise AssertionError(f"shard {i} command {command}")
            done.append(f"DP={dp} TP={tp}{f' mask {mask}' if mask else ''}: {' | '.join(want)}")
    finally:
        (infer.prepare_run_dir, infer.load_work, infer.merge_shards,
         infer.subprocess.Popen) = saved
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return ("shard processes `python -m eval.infer ... engine.data_parallel_size=1 --shard i/N`"
            " get eval.placement's GPUs: " + "; ".join(done))
