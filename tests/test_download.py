"""The pinned, checksum-verified download, exercised against a file:// copy of upstream's layout."""

from __future__ import annotations

import pytest

from core.io import DataError, ProjectError
from data_prep import download


@pytest.fixture
def upstream(tmp_path, shared_data):
    """A directory shaped like the CrossNER repo (LICENSE, ner_data/<domain>/...)."""
    root = tmp_path / "upstream"
    root.mkdir()
    (root / "ner_data").symlink_to(shared_data / "crossner")
    (root / "LICENSE").symlink_to(shared_data / "crossner" / "LICENSE")
    return f"file://{root}/{{path}}"


def test_download_verifies_and_is_idempotent(tmp_path, upstream, capsys):
    out = tmp_path / "raw"
    assert download.download("crossner", out, upstream) == (16, 0)
    assert (out / "music" / "test.txt").is_file() and (out / "LICENSE").is_file()
    assert download.download("crossner", out, upstream) == (0, 16)
    (out / "ai" / "dev.txt").write_text("tampered")
    assert download.download("crossner", out, upstream) == (1, 15)
    assert download.main(["crossner", "--out", str(out), "--url", upstream]) == 0
    assert "0 downloaded, 16 already verified" in capsys.readouterr().out


def test_checksum_mismatch_is_an_error_and_writes_nothing(tmp_path, shared_data):
    wrong = tmp_path / "wrong"
    (wrong / "ner_data" / "ai").mkdir(parents=True)
    for split in ("train", "dev", "test"):  # every domain file serves ai/test.txt's bytes
        (wrong / "ner_data" / "ai" / f"{split}.txt").write_text("x\tO\n")
    (wrong / "LICENSE").symlink_to(shared_data / "crossner" / "LICENSE")
    out = tmp_path / "raw"
    with pytest.raises(DataError, match=r"sha256 \w+ != pinned"):
        download.download("crossner", out, f"file://{wrong}/{{path}}")
    assert not (out / "ai" / "dev.txt").exists()
    assert not list(out.rglob("*.tmp"))


def test_unreachable_source_and_unknown_name(tmp_path):
    with pytest.raises(ProjectError, match="cannot download"):
        download.download("crossner", tmp_path, f"file://{tmp_path}/missing/{{path}}")
    with pytest.raises(ProjectError, match="no source named 'nope'"):
        download.load_source("nope")
