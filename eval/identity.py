"""What a saved answer depends on, as digests: model and adapter weights, decoding, the request.

Resume reuses a saved answer only for the identical request (:func:`request_digest`): the same
prompt token ids, adapter and base weights (by content, not path), decoding parameters, engine
settings that change outputs, and grammar or choices. Anything else is generated again, so an
edited definition, sentence, prompt wording or swapped checkpoint can never reuse a stale answer.

Hashing an 8B checkpoint takes a minute, so file digests are cached by (absolute path, size,
mtime): a file copied or rewritten in place gets a new mtime and is hashed again. The cache lives
in ``$SAMNER_CACHE`` (default ``~/.cache/samner``); deleting it only costs time.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.io import sha256_of, write_text_atomic

# Files that decide what a model or adapter computes (tokenizer files shape the prompt ids,
# which are hashed themselves, but a changed tokenizer config can change decoding too).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
CONFIG_FILES = ("config.json", "adapter_config.json", "generation_config.json",
                "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _cache_path() -> Path:
    root = os.environ.get("SAMNER_CACHE") or Path.home() / ".cache" / "samner"
    return Path(root) / "file_digests.json"


def file_digest(path: Path) -> str:
    """sha256 of a file, cached by (absolute path, size, mtime_ns)."""
    path = path.resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = _cache_path()
    try:
        cache = json.loads(cache_file.read_text())
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return cache[key]
    digest = sha256_of(path)
    cache = {k: v for k, v in cache.items() if not k.startswith(f"{path}|")} | {key: digest}
    try:
        write_text_atomic(cache_file, json.dumps(cache, indent=0, sort_keys=True))
    except OSError:  # a read-only home only costs the next run the same hashing
        return digest
    return digest


def dir_digest(path: str | os.PathLike[str]) -> str:
    """One digest over a model or adapter directory's weight and config files (names included)."""
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file() and (
        p.name in CONFIG_FILES or p.suffix in WEIGHT_SUFFIXES))
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.relative_to(root).as_posix()}\0{file_digest(file)}\n".encode())
    return digest.hexdigest()


def model_identity(model: str, revision: str = "") -> dict[str, str]:
    """A local checkpoint by content; a hub id by id and revision (unpinned: "unpinned")."""
    if Path(model).is_dir():
        return {"local_sha256": dir_digest(model)}
    return {"hub_id": model, "revision": revision or "unpinned"}


def request_digest(request: Any, context: Mapping[str, Any]) -> str:
    """The digest of one LLM request in its engine ``context`` (see ``Backend.identity``)."""
    adapters = context.get("adapters", {})
    payload = {
        "context": {k: v for k, v in context.items() if k != "adapters"},
        "adapter": [request.adapter, adapters.get(request.adapter)] if request.adapter else None,
        "prompt_ids": list(request.prompt_ids),
        "max_tokens": request.max_tokens,
        "stop": list(request.stop),
        "choices": list(request.choices) if request.choices is not None else None,
        "grammar": request.grammar,
    }
    if request.json_schema is not None:  # only when set: older saved answers keep their digest
        payload["json_schema"] = request.json_schema
    text = json.dumps(payload, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
