"""What the CUDA environment checks share: the ``SAMNER-CHECK`` / ``SAMNER-VERSIONS`` lines
they print, running one check, the GPU configs and recipes, and the checks both environments
get (pins, ``pip check``, torch a CUDA build, the compiled libraries link).

Runs INSIDE the CUDA train / infer environments (see tools/cuda_env_checks.py, the entry point);
standard library at import time, torch and the rest imported by the checks that need them.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import re
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHECK_MARK = "SAMNER-CHECK "
VERSIONS_MARK = "SAMNER-VERSIONS "

# The GPU configs and recipes: every file without "cpu" in its name.
INFER_CONFIGS = tuple(sorted(p for p in (REPO / "recipes" / "infer").glob("*.yaml")
                             if "cpu" not in p.stem))
TRAIN_RECIPES = tuple(sorted(p for p in (REPO / "recipes" / "train").glob("*.yaml")
                             if not p.stem.endswith("-cpu")))

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
    from tools.env_stamps import _logical_lines, requirement_files

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

