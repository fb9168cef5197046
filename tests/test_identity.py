"""Weights by content (eval.identity): what a file and a model or adapter dir digest depend on,
and the (path, size, mtime) cache that spares re-hashing an 8B checkpoint."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from eval.identity import dir_digest, file_digest, model_identity


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SAMNER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "file_digests.json"


def adapter(root: Path) -> Path:
    """A LoRA dir as LlamaFactory leaves it: weights, configs, and files that change nothing."""
    root.mkdir(parents=True)
    (root / "adapter_config.json").write_text('{"r": 8}')
    (root / "adapter_model.safetensors").write_bytes(b"lora weights")
    (root / "README.md").write_text("trained on ...")
    (root / "trainer_state.json").write_text('{"loss": 1.0}')
    (root / "training_args.yaml").write_text("lr: 1")
    return root


def test_file_digest_is_the_sha256_and_cached_by_path_size_and_mtime(tmp_path: Path,
                                                                    cache: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"v1")
    assert file_digest(weights) == sha(b"v1")
    stat = weights.stat()
    assert json.loads(cache.read_text()) == {
        f"{weights.resolve()}|2|{stat.st_mtime_ns}": sha(b"v1")}
    # same size and mtime: the cache answers (this is what spares re-hashing a checkpoint)
    weights.write_bytes(b"v2")
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert file_digest(weights) == sha(b"v1")
    # a rewrite with a new mtime is hashed again, and replaces the file's old entry
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert file_digest(weights) == sha(b"v2")
    assert list(json.loads(cache.read_text()).values()) == [sha(b"v2")]


@pytest.mark.parametrize("content", ["not json", "[1, 2]"])
def test_a_broken_cache_costs_only_time(tmp_path: Path, cache: Path, content: str) -> None:
    cache.parent.mkdir(parents=True)
    cache.write_text(content)
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"x")
    assert file_digest(weights) == sha(b"x")
    assert list(json.loads(cache.read_text()).values()) == [sha(b"x")]


def test_dir_digest_covers_weights_and_configs_by_name_only(tmp_path: Path, cache: Path) -> None:
    lora = adapter(tmp_path / "lora")
    config, weights = sha(b'{"r": 8}'), sha(b"lora weights")
    expected = sha(f"adapter_config.json\0{config}\nadapter_model.safetensors\0{weights}\n"
                   .encode())
    assert dir_digest(lora) == expected
    # logs, cards and training state change nothing an engine computes
    (lora / "README.md").write_text("edited")
    (lora / "trainer_log.jsonl").write_text("{}\n")
    assert dir_digest(lora) == expected
    # another dir with the same files has the same digest: content, not path
    assert dir_digest(adapter(tmp_path / "copy")) == expected


@pytest.mark.parametrize("change", ["weights", "config", "rename", "tokenizer", "nested .bin"])
def test_dir_digest_changes_with_what_decides_the_output(tmp_path: Path, cache: Path,
                                                         change: str) -> None:
    lora = adapter(tmp_path / "lora")
    before = dir_digest(lora)
    if change == "weights":
        (lora / "adapter_model.safetensors").write_bytes(b"retrained")
    elif change == "config":
        (lora / "adapter_config.json").write_text('{"r": 16}')
    elif change == "rename":
        (lora / "adapter_model.safetensors").rename(lora / "model.safetensors")
    elif change == "tokenizer":
        (lora / "tokenizer_config.json").write_text("{}")
    else:
        (lora / "sub").mkdir()
        (lora / "sub" / "extra.bin").write_bytes(b"x")
    assert dir_digest(lora) != before


def test_model_identity(tmp_path: Path, cache: Path) -> None:
    lora = adapter(tmp_path / "lora")
    assert model_identity(str(lora)) == {"local_sha256": dir_digest(lora)}
    assert model_identity(str(lora), "abc") == {"local_sha256": dir_digest(lora)}
    assert model_identity("meta-llama/Meta-Llama-3-8B") == {
        "hub_id": "meta-llama/Meta-Llama-3-8B", "revision": "unpinned"}
    assert model_identity("org/model", "0123abc") == {"hub_id": "org/model",
                                                      "revision": "0123abc"}
