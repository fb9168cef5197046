"""Checks run INSIDE the CUDA train / infer environments on a machine without a GPU.

    .venv-cuda/infer/bin/python -m tools.cuda_env_checks infer
    .venv-cuda/train/bin/python -m tools.cuda_env_checks train
    .venv-cuda/train/bin/python -m tools.cuda_env_checks train-gpu
    .venv-cuda/train/bin/python -m tools.cuda_env_checks train-ds RECIPE   (torchrun-like env)

``tools/check_cuda_envs.py`` (``make check-cuda-envs``) builds the environments and runs these;
each check prints one ``SAMNER-CHECK {json}`` line (``env``, ``name``, ``ok``, ``detail``) and
each run one ``SAMNER-VERSIONS {json}`` line, among whatever vLLM, LlamaFactory and DeepSpeed
log. Everything short of running a kernel is checked: what the project hands vLLM is built by
eval/engine.py's own builders (``llm_kwargs``, ``sampling_params``, ``lora_requests``,
``tokens_prompt``) from the stage code's real requests and checked against the installed vLLM's
classes; the GPU recipes go through LlamaFactory's parser with ``torch.cuda`` faked.

What "parses" means for a training recipe (three levels, each a check):
  * ``check``: tools.train's device-neutral check (what ``--check`` and ``DRY_RUN=1`` run):
    template, datasets, DeepSpeed config file, LlamaFactory's parser on CPU settings. Missing
    training data and a Hub model are expected here and not failures.
  * ``GPU parse``: the recipe unchanged (bf16, DeepSpeed) through ``get_train_args`` with
    ``torch.cuda`` faked as one GPU of compute capability 9.0 - for a DeepSpeed recipe in a
    torchrun-like process (RANK/WORLD_SIZE/LOCAL_RANK set, as ``FORCE_TORCHRUN=1`` makes it),
    where the NCCL process group (which needs a GPU) is created with gloo instead and DeepSpeed's
    CPU-only shared-memory op is not built. It must return the arguments a GPU box gets: bf16,
    device cuda:0, and for DeepSpeed ZeRO-3 enabled with its "auto" values filled in.
  * ``dry run``: ``tools.train --dry-run`` with 1, 2 and 8 faked GPUs prints the launch line it
    prints on a GPU box.
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
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CHECK_MARK = "SAMNER-CHECK "
VERSIONS_MARK = "SAMNER-VERSIONS "

# The GPU configs and recipes: every file without "cpu" in its name.
INFER_CONFIGS = tuple(sorted(p for p in (REPO / "recipes" / "infer").glob("*.yaml")
                             if "cpu" not in p.stem))
TRAIN_RECIPES = tuple(sorted(p for p in (REPO / "recipes" / "train").glob("*.yaml")
                             if not p.stem.endswith("-cpu")))
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

# tools.train --dry-run: (recipe, faked GPUs) -> the launch line a GPU box prints.
PLAIN = "recipes/train/explorer-llama3-8b.yaml"
DEEPSPEED = "recipes/train/explorer-llama3-8b-ds-z3.yaml"
DRY_RUNS = {
    (PLAIN, 1): f"launch: llamafactory-cli train {PLAIN}  (1 process on 1 GPU)",
    (PLAIN, 2): f"launch: FORCE_TORCHRUN=1 llamafactory-cli train {PLAIN}  "
                "(torchrun, 2 processes on 2 GPUs)",
    (PLAIN, 8): f"launch: FORCE_TORCHRUN=1 llamafactory-cli train {PLAIN}  "
                "(torchrun, 8 processes on 8 GPUs)",
    (DEEPSPEED, 1): f"launch: FORCE_TORCHRUN=1 llamafactory-cli train {DEEPSPEED}  "
                    "(torchrun, 1 process on 1 GPU)",
    (DEEPSPEED, 8): f"launch: FORCE_TORCHRUN=1 llamafactory-cli train {DEEPSPEED}  "
                    "(torchrun, 8 processes on 8 GPUs)",
}
# eval.infer --dp: (DP, TP, CUDA_VISIBLE_DEVICES or None, faked GPUs) -> each shard's mask.
DP_PLANS = {
    (4, 2, None, 8): ["0,1", "2,3", "4,5", "6,7"],
    (2, 2, "4,5,6,7", 4): ["4,5", "6,7"],
    (8, 1, None, 8): [str(i) for i in range(8)],
}

# Unresolved in vLLM's compiled kernels without a GPU, and only these: the NVIDIA driver
# (libcuda.so.1 and its cu* entry points) and the interpreter's own C API.
DRIVER_OR_PYTHON = re.compile(r"libcuda\.so\.1|undefined symbol: (_?Py|cu[A-Z])")


def emit(env: str, name: str, ok: bool, detail: str) -> None:
    print(CHECK_MARK + json.dumps({"env": env, "name": name, "ok": bool(ok),
                                   "detail": " ".join(str(detail).split())}), flush=True)


def check(env: str, name: str, body: Callable[[], str]) -> bool:
    """Run one check: ``body`` returns its detail, raises (any exception) to fail."""
    try:
        detail = body()
    except BaseException as exc:  # a check reports, never aborts the run
        if isinstance(exc, KeyboardInterrupt):
            raise
        where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        at = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
        emit(env, name, False, f"{type(exc).__name__}: {exc}{at}")
        return False
    emit(env, name, True, detail)
    return True


def dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def emit_versions(env: str, names: list[str]) -> None:
    import torch

    versions = {name: dist_version(name) for name in names}
    versions["torch.version.cuda"] = str(torch.version.cuda)
    print(VERSIONS_MARK + json.dumps({"env": env, "versions": versions}), flush=True)


# --- shared checks ---------------------------------------------------------------------------


def pinned(req: Path) -> dict[str, str]:
    """``name==version`` lines of ``req`` and its -r includes (names canonical)."""
    from tools.envs import _logical_lines, requirement_files

    pins = {}
    for path in requirement_files(req):
        for line in _logical_lines(path.read_text(encoding="utf-8")):
            m = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*==\s*([^\s;]+)", line)
            if m:
                pins[canonical(m.group(1))] = m.group(2)
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_pins(req: Path, extra: Mapping[str, str] | None = None) -> str:
    pins = {**pinned(req), **(extra or {})}
    wrong = {name: (want, dist_version(name)) for name, want in pins.items()
             if dist_version(name) != want}
    if wrong:
        raise AssertionError("; ".join(f"{n} is {have}, pinned {want}"
                                       for n, (want, have) in wrong.items()))
    return f"{len(pins)} pins of {req.relative_to(REPO)} installed exactly"


def check_pip() -> str:
    done = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise AssertionError(done.stdout.strip() or done.stderr.strip())
    return done.stdout.strip()


def check_torch_cuda(want: str) -> str:
    import torch

    base = torch.__version__.split("+")[0]
    if not torch.version.cuda:
        raise AssertionError(f"torch {torch.__version__} is not a CUDA build")
    if base != want:
        raise AssertionError(f"torch {torch.__version__}, expected {want}")
    return (f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
            f"cuda.is_available()={torch.cuda.is_available()} (no GPU here)")


def site_packages() -> Path:
    import torch

    return Path(torch.__file__).resolve().parents[1]


def check_native_libs(packages: list[str]) -> str:
    """``ldd -r`` over every shared library of ``packages``: all resolves (torch, the NVIDIA
    wheels' libs) but the driver and Python's C API, i.e. the wheels match this torch's ABI."""
    ldd = shutil.which("ldd")
    if not ldd:
        raise AssertionError("ldd not found")
    site = site_packages()
    lib_dirs = [site / "torch" / "lib", *sorted(site.glob("nvidia/*/lib"))]
    env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(map(str, lib_dirs))}
    files = sorted(f for pkg in packages for f in (site / pkg).rglob("*.so*"))
    problems = []
    for f in files:
        out = subprocess.run([ldd, "-r", str(f)], capture_output=True, text=True, env=env,
                             check=False)
        bad = [line.strip() for line in (out.stdout + out.stderr).splitlines()
               if ("not found" in line or "undefined symbol" in line)
               and not DRIVER_OR_PYTHON.search(line)]
        problems += [f"{f.relative_to(site)}: {b}" for b in bad[:3]]
    if problems:
        raise AssertionError("; ".join(problems[:6]))
    return (f"{len(files)} shared libraries of {', '.join(packages)} resolve all but the "
            "driver's libcuda.so.1 and Python's C API")


# --- infer env -------------------------------------------------------------------------------


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


# --- train env -------------------------------------------------------------------------------


def fake_gpus(count: list[int]) -> None:
    """``torch.cuda`` reports ``count[0]`` GPUs of compute capability 9.0 with bf16 (what
    transformers, LlamaFactory and tools.train read). Import DeepSpeed before this: its op
    probes would then ask the missing driver."""
    import torch

    torch.cuda.is_available = lambda: count[0] > 0
    torch.cuda.device_count = lambda: count[0]
    torch.cuda.set_device = lambda *a, **k: None
    torch.cuda.is_bf16_supported = lambda *a, **k: True
    torch.cuda.get_device_capability = lambda *a, **k: (9, 0)


def train_checks(deepspeed_pin: str) -> None:
    env = "train"
    emit_versions(env, ["torch", "transformers", "llamafactory", "peft", "trl", "accelerate",
                        "datasets", "deepspeed", "torchvision", "torchaudio"])
    req = REPO / "requirements" / "train.txt"
    check(env, "pins (+ deepspeed for the check)",
          lambda: check_pins(req, {"deepspeed": deepspeed_pin}))
    check(env, "pip check", check_pip)
    check(env, "torch CUDA build", lambda: check_torch_cuda(pinned(req).get("torch", "?")))
    check(env, "torchvision, torchaudio link (ldd -r)",
          lambda: check_native_libs(["torchvision", "torchaudio"]))
    check(env, "LlamaFactory training stack imports", train_imports)
    check(env, "DeepSpeed imports, LlamaFactory accepts its version", deepspeed_ok)
    fake_gpus([0])
    from tools import train

    for path in TRAIN_RECIPES:
        check(env, f"{path.stem}: check", lambda p=path: recipe_check(train, p))
    check(env, "tools.train --dry-run launch lines", lambda: dry_runs(train))


def train_imports() -> str:
    import torchaudio  # noqa: F401 - LlamaFactory imports it at top level
    import torchvision
    from llamafactory.train.tuner import run_exp  # noqa: F401

    if not hasattr(importlib.import_module("torch").ops.torchvision, "nms"):
        raise AssertionError("torchvision's operators are not registered")
    return f"llamafactory.train.tuner, torchvision {torchvision.__version__} operators"


def deepspeed_ok() -> str:
    import deepspeed
    from llamafactory.extras.misc import check_version

    check_version("deepspeed", mandatory=True)
    return f"deepspeed {deepspeed.__version__}"


def recipe_check(train: Any, path: Path) -> str:
    recipe = train.load_recipe(str(path.relative_to(REPO)), [])
    found = train.recipe_findings(recipe)
    errors = [f.text for f in found if not f.missing]
    if errors:
        raise AssertionError("; ".join(errors))
    missing = [f.text.split(":")[0].split(" (")[0] for f in found]
    return "tools.train's check passes" + (f" (missing here: {'; '.join(missing)})"
                                           if missing else "")


def dry_runs(train: Any) -> str:
    import contextlib
    import io

    from core.devices import FAKE_GPUS_ENV

    count = [0]
    fake_gpus(count)
    lines = []
    for (recipe, gpus), want in DRY_RUNS.items():
        count[0] = gpus
        os.environ[FAKE_GPUS_ENV] = str(gpus)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = train.main([recipe, "--dry-run"])
        printed = out.getvalue().splitlines() + err.getvalue().splitlines()
        launch = [line for line in printed if line.startswith("launch:")]
        bad = [line for line in printed if line.startswith("error:")
               or (line.startswith("missing:") and "DeepSpeed" in line)]
        if code != 0 or bad or launch != [want]:
            raise AssertionError(f"{recipe} on {gpus} GPUs: exit {code}, {bad or launch}")
        lines.append(f"{Path(recipe).stem} x{gpus}: {want.split('  (')[1].rstrip(')')}")
    os.environ.pop(FAKE_GPUS_ENV, None)
    return "; ".join(lines)


def gpu_parse(path: Path) -> str:
    """The recipe unchanged through LlamaFactory's parser on one faked GPU (a DeepSpeed recipe
    in a torchrun-like process; see the module docstring)."""
    from llamafactory.hparams import get_train_args
    from transformers.integrations import is_deepspeed_zero3_enabled

    from tools import train

    recipe = train.load_recipe(str(path.relative_to(REPO)), [])
    _, _, args, _, _ = get_train_args(recipe)
    got = {"bf16": args.bf16, "device": str(args.device)}
    want = {"bf16": bool(recipe.get("bf16")), "device": "cuda:0"}
    detail = f"bf16={args.bf16}, device {args.device}, {args.parallel_mode.name}"
    if recipe.get("deepspeed"):
        ds = args.hf_deepspeed_config.config
        stage = ds.get("zero_optimization", {}).get("stage")
        got.update(zero3=is_deepspeed_zero3_enabled(),
                   micro_batch=ds.get("train_micro_batch_size_per_gpu"),
                   world=args.world_size)
        want.update(zero3=stage == 3, micro_batch=recipe.get("per_device_train_batch_size"),
                    world=1)
        detail += (f", DeepSpeed ZeRO-{stage} (micro batch {got['micro_batch']}, grad accum "
                   f"{ds.get('gradient_accumulation_steps')} from 'auto')")
    if got != want:
        raise AssertionError(f"got {got}, a GPU box gets {want}")
    return detail


def train_gpu_checks() -> None:
    importlib.import_module("deepspeed")  # before the fake (see fake_gpus)
    fake_gpus([1])
    with_deepspeed = set(ds_recipes())
    for path in TRAIN_RECIPES:
        if str(path.relative_to(REPO)) not in with_deepspeed:
            check("train", f"{path.stem}: GPU parse (1 faked GPU)", lambda p=path: gpu_parse(p))


def train_ds_check(recipe: str) -> None:
    """One DeepSpeed recipe per process: the process group it creates stays."""
    import deepspeed  # noqa: F401 - before the fake (see fake_gpus)
    import torch.distributed as dist

    ds_torch = importlib.import_module("deepspeed.comm.torch")
    ds_torch.build_shm_op = lambda: None  # DeepSpeed's CPU accelerator only
    real_init = dist.init_process_group

    def init_gloo(*args: Any, **kwargs: Any) -> Any:  # NCCL needs a GPU: same call, gloo
        kwargs.pop("backend", None)
        return real_init("gloo", *args[1:], **kwargs)

    dist.init_process_group = init_gloo
    fake_gpus([1])
    path = REPO / recipe
    check("train", f"{path.stem}: GPU parse (torchrun-like, 1 faked GPU, gloo for NCCL)",
          lambda: gpu_parse(path))


def ds_recipes() -> list[str]:
    import yaml

    return [str(p.relative_to(REPO)) for p in TRAIN_RECIPES
            if yaml.safe_load(p.read_text(encoding="utf-8")).get("deepspeed")]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.chdir(REPO)  # recipes name their files relative to the repository
    if args[:1] == ["infer"]:
        infer_checks()
    elif args[:1] == ["train"] and len(args) == 2:
        train_checks(args[1])
    elif args[:1] == ["train-gpu"]:
        train_gpu_checks()
    elif args[:1] == ["train-ds"] and len(args) == 2:
        train_ds_check(args[1])
    else:
        print("usage: python -m tools.cuda_env_checks infer | train DEEPSPEED_VERSION | "
              "train-gpu | train-ds RECIPE", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
