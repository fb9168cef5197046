"""Shared fixtures. Real data is read from ../shared/data (beside the checkout), never copied."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from data_prep import crossner
from data_prep.mappings import CROSSNER_DOMAINS

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CROSSNER_RAW = SHARED_DATA / "crossner"

__all__ = ["CROSSNER_DOMAINS", "CROSSNER_RAW", "REPO", "SHARED_DATA"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real test data not found at {SHARED_DATA} (the checkout needs ../shared)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def converted_crossner(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All CrossNER splits converted once per session into a temporary dir."""
    out = tmp_path_factory.mktemp("data") / "crossner"  # DATA_DIR/crossner, as `make data`
    crossner.convert(shared_data / "crossner", out)
    return out


def venv_dir(name: str) -> Path:
    return REPO / ".venv" / name


@pytest.fixture(scope="session")
def venv_python():
    """``venv_python("train")`` → that env's python; fails under CI=true when it is missing
    (CI must build it), skips elsewhere so a quick local run stays possible."""

    def get(name: str) -> Path:
        python = venv_dir(name) / "bin" / "python"
        if not python.exists():
            message = f"{python} missing: run `make env-{name}` (or `make envs`)"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        return python

    return get


def run_json(python: Path, script: str, timeout: int = 900) -> Any:
    """Run ``script`` with ``python`` from the repo root; its last stdout line is JSON."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=timeout)
    if done.returncode != 0:
        pytest.fail(f"subprocess failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def tiny_model(venv_python, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama-3-shaped model built locally (seconds), shared by the slow tests."""
    out = tmp_path_factory.mktemp("tiny-llama")
    done = subprocess.run([str(venv_python("train")), "-m", "tools.tiny_model", "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""})
    if done.returncode != 0:
        pytest.fail(f"tiny model build failed:\n{done.stderr[-3000:]}")
    return out
