"""tools.envs: uv or pip, and pip's config carried over to uv (fast: no network, no real install).

The expected command lines are written out by hand: they are what a build prints and runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tools import envs

UV = Path("/p/.uv/bin/uv")
PY = Path("/p/infer/bin/python")
REQ = Path("/repo/requirements/infer-cpu.txt")
# `pip config list` on our CPU machines: local indexes, a find-links dir with the CPU torch wheel,
# a torch cap, a CA bundle and a timeout from PIP_* variables.
MACHINE_PIP_CONFIG = """\
:env:.cert='/etc/ssl/certs/ca-certificates.crt'
:env:.default-timeout='180'
:env:.disable-pip-version-check='1'
:env:.find-links='/opt/wheels'
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
global.find-links='/opt/wheels'
"""
MACHINE_OPTIONS = ("--constraint", "/etc/xdg/pip/constraints.txt",
                   "--extra-index-url", "file:///opt/pypi/simple",
                   "--extra-index-url", "file:///opt/pypi-more/simple",
                   "--find-links", "/opt/wheels")
MACHINE_ENV = {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt", "UV_HTTP_TIMEOUT": "180"}


@pytest.fixture(autouse=True)
def _no_ci_no_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("SAMNER_INSTALLER", raising=False)


# --- pip's config, as uv options --------------------------------------------------------------


def test_parse_pip_config_follows_pips_precedence() -> None:
    text = (
        ":env:.find-links='/env/wheels'\n"  # PIP_FIND_LINKS beats the config files
        "download.extra-index-url='file:///download-only'\n"  # not read by pip install
        "global.extra-index-url='file:///a file:///b'\n"
        "global.find-links='/opt/wheels'\n"
        "install.find-links='/install/wheels'\n"
        "install.no-index='true'\n"
        "global.no-index='false'\n"  # install beats global whatever the order
        "a line that is no setting\n"
    )
    assert envs.parse_pip_config(text) == {"find-links": "/env/wheels", "no-index": "true",
                                           "extra-index-url": "file:///a file:///b"}


def test_this_machines_pip_config_becomes_uv_options() -> None:
    config = envs.parse_pip_config(MACHINE_PIP_CONFIG)
    assert envs.uv_settings(config) == (list(MACHINE_OPTIONS), MACHINE_ENV, [])


def test_uv_settings_index_no_index_and_what_uv_would_ignore() -> None:
    config = {"index-url": "https://mirror.example/simple", "no-index": "yes", "pre": "1",
              "only-binary": ":all:", "trusted-host": "mirror.example", "timeout": "60",
              "no-cache-dir": "1"}
    assert envs.uv_settings(config) == (
        ["--index-url", "https://mirror.example/simple", "--no-index",
         "--allow-insecure-host", "mirror.example"],
        {"UV_HTTP_TIMEOUT": "60"},
        ["only-binary", "pre"],
    )
    assert envs.uv_settings({"no-index": "0"}) == ([], {}, [])


def test_pip_config_reads_the_real_pip(tmp_path: Path) -> None:
    """The `pip config list` format parsed above is the one this pip prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_FIND_LINKS=f"{tmp_path} /other",
               PIP_NO_INDEX="1")
    config = envs.pip_config(Path(sys.executable), env)
    assert config == {"config-file": os.devnull, "find-links": f"{tmp_path} /other",
                      "no-index": "1"}
    assert envs.uv_settings(config) == (
        ["--find-links", str(tmp_path), "--find-links", "/other", "--no-index"], {}, [])


# --- the commands ------------------------------------------------------------------------------


@pytest.mark.parametrize("ci", [False, True])
def test_install_and_uninstall_commands(monkeypatch: pytest.MonkeyPatch, ci: bool) -> None:
    if ci:
        monkeypatch.setenv("CI", "true")
    uv = envs.Installer(UV, MACHINE_OPTIONS, MACHINE_ENV)
    assert uv.install(PY, REQ) == [
        UV, "pip", "install", "--python", PY, "--no-config", "--index-strategy",
        "unsafe-best-match", *MACHINE_OPTIONS, "-r", REQ,
        *(["--no-progress"] if ci else []),
    ]
    assert envs.PIP.install(PY, REQ) == [
        PY, "-m", "pip", "install", "-r", REQ, *(["--progress-bar", "off"] if ci else [])]
    assert uv.uninstall(PY, ["torchvision", "triton"]) == [
        UV, "pip", "uninstall", "--python", PY, "--no-config", "torchvision", "triton"]
    assert envs.PIP.uninstall(PY, ["triton"]) == [PY, "-m", "pip", "uninstall", "-y", "triton"]


def test_environment_settings_win_over_pips_config() -> None:
    uv = envs.Installer(UV, (), MACHINE_ENV)
    assert uv.environ({"SSL_CERT_FILE": "/mine.pem", "PATH": "/bin"}) == {
        "SSL_CERT_FILE": "/mine.pem", "UV_HTTP_TIMEOUT": "180", "PATH": "/bin"}
    assert envs.PIP.environ({"PATH": "/bin"}) == {"PATH": "/bin"}


# --- the choice: uv when it can be had, else pip -----------------------------------------------


def _fake_sources(monkeypatch: pytest.MonkeyPatch, config: str = MACHINE_PIP_CONFIG,
                  uv: Exception | Path = UV) -> list[str]:
    """pip_config and ensure_uv without subprocesses; returns the log of what was asked."""
    asked: list[str] = []

    def pip_config(py: Path, env: object) -> dict[str, str]:
        asked.append(f"pip_config {py}")
        return envs.parse_pip_config(config)

    def ensure_uv(prefix: Path, py: Path, env: object) -> Path:
        asked.append(f"ensure_uv {prefix}")
        if isinstance(uv, Exception):
            raise uv
        return uv

    monkeypatch.setattr(envs, "pip_config", pip_config)
    monkeypatch.setattr(envs, "ensure_uv", ensure_uv)
    return asked


def test_uv_by_default_with_pips_config(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _fake_sources(monkeypatch)
    got = envs.choose_installer(Path("/p"), PY, {})
    assert got == envs.Installer(UV, MACHINE_OPTIONS, MACHINE_ENV)
    assert asked == [f"pip_config {PY}", "ensure_uv /p"]


@pytest.mark.parametrize("value", ["pip", "PIP", " pip "])
def test_samner_installer_pip_forces_pip(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    asked = _fake_sources(monkeypatch)
    monkeypatch.setenv("SAMNER_INSTALLER", value)
    assert envs.choose_installer(Path("/p"), PY, {}) is envs.PIP
    assert asked == []  # not even pip's config is read


def test_uv_unavailable_falls_back_to_pip_with_a_note(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failure = envs.EnvError("`/p/.uv/bin/python -m pip install uv==0.13.9` exited with code 1; "
                            "last lines of its output:\n    ERROR: No matching distribution")
    _fake_sources(monkeypatch, uv=failure)
    assert envs.choose_installer(Path("/p"), PY, {}) is envs.PIP
    assert capsys.readouterr().out == (
        "note: not using uv (`/p/.uv/bin/python -m pip install uv==0.13.9` exited with code 1; "
        "last lines of its output:); installing with pip\n")


def test_a_pip_setting_uv_would_ignore_falls_back_to_pip(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked = _fake_sources(monkeypatch, config="global.pre='true'\nglobal.no-binary=':all:'\n")
    assert envs.choose_installer(Path("/p"), PY, {}) is envs.PIP
    assert capsys.readouterr().out == ("note: not using uv (pip's config sets no-binary, pre, "
                                       "which uv would not honour); installing with pip\n")
    assert asked == [f"pip_config {PY}"]  # uv is not even fetched


def test_samner_installer_uv_makes_a_failure_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_sources(monkeypatch, uv=envs.EnvError("no uv for this platform"))
    monkeypatch.setenv("SAMNER_INSTALLER", "uv")
    with pytest.raises(envs.EnvError, match=r"^no uv for this platform$"):
        envs.choose_installer(Path("/p"), PY, {})


def test_an_unknown_installer_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMNER_INSTALLER", "conda")
    with pytest.raises(envs.EnvError, match=r"SAMNER_INSTALLER='conda': use one of auto, uv, pip"):
        envs.choose_installer(Path("/p"), PY, {})


# --- the bootstrap: a pinned uv in PREFIX/.uv ------------------------------------------------


def _fake_uv(path: Path, version: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho 'uv {version} (x86_64-unknown-linux-gnu)'\n")
    path.chmod(0o755)
    return path


def test_ensure_uv_installs_the_pinned_uv_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    home = tmp_path / ".uv"
    calls: list[list[str]] = []

    def fake_run(cmd: list[str | Path], **_: object) -> str:
        calls.append([str(c) for c in cmd])
        _fake_uv(home / "bin" / "uv", envs.UV_VERSION)
        return ""

    monkeypatch.setattr(envs, "run", fake_run)
    assert envs.ensure_uv(tmp_path, PY, {}) == home / "bin" / "uv"
    assert calls == [[str(PY), "-m", "pip", "install", "--target", str(home), "--upgrade",
                      "--no-compile", "uv==0.13.9", "--progress-bar", "off"]]
    calls.clear()
    assert envs.ensure_uv(tmp_path, PY, {}) == home / "bin" / "uv"  # present: nothing runs
    assert calls == []
    _fake_uv(home / "bin" / "uv", "0.1.0")  # another version: replaced
    envs.ensure_uv(tmp_path, PY, {})
    assert len(calls) == 1


def test_ensure_uv_checks_what_pip_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(envs, "run", lambda cmd, **_: "")  # pip "installs" nothing
    with pytest.raises(envs.EnvError, match=r"uv reports version None, not 0\.13\.9"):
        envs.ensure_uv(tmp_path, PY, {})


# --- create with each installer --------------------------------------------------------------


def _fake_infer_venv(prefix: Path) -> Path:
    venv = prefix / "infer"
    site = venv / "lib" / "python3.11" / "site-packages"
    (site / "torchvision-0.28.0.dist-info").mkdir(parents=True)
    (venv / "bin").mkdir()
    (venv / "bin" / "python").touch()
    return venv


def test_create_installs_and_uninstalls_with_uv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = _fake_infer_venv(tmp_path)
    py, uv = venv / "bin" / "python", tmp_path / ".uv" / "bin" / "uv"
    monkeypatch.setattr(envs, "choose_installer",
                        lambda *_: envs.Installer(uv, ("--find-links", "/w"), MACHINE_ENV))
    calls: list[tuple[list[str], dict[str, str] | None]] = []
    monkeypatch.setattr(envs, "run", lambda cmd, env=None, **_: calls.append(
        ([str(c) for c in cmd], env)) or "")
    monkeypatch.setenv("SSL_CERT_FILE", "/mine.pem")

    envs.create("infer", "cpu", tmp_path)

    req = envs.requirements_file("infer", "cpu")
    assert [c for c, _ in calls[:2]] == [
        [str(uv), "pip", "install", "--python", str(py), "--no-config", "--index-strategy",
         "unsafe-best-match", "--find-links", "/w", "-r", str(req)],
        [str(uv), "pip", "uninstall", "--python", str(py), "--no-config", "torchvision"],
    ]
    for _, env in calls[:2]:
        assert env is not None
        assert (env["SSL_CERT_FILE"], env["UV_HTTP_TIMEOUT"]) == ("/mine.pem", "180")
    assert calls[2][0][-2] == "-c"  # the smoke check, with the venv's python
    assert (venv / envs.STAMP_NAME).read_text() == envs.stamp_text("infer", "cpu", req)


def test_create_without_uv_installs_with_pip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    venv = _fake_infer_venv(tmp_path)
    py = venv / "bin" / "python"
    _fake_sources(monkeypatch, uv=envs.EnvError("cannot run `pip`: no network"))
    calls: list[list[str]] = []
    monkeypatch.setattr(envs, "run", lambda cmd, **_: calls.append([str(c) for c in cmd]) or "")

    envs.create("infer", "cpu", tmp_path)

    req = envs.requirements_file("infer", "cpu")
    assert calls[:2] == [[str(py), "-m", "pip", "install", "-r", str(req)],
                         [str(py), "-m", "pip", "uninstall", "-y", "torchvision"]]
    out = capsys.readouterr().out
    note = "note: not using uv (cannot run `pip`: no network); installing with pip\n"
    assert out.count(note) == 1
    assert (venv / envs.STAMP_NAME).read_text() == envs.stamp_text("infer", "cpu", req)
