"""Model + adapters for CPU runs of the whole method (``make tiny``, ``make demo``; .venv/train).

    python -m tools.tiny_assets [--profile tiny|demo] [--root .] [--model DIR] [--steps N]
        [--roles ROLE ...] [--force]

Profiles: ``tiny`` = a tiny random Llama for tests (seconds per adapter); ``demo`` = the small
real model of the demo (Qwen2.5-Coder-0.5B-Instruct from PyPI GGUF wheels, :mod:`tools.small_model`,
minutes per adapter). Builds, each step skipped when its output is already there:

1. the base model: ``models/tiny-llama`` (:mod:`tools.tiny_model`) or ``models/<small model>``;
2. ``data/train-tiny``: SFT data converted by the real converters from the project's own samples
   (``data_prep/samples``: Pile-NER layout → explorer, IEPile layout → archetype classifier and
   direct-typing classifier, and the IEPile records themselves → a stand-in anchor, as IEPile
   trained its LoRA on them);
3. ``saves/<profile>/lora/<role>``: LoRA adapters trained on CPU with LlamaFactory through
   ``recipes/train/<role with - for _>-<profile>-cpu.yaml`` (the anchor with the alpaca template
   and rank 64, like the public IEPile LoRA). The tiny profile trains all four roles (anchor,
   explorer, classifier, direct_classifier); the demo profile the three of ``make demo`` unless
   ``--roles`` names others (``make infer CONFIG=recipes/infer/demo-cpu.yaml
   ABLATION=no-calibration`` asks for the direct-typing classifier), so the demo's first run
   does not get slower.

Training data never needs a download: it comes from files in the repository. Scores of these
models are not paper numbers (the tiny model's are noise).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.cli import make_parser, run
from core.io import ProjectError, sha256_of, write_text_atomic
from core.register import read_info, register, write_alpaca
from tools.offline_env import offline_env

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data_prep" / "samples"
PILE_NER_SAMPLE = SAMPLES / "pile_ner_sample.json"
IEPILE_SAMPLE = SAMPLES / "iepile_ner_en_sample.jsonl"
ROLES = ("anchor", "explorer", "classifier", "direct_classifier")
DATASETS = ("samner_anchor", "samner_explorer", "samner_classifier", "samner_direct_classifier")


@dataclass(frozen=True)
class Profile:
    model_dir: str
    steps: int
    make_model: Callable[[Path], object]
    # the maker checks an existing model itself (cheaply) and rebuilds it when stale
    self_checking: bool = False
    roles: tuple[str, ...] = ROLES  # the adapters trained when --roles is not given


def _tiny_model(out: Path) -> object:
    from tools import tiny_model

    return tiny_model.build(out, [PILE_NER_SAMPLE, IEPILE_SAMPLE])


def _small_model(out: Path) -> object:
    from tools import small_model

    return small_model.ensure(out)


PROFILES = {
    "tiny": Profile("models/tiny-llama", 30, _tiny_model),
    "demo": Profile("models/qwen2.5-coder-0.5b", 6, _small_model, self_checking=True,
                    roles=("anchor", "explorer", "classifier")),
}


def anchor_records(iepile_file: Path):
    """IEPile NER records as alpaca rows: the JSON-string instruction is the whole prompt."""
    with open(iepile_file, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                if record.get("task") == "NER":
                    yield {"instruction": record["instruction"], "input": "",
                           "output": record["output"]}


def build_train_data(out: Path, pile_ner_file: Path = PILE_NER_SAMPLE,
                     iepile_file: Path = IEPILE_SAMPLE, pile_ner_format: str = "sharegpt",
                     limit: int | None = None) -> Path:
    """Explorer, classifier and anchor SFT data in ``out``, registered for LlamaFactory."""
    from data_prep import train_data

    train_data.build(out, pile_ner_file=pile_ner_file, iepile_file=iepile_file,
                     pile_ner_format=pile_ner_format, limit=limit)
    count = write_alpaca(out / "anchor.jsonl", anchor_records(iepile_file))
    register(out, {"samner_anchor": out / "anchor.jsonl"})
    print(f"anchor: {count} IEPile-format records -> {out / 'anchor.jsonl'}")
    return out


STAMP = "samner_train.json"  # what an adapter was trained from: a change retrains it


def _sha256(path: Path) -> str | None:
    return sha256_of(path) if path.is_file() else None


def recipe_path(role: str, profile: str) -> Path:
    """``recipes/train/<role>-<profile>-cpu.yaml`` (direct_classifier -> direct-classifier)."""
    return REPO / "recipes" / "train" / f"{role.replace('_', '-')}-{profile}-cpu.yaml"


def train_stamp(role: str, model: Path, steps: int, profile: str) -> dict[str, object]:
    """The recipe, the base model's identity (its config and, for converted models, its
    source record) and the step count: what decides an adapter's weights here."""
    recipe = recipe_path(role, profile)
    return {"recipe": recipe.name, "recipe_sha256": _sha256(recipe),
            "model_config_sha256": _sha256(model / "config.json"),
            "model_source_sha256": _sha256(model / "samner_source.json"), "steps": steps}


def is_trained(out: Path, stamp: dict[str, object]) -> bool:
    try:
        return json.loads((out / STAMP).read_text()) == stamp
    except (OSError, ValueError):
        return False


def train_adapter(role: str, model: Path, dataset_dir: Path, out: Path, steps: int,
                  profile: str = "tiny") -> float:
    """Train one adapter with ``tools.train``; returns wall seconds, log beside ``out``."""
    env = offline_env()
    command = [sys.executable, "-m", "tools.train",
               str(recipe_path(role, profile).relative_to(REPO)),
               f"model_name_or_path={model}", f"dataset_dir={dataset_dir}",
               f"output_dir={out}", f"max_steps={steps}"]
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.parent / f"train-{role}.log"
    start = time.perf_counter()
    returncode, tail = _run_with_progress(command, env, log, steps, f"[{profile}] {role}")
    seconds = time.perf_counter() - start
    if returncode != 0:
        raise ProjectError(f"training the {profile} {role} adapter failed ({returncode}); "
                           f"log: {log}\n{tail}")
    write_text_atomic(out / STAMP, json.dumps(train_stamp(role, model, steps, profile)))
    return seconds


def _run_with_progress(command: list[str], env: dict[str, str], log: Path, steps: int,
                       label: str) -> tuple[int, str]:
    """Run LlamaFactory with its output going to ``log`` and a step bar (with the loss) on the
    console, fed by the loss lines it logs every step; returns the exit code and the log tail."""
    from tqdm import tqdm

    lines: deque[str] = deque(maxlen=40)
    with open(log, "w", encoding="utf-8") as sink, \
            tqdm(total=steps, desc=label, unit="step", leave=True) as bar:
        process = subprocess.Popen(command, cwd=REPO, env={**env, "PYTHONUNBUFFERED": "1"},
                                   text=True, bufsize=1,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert process.stdout is not None
        for line in process.stdout:
            sink.write(line)
            lines.append(line)
            match = LOSS_LINE.search(line)
            if match and bar.n < steps:
                bar.update(1)
                bar.set_postfix(loss=match.group(1))
        returncode = process.wait()
    return returncode, "".join(lines)[-2000:]


LOSS_LINE = re.compile(r"\{'loss': '?([0-9.]+)")


def build(root: Path = REPO, steps: int | None = None, force: bool = False,
          roles: tuple[str, ...] | None = None, profile: str = "tiny",
          model: Path | None = None) -> dict[str, Path]:
    """Everything the profile's CPU config needs under ``root`` (the model under ``model``
    when given, e.g. a shared cache); returns the adapter dirs of ``roles`` (default: the
    profile's). Adapters are retrained when their recipe, base model or step count changed."""
    spec = PROFILES[profile]
    steps = steps or spec.steps
    roles = roles or spec.roles
    model = model or root / spec.model_dir
    data = root / "data" / "train-tiny"
    if force or spec.self_checking or not (model / "config.json").is_file():
        start = time.perf_counter()
        spec.make_model(model)
        print(f"[{profile}] model -> {model} ({time.perf_counter() - start:.1f} s)", flush=True)
    if force or not set(DATASETS) <= read_info(data).keys():  # also: made before a dataset
        build_train_data(data)
    adapters = {}
    for role in roles:
        out = root / "saves" / profile / "lora" / role
        stamp = train_stamp(role, model, steps, profile)
        if force or not (out / "adapter_config.json").is_file() or not is_trained(out, stamp):
            seconds = train_adapter(role, model, data, out, steps, profile)
            print(f"[{profile}] {role} adapter -> {out} ({seconds:.1f} s, {steps} steps)",
                  flush=True)
        adapters[role] = out
    return adapters


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="tiny")
    parser.add_argument("--root", type=Path, default=REPO)
    parser.add_argument("--model", type=Path, help="base model dir (default: <root>/<profile's>)")
    parser.add_argument("--steps", type=int, help="training steps per adapter (profile default)")
    parser.add_argument("--roles", nargs="+", choices=ROLES, default=None,
                        help="adapters to build (default: the profile's; demo: anchor explorer "
                             "classifier)")
    parser.add_argument("--force", action="store_true", help="rebuild what exists")
    args = parser.parse_args(argv)

    def body() -> None:
        adapters = build(args.root, args.steps, args.force, profile=args.profile,
                         model=args.model, roles=tuple(args.roles) if args.roles else None)
        print(f"[{args.profile}] ready: " + ", ".join(f"{r}={p}" for r, p in adapters.items()))

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
