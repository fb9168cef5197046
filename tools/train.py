"""Check a LlamaFactory recipe, then train with ``llamafactory-cli train`` (runs in .venv/train).

    python -m tools.train recipes/train/explorer-llama3-8b.yaml [key=value ...] [--check|--dry-run]

Everything that can be wrong with a recipe is caught here in seconds, before a model loads:
unknown keys and bad values (LlamaFactory's own argument parser), an unknown chat template, a
dataset name that ``dataset_info.json`` does not register or whose file is missing, a local model
path that does not exist. That check is device-neutral (CPU settings, no DeepSpeed): in a plain
process LlamaFactory's parser refuses any recipe once 2+ GPUs are visible ("Please launch
distributed training") and every DeepSpeed recipe ("Please use FORCE_TORCHRUN=1"), although
``llamafactory-cli`` would launch both correctly. What depends on the machine is checked apart,
with what to do: a GPU at all, bf16 support (compute capability >= 8.0), DeepSpeed installed.

The launch is LlamaFactory's: ``llamafactory-cli train <recipe> key=value...``, with
``FORCE_TORCHRUN=1`` (torchrun, one process per GPU) when more than one GPU is visible or the
recipe uses DeepSpeed. NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT and NPROC_PER_NODE pass through
from the environment to LlamaFactory's launcher. ``--dry-run`` runs every check, lists what is
missing (training data, DeepSpeed, a GPU) instead of stopping on it, prints the exact command on a
``launch:`` line with its process count and trains nothing; ``--check`` checks the recipe alone.

After a successful training the adapter's ``output_dir`` gets ``samner_train_data.json``: the
recipe, its ``dataset_dir`` and, per dataset, the registered file and the provenance sidecar its
converter wrote (``<file>.meta.json``: source revision, excluded sources, per-source counts;
:func:`core.register.training_data_record`). A run records it in ``run.json``.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.cli import make_parser
from core.devices import looks_local
from core.io import ProjectError, read_yaml_mapping
from core.overrides import apply_overrides
from core.register import training_data_record, write_adapter_training_data

# Read by LlamaFactory's launcher (llamafactory/launcher.py) and passed through unchanged.
MULTI_NODE_VARS = ("NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "NPROC_PER_NODE")
BF16_MIN_CAPABILITY = (8, 0)  # Ampere; V100 (7.0) and T4 (7.5) have no bf16


class RecipeError(ProjectError):
    pass


@dataclass(frozen=True)
class Finding:
    """One problem; ``missing`` ones are made by a later step (data, a package, a machine with
    GPUs) and only listed by a dry run, the others mean the recipe or the machine is wrong."""

    text: str
    missing: bool = False


def load_recipe(path: str | os.PathLike[str], overrides: list[str]) -> dict[str, Any]:
    return apply_overrides(read_yaml_mapping(path, RecipeError), overrides, RecipeError)


def device_neutral(recipe: dict[str, Any]) -> dict[str, Any]:
    """The recipe as LlamaFactory's parser can check it in a plain process on any machine: CPU
    settings and no DeepSpeed, whatever GPUs are present (:func:`gpu_findings` covers those)."""
    cpu = {k: v for k, v in recipe.items() if k != "deepspeed"}
    return {**cpu, "bf16": False, "fp16": False, "use_cpu": True}


def _deepspeed_config_problem(path: str) -> str | None:
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"deepspeed config {path} not found"
    except (OSError, ValueError) as exc:
        return f"deepspeed config {path} is not readable JSON ({exc})"
    return None if isinstance(data, dict) else f"deepspeed config {path} is not a JSON object"


def recipe_findings(recipe: dict[str, Any]) -> list[Finding]:
    """Everything LlamaFactory would hit later that does not depend on this machine."""
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.data.template import TEMPLATES
    from llamafactory.hparams import get_train_args

    found = []
    template = recipe.get("template")
    if template not in TEMPLATES:
        found.append(Finding(f"unknown template {template!r}"))
    model = str(recipe.get("model_name_or_path", ""))
    if looks_local(model) and not (Path(model) / "config.json").is_file():
        found.append(Finding(f"model {model!r} is not a local model dir (build or download it "
                             "first)", missing=True))
    dataset_dir = str(recipe.get("dataset_dir", "data"))
    names = dataset_names(recipe)
    remote = dataset_dir == "ONLINE" or dataset_dir.startswith("REMOTE:")
    if not remote and not (Path(dataset_dir) / "dataset_info.json").is_file():
        found.append(Finding(f"training data not prepared: {dataset_dir}/dataset_info.json not "
                             "found (make data-train)", missing=True))
    else:
        try:
            for attr in get_dataset_list(names, dataset_dir):
                file = Path(dataset_dir) / attr.dataset_name
                if attr.load_from == "file" and not file.exists():
                    found.append(Finding(f"dataset file {file} is missing (make data-train)",
                                         missing=True))
        except (ValueError, OSError) as exc:
            found.append(Finding(f"datasets {names} in {dataset_dir}: {exc}"))
    deepspeed = recipe.get("deepspeed")
    problem = _deepspeed_config_problem(str(deepspeed)) if deepspeed else None
    if problem:
        found.append(Finding(problem))
    try:
        get_train_args(device_neutral(recipe))
    except (ValueError, SystemExit) as exc:
        found.append(Finding(f"LlamaFactory rejects the arguments: {exc}"))
    return found


def dataset_names(recipe: Mapping[str, Any]) -> list[str]:
    """The recipe's ``dataset`` (LlamaFactory takes a comma-separated list)."""
    return [n.strip() for n in str(recipe.get("dataset", "")).split(",") if n.strip()]


def record_training_data(recipe_path: str, recipe: Mapping[str, Any]) -> Path | None:
    """After a successful training: what the adapter was trained on, kept in its output_dir
    (``samner_train_data.json``); None when there is no output dir to keep it in."""
    output_dir = Path(str(recipe.get("output_dir", "")))
    if not recipe.get("output_dir") or not output_dir.is_dir():
        return None
    record = {"recipe": recipe_path, **training_data_record(
        str(recipe.get("dataset_dir", "data")), dataset_names(recipe))}
    return write_adapter_training_data(output_dir, record)


def run_launch(launch: Launch) -> int:
    """Run ``llamafactory-cli`` of this environment and wait for it; its exit code."""
    cli = Path(sys.executable).with_name("llamafactory-cli")
    done = subprocess.run([str(cli), *launch.argv[1:]], env={**os.environ, **launch.env},
                          check=False)
    return done.returncode


def check_recipe(recipe: dict[str, Any]) -> None:
    """Raise :class:`RecipeError` naming every problem LlamaFactory would hit later."""
    found = recipe_findings(recipe)
    if found:
        raise RecipeError("; ".join(f.text for f in found))


def deepspeed_installed() -> bool:
    return importlib.util.find_spec("deepspeed") is not None


def gpu_findings(recipe: dict[str, Any], gpus: int,
                 capability: tuple[int, int] | None) -> list[Finding]:
    """What this machine lacks for the recipe, each with what to do (nothing for CPU recipes)."""
    if recipe.get("use_cpu"):
        return []
    found = []
    if not gpus:
        found.append(Finding("no GPU visible (torch.cuda.device_count() is 0 in the train env): "
                             "run this recipe on a CUDA machine (make env-train DEVICE=cuda), or "
                             "train a -cpu recipe", missing=True))
    elif recipe.get("bf16") and capability and capability < BF16_MIN_CAPABILITY:
        found.append(Finding(f"bf16: the GPUs' compute capability is {capability[0]}."
                             f"{capability[1]}, bf16 needs >= 8.0: add the overrides bf16=false "
                             "fp16=true"))
    if recipe.get("deepspeed") and not deepspeed_installed():
        found.append(Finding("DeepSpeed is not installed in the train env (the recipe sets "
                             "deepspeed): .venv/train/bin/pip install deepspeed==0.16.9",
                             missing=True))
    return found


def model_notes(recipe: dict[str, Any]) -> list[str]:
    model = str(recipe.get("model_name_or_path", ""))
    if not model or looks_local(model):
        return []
    return [f"model {model} is not local: LlamaFactory downloads it from the Hugging Face Hub at "
            "launch unless it is in the Hugging Face cache (gated models need HF_TOKEN)"]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}{'es' if word[-1] == 's' else 's'}"


def _number(environ: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(environ.get(name, default))
    except ValueError:
        raise RecipeError(f"{name}={environ[name]!r} is not a whole number") from None


@dataclass(frozen=True)
class Launch:
    """``env`` (set on top of the environment, shown on the ``launch:`` line) + ``argv``."""

    argv: list[str]
    summary: str
    env: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        words = [f"{k}={shlex.quote(v)}" for k, v in self.env.items()]
        return f"launch: {' '.join([*words, shlex.join(self.argv)])}  ({self.summary})"


def plan_launch(recipe_path: str, overrides: list[str], recipe: dict[str, Any], gpus: int,
                environ: Mapping[str, str]) -> Launch:
    """LlamaFactory's own rules (llamafactory/launcher.py): torchrun with NPROC_PER_NODE
    (default: every visible GPU) processes per node when FORCE_TORCHRUN is on or 2+ GPUs are
    visible; we turn it on for DeepSpeed too, which cannot run without it."""
    argv = ["llamafactory-cli", "train", recipe_path, *overrides]
    forced = environ.get("FORCE_TORCHRUN", "0").lower() in ("true", "y", "1")
    if recipe.get("use_cpu"):  # a CPU recipe must not grab a GPU that happens to exist
        env = {"CUDA_VISIBLE_DEVICES": "", **({"FORCE_TORCHRUN": "0"} if forced else {})}
        return Launch(argv, "1 process on CPU", env)
    if not (forced or gpus > 1 or recipe.get("deepspeed")):
        return Launch(argv, "1 process on 1 GPU" if gpus else "1 process; no GPU visible here")
    env = {"FORCE_TORCHRUN": "1", **{k: environ[k] for k in MULTI_NODE_VARS if k in environ}}
    nnodes = _number(environ, "NNODES", 1)
    nproc = _number(environ, "NPROC_PER_NODE", gpus)
    summary = f"torchrun, {_plural(nproc * nnodes, 'process')}"
    if nnodes > 1:
        summary += (f": {nproc} on each of {nnodes} nodes, this is node "
                    f"{environ.get('NODE_RANK', '0')} with {_plural(gpus, 'GPU')}")
    else:
        summary += f" on {_plural(gpus, 'GPU')}"
    return Launch(argv, summary, env)


def _gpus_line(recipe: dict[str, Any], gpus: int, capability: tuple[int, int] | None) -> str:
    if recipe.get("use_cpu"):
        return "gpus: not used (CPU recipe)"
    if not gpus:
        return "gpus: none visible"
    cap = f", compute capability {capability[0]}.{capability[1]}" if capability else ""
    return f"gpus: {gpus} visible{cap}"


def main(argv: list[str] | None = None) -> int:
    from core.devices import cuda_devices

    parser = make_parser(__doc__)
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*", help="key=value, as llamafactory-cli accepts")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="check the recipe only, do not train")
    mode.add_argument("--dry-run", action="store_true",
                      help="run every check, list what is missing, print the launch; no training")
    args = parser.parse_intermixed_args(argv)
    try:
        recipe = load_recipe(args.recipe, args.overrides)
        if args.check:
            check_recipe(recipe)
            print(f"recipe OK: {args.recipe} (template {recipe['template']}, "
                  f"dataset {recipe['dataset']})")
            return 0
        gpus, capability = (0, None) if recipe.get("use_cpu") else cuda_devices(capability=True)
        found = recipe_findings(recipe) + gpu_findings(recipe, gpus, capability)
        launch = plan_launch(args.recipe, args.overrides, recipe, gpus, os.environ)
    except ProjectError as exc:  # RecipeError, or a malformed SAMNER_FAKE_GPUS
        print(f"error: {exc}", file=sys.stderr)
        return 2
    errors = [f.text for f in found if not f.missing]
    if args.dry_run:
        print(f"recipe: {args.recipe} (template {recipe.get('template')}, "
              f"dataset {recipe.get('dataset')})")
        print(_gpus_line(recipe, gpus, capability))
        for note in model_notes(recipe):
            print(f"note: {note}")
        for finding in found:
            if finding.missing:
                print(f"missing: {finding.text}")
        print(launch.line())
        for text in errors:
            print(f"error: {text}", file=sys.stderr)
        print("dry run: nothing trained" + (" (errors above)" if errors else ""))
        return 2 if errors else 0
    if found:
        for finding in found:
            print(f"error: {finding.text}", file=sys.stderr)
        return 2
    print(f"recipe OK: {args.recipe} (template {recipe['template']}, dataset {recipe['dataset']})")
    print(launch.line(), flush=True)
    code = run_launch(launch)
    if code == 0:
        kept = record_training_data(args.recipe, recipe)
        if kept is not None:
            print(f"training data record: {kept}")
    return code


if __name__ == "__main__":
    sys.exit(main())
