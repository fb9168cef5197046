"""Shared fixtures. Real data is read from ../shared/data (beside the checkout), never copied."""

from __future__ import annotations

from pathlib import Path

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
    out = tmp_path_factory.mktemp("crossner")
    crossner.convert(shared_data / "crossner", out)
    return out
