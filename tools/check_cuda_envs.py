"""Build the CUDA train and infer environments on any machine (a GPU is not needed) and check
everything short of running a kernel: ``make check-cuda-envs``.

    python3 -m tools.check_cuda_envs [--prefix .venv-cuda] [--doc docs/cuda-envs.md] [--no-build]

1. ``tools.envs create {train,infer} --device cuda --prefix PREFIX``: the same requirement files
   and stamps as on a GPU box, into a prefix of its own so the CPU envs in .venv stay as they
   are. pip runs without its config files (``PIP_CONFIG_FILE=/dev/null``) and without the
   environment's ``PIP_FIND_LINKS``, ``PIP_EXTRA_INDEX_URL``, ``PIP_CONSTRAINT`` and
   ``PIP_NO_INDEX``: a find-links dir or extra index holding a CPU torch wheel (our CPU
   machines keep one) would win over PyPI's CUDA build of the same version, and a constraints
   file may cap versions. The train env also gets ``DEEPSPEED`` (the -ds-z3 recipes need it;
   it is not in requirements/train.txt, which the CPU env shares).
2. ``tools.cuda_env_checks`` inside each env (infer; train; train-gpu; train-ds per DeepSpeed
   recipe in a torchrun-like process), each check one ``PASS``/``FAIL`` line, then a summary.
3. The result goes to ``docs/cuda-envs.md`` (replaced atomically). Exit code 1 on any FAIL.

Not part of ``make test``: the two envs download several GB. Run it when a requirement file
changes. Standard library only, like tools.envs: it runs under the system python3.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tools import envs

REPO = envs.REPO
PREFIX = Path(".venv-cuda")
DOC = Path("docs/cuda-envs.md")
# LlamaFactory 0.9.5 supports DeepSpeed 0.10.0 to 0.16.9 (its `deepspeed` extra); the newest.
DEEPSPEED = "0.16.9"
CHECK_MARK = "SAMNER-CHECK "
VERSIONS_MARK = "SAMNER-VERSIONS "
# pip settings that can hand out a CPU torch or cap versions (see the module docstring).
PIP_LOCATION_VARS = ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_NO_INDEX")
TAIL_LINES = 15
# What the doc's version table shows, in order: (label, env, distribution).
VERSION_ROWS = (
    ("torch", "train", "torch"), ("torch", "infer", "torch"),
    ("CUDA (torch.version.cuda)", "train", "torch.version.cuda"),
    ("CUDA (torch.version.cuda)", "infer", "torch.version.cuda"),
    ("vllm", "infer", "vllm"), ("transformers", "train", "transformers"),
    ("transformers", "infer", "transformers"), ("llamafactory", "train", "llamafactory"),
    ("deepspeed", "train", "deepspeed"), ("peft", "train", "peft"), ("trl", "train", "trl"),
    ("accelerate", "train", "accelerate"), ("xgrammar", "infer", "xgrammar"),
    ("flashinfer-python", "infer", "flashinfer-python"),
)


@dataclass(frozen=True)
class Check:
    env: str
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.env:<5}  {self.name}: {self.detail}"


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    versions: dict[str, dict[str, str]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    disk_bytes: int | None = None
    machine: str = ""
    date: str = ""

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def isolated_pip_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` for a pip that reads no config file and no find-links / extra index /
    constraints from the environment; the index itself (``PIP_INDEX_URL``, a PyPI mirror) and
    its certificates stay."""
    env = {k: v for k, v in environ.items() if k not in PIP_LOCATION_VARS}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def parse_results(output: str) -> tuple[list[Check], dict[str, dict[str, str]]]:
    """The checks and versions a ``tools.cuda_env_checks`` run printed among its other logs."""
    checks, versions = [], {}
    for line in output.splitlines():
        if line.startswith(CHECK_MARK):
            data = json.loads(line[len(CHECK_MARK):])
            checks.append(Check(str(data["env"]), str(data["name"]), bool(data["ok"]),
                                str(data["detail"])))
        elif line.startswith(VERSIONS_MARK):
            data = json.loads(line[len(VERSIONS_MARK):])
            versions.setdefault(str(data["env"]), {}).update(
                {str(k): str(v) for k, v in data["versions"].items()})
    return checks, versions


def run_failure(env: str, label: str, code: int, output: str) -> Check:
    """A FAIL for a run that exited non-zero: its code and last lines."""
    tail = [line for line in deque(output.splitlines(), maxlen=TAIL_LINES) if line.strip()]
    return Check(env, f"run `{label}`", False,
                 f"exited with code {code}; last lines: " + " | ".join(tail[-5:]))


def summary(checks: Sequence[Check]) -> str:
    failed = sum(not c.ok for c in checks)
    return (f"{len(checks)} checks: {len(checks) - failed} passed, {failed} failed"
            + ("" if failed or checks else " (nothing ran)"))


def deepspeed_recipes(recipes: Sequence[Path]) -> list[Path]:
    """The recipes with a top-level ``deepspeed:`` key (they need torchrun)."""
    return [p for p in recipes
            if re.search(r"^deepspeed:\s*\S", p.read_text(encoding="utf-8"), re.M)]


def gpu_recipes(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if not p.stem.endswith("-cpu"))


def torchrun_environ(port: int) -> dict[str, str]:
    """What torchrun sets for a one-process job (FORCE_TORCHRUN=1 on one GPU)."""
    return {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def human_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    size, unit = float(n), "B"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            break
        size /= 1024
    return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"


def disk_usage(path: Path) -> int | None:
    """Bytes allocated under ``path`` (symlinks not followed), like ``du -s``."""
    if not path.exists():
        return None
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def machine_line() -> str:
    gpu = envs.detect_device()
    return (f"{platform.system()} {platform.machine()}, glibc {envs.glibc_version() or '?'}, "
            f"Python {platform.python_version()}, {os.cpu_count()} CPUs, "
            f"{'a GPU' if gpu == 'cuda' else 'no GPU'}")


def render_doc(report: Report, prefix: Path) -> str:
    """docs/cuda-envs.md: the last run's date, versions, every check line and what they mean."""
    rows = []
    for label, env, dist in VERSION_ROWS:
        value = report.versions.get(env, {}).get(dist)
        if value:
            rows.append(f"| {label} | {env} | {value} |")
    timings = ", ".join(f"{k} {v:.0f} s" for k, v in report.timings.items())
    lines = [
        "# CUDA environments, checked without a GPU",
        "",
        "Written by `make check-cuda-envs`"
        " ([tools/check_cuda_envs.py](../tools/check_cuda_envs.py), checks in"
        " [tools/cuda_env_checks.py](../tools/cuda_env_checks.py) and the"
        " `tools/cuda_checks_*.py` modules it runs); each run replaces this file. Run it"
        " when a file in `requirements/` changes; it is not part of"
        " `make test` (the two environments download several GB).",
        "",
        f"**Last run:** {report.date} on {report.machine}: **{summary(report.checks)}**.",
        f"Timings: {timings or 'none'}. Disk used by `{prefix}/`: "
        f"{human_bytes(report.disk_bytes)}.",
        "",
        "## Versions",
        "",
        "| package | env | version |",
        "|---|---|---|",
        *rows,
        "",
        "## Checks",
        "",
        "```text",
        *(c.line() for c in report.checks),
        summary(report.checks),
        "```",
        "",
        DOC_EXPLANATION.format(prefix=prefix, deepspeed=DEEPSPEED).strip(),
        "",
    ]
    return "\n".join(lines)


DOC_EXPLANATION = """
## How the environments are built

`python3 -m tools.envs create {{train,infer}} --device cuda --prefix {prefix}`: the requirement
files and stamps a GPU box uses (`requirements/train.txt`, `requirements/infer-cuda.txt`), in a
prefix of their own so that the CPU environments in `.venv/` stay untouched. pip runs with
`PIP_CONFIG_FILE=/dev/null` and without `PIP_FIND_LINKS`, `PIP_EXTRA_INDEX_URL`, `PIP_CONSTRAINT`
and `PIP_NO_INDEX`: our CPU machines keep a CPU torch 2.13.0 wheel on pip's find-links and cap
torch with a constraints file, and pip would prefer `2.13.0+cpu` to PyPI's CUDA `2.13.0`
(`tools.envs` now also refuses a CPU torch in a CUDA env). The train env then gets
`deepspeed=={deepspeed}` for the `-ds-z3` recipes: the newest DeepSpeed LlamaFactory 0.9.5
supports (its `deepspeed` extra: 0.10.0 to 0.16.9). It stays out of `requirements/train.txt`,
which the CPU train env shares; on a GPU box install it the same way:
`.venv/train/bin/pip install deepspeed=={deepspeed}`.

## What the checks cover

* **Both envs**: every `==` pin installed exactly, `pip check` clean, torch a CUDA build of the
  pinned version, the compiled libraries (vLLM's kernels; torchvision, torchaudio) resolve every
  library and symbol except the NVIDIA driver's `libcuda.so.1` (and Python's C API), i.e. the
  wheels were built for this torch.
* **infer**: `import vllm` at the pinned version; eval's modules import under vLLM's
  transformers; eval/engine.py's own builders make every object the engine hands vLLM, checked
  against the installed vLLM: `llm_kwargs` (every key an `EngineArgs` field,
  `EngineArgs(**kwargs)` built, for each GPU config and base model) with the LoRA ranks the
  adapters have (8 for ours, from their train recipes; 64 for the IEPile LoRA) accepted by
  vLLM's `LoRAConfig` and `PEFTHelper`; `sampling_params` for each stage's real requests
  (extraction free or with its EBNF span grammar, stage 2 with the template's stop strings,
  calibration a choice of the domain's labels), every structured output validated by vLLM's
  xgrammar check; `lora_requests`, `tokens_prompt` and the `LLM.generate` call; the engine-core
  shutdown and metrics that `close()` and `stats()` use; the data-parallel shard commands and
  their `CUDA_VISIBLE_DEVICES` against eval/placement.py's plan. `create_engine_config` stops at
  its first step, `DeviceConfig`: vLLM's CUDA platform needs the driver's `libcuda.so.1`.
* **train**: what "parses" means for a recipe, three levels: *check* is tools.train's
  device-neutral check (what `--check` and `DRY_RUN=1` run; missing training data is expected
  here); *GPU parse* is the recipe unchanged (bf16, DeepSpeed) through LlamaFactory's
  `get_train_args` with `torch.cuda` faked as one GPU of compute capability 9.0, a DeepSpeed
  recipe in a torchrun-like process (RANK, WORLD_SIZE, LOCAL_RANK set, as `FORCE_TORCHRUN=1`
  makes it) whose NCCL process group (it needs a GPU) is created with gloo, and it must return
  what a GPU box gets (bf16, `cuda:0`, ZeRO-3 with its "auto" values filled in); *dry run* is
  `tools.train --dry-run` with 1, 2 and 8 faked GPUs printing the launch line of a GPU box.

## What only a GPU can show

Kernels running at all (flash attention, LoRA kernels, xgrammar's GPU masks), memory (does an
8B model with three LoRAs fit at `gpu_memory_utilization` 0.9 and `max_model_len` 4096), speed,
bf16 numerics, NCCL and real multi-GPU: tensor parallelism, data-parallel shards on their GPUs,
DeepSpeed ZeRO-3 training across processes and nodes.
"""


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (a reader sees the old or the new file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class CheckRun:
    env: str  # the environment whose python runs it
    args: tuple[str, ...]
    environ: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.env}: python -m tools.cuda_env_checks {' '.join(self.args)}"


def plan_runs(ds_recipes: Sequence[str], port: int) -> list[CheckRun]:
    """The check runs, in order: infer, train, train-gpu, then one per DeepSpeed recipe."""
    runs = [CheckRun("infer", ("infer",)), CheckRun("train", ("train", DEEPSPEED)),
            CheckRun("train", ("train-gpu",))]
    runs += [CheckRun("train", ("train-ds", recipe), torchrun_environ(port))
             for recipe in ds_recipes]
    return runs


def check_environ(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a check run: offline (nothing is downloaded), no telemetry, the
    repository importable; GPU masks left as they are (the checks fake GPUs themselves)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES",)}
    env.update(HF_HUB_OFFLINE="1", VLLM_NO_USAGE_STATS="1", PYTHONPATH=str(REPO),
               TOKENIZERS_PARALLELISM="false", **extra)
    return env


def execute(run: CheckRun, python: Path, log_dir: Path) -> tuple[list[Check], dict]:
    """Run one check run; its output is kept in ``log_dir``."""
    cmd = [str(python), "-m", "tools.cuda_env_checks", *run.args]
    done = subprocess.run(cmd, cwd=REPO, env=check_environ(run.environ), capture_output=True,
                          text=True, check=False)
    output = done.stdout + done.stderr
    log_dir.mkdir(parents=True, exist_ok=True)
    name = "-".join([run.env, *(Path(a).stem for a in run.args)])
    (log_dir / f"{name}.log").write_text(output, encoding="utf-8")
    checks, versions = parse_results(done.stdout)
    if done.returncode != 0:
        checks.append(run_failure(run.env, run.label, done.returncode, output))
    elif not checks:
        checks.append(Check(run.env, f"run `{run.label}`", False, "printed no check"))
    return checks, versions


def ensure_deepspeed(python: Path, environ: Mapping[str, str]) -> None:
    have = subprocess.run([str(python), "-c", "import importlib.metadata as m; "
                           "print(m.version('deepspeed'))"], capture_output=True, text=True,
                          check=False).stdout.strip()
    if have != DEEPSPEED:
        envs.run([python, "-m", "pip", "install", f"deepspeed=={DEEPSPEED}"], env=dict(environ))


def build(prefix: Path, report: Report) -> dict[str, bool]:
    """Create/update both envs (no-op when their stamps match); which ones are usable."""
    environ = isolated_pip_environ(os.environ)
    ready = {}
    for name in ("train", "infer"):
        start = time.monotonic()
        stamp = prefix / name / envs.STAMP_NAME
        before = stamp.stat().st_mtime_ns if stamp.is_file() else None
        done = subprocess.run([sys.executable, "-m", "tools.envs", "create", name, "--device",
                               "cuda", "--prefix", str(prefix)], cwd=REPO, env=environ,
                              check=False)
        ready[name] = done.returncode == 0
        if ready[name] and name == "train":
            try:
                ensure_deepspeed(prefix / "train" / "bin" / "python", environ)
            except envs.EnvError as exc:
                report.checks.append(Check("train", f"install deepspeed=={DEEPSPEED}", False,
                                           str(exc).splitlines()[0]))
        took = time.monotonic() - start
        report.timings[f"build {name}"] = took
        where = os.path.relpath(prefix / name, REPO)
        if not ready[name]:
            detail = f"tools.envs exited with code {done.returncode}"
        elif before is not None and stamp.stat().st_mtime_ns == before:
            detail = f"{where} (already up to date: its stamp matched)"
        else:
            detail = f"{where} in {took:.0f} s"
        report.checks.append(Check(name, "build (tools.envs create --device cuda)",
                                   ready[name], detail))
    for check in report.checks:
        print(check.line(), flush=True)
    return ready


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tools.check_cuda_envs",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--prefix", type=Path, default=PREFIX, help="default: %(default)s")
    parser.add_argument("--doc", type=Path, default=DOC, help="default: %(default)s")
    parser.add_argument("--no-build", action="store_true",
                        help="check the envs already under --prefix, build nothing")
    args = parser.parse_args(argv)
    prefix = args.prefix if args.prefix.is_absolute() else REPO / args.prefix
    report = Report(machine=machine_line(),
                    date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    if args.no_build:
        ready = {n: (prefix / n / "bin" / "python").exists() for n in ("train", "infer")}
    else:
        ready = build(prefix, report)
    ds = [str(p.relative_to(REPO)) for p in
          deepspeed_recipes(gpu_recipes(REPO / "recipes" / "train"))]
    start = time.monotonic()
    for run in plan_runs(ds, free_port()):
        if not ready.get(run.env):
            report.checks.append(Check(run.env, f"run `{run.label}`", False,
                                       f"no {run.env} env under {prefix}"))
            continue
        checks, versions = execute(run, prefix / run.env / "bin" / "python", prefix / "logs")
        for check in checks:
            print(check.line(), flush=True)
        report.checks += checks
        for env, found in versions.items():
            report.versions.setdefault(env, {}).update(found)
    report.timings["checks"] = time.monotonic() - start
    report.disk_bytes = disk_usage(prefix)
    doc = args.doc if args.doc.is_absolute() else REPO / args.doc
    write_atomic(doc, render_doc(report, args.prefix))
    print(summary(report.checks))
    print(f"written: {args.doc} (logs of each run: {args.prefix / 'logs'})")
    return 1 if report.failed or not report.checks else 0


if __name__ == "__main__":
    raise SystemExit(main())
