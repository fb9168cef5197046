"""The train environment's checks (``python -m tools.cuda_env_checks train DEEPSPEED_VERSION``,
``train-gpu``, ``train-ds RECIPE``): the training stack at its pins, and the GPU recipes.

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

import importlib
import os
from pathlib import Path
from typing import Any

from tools.cuda_checks_common import (
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
