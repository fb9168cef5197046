"""A verified GGUF file to a float32 Hugging Face checkpoint that LlamaFactory can train.

transformers loads a GGUF dequantised, but the model keeps quantizer marks that make training
refuse it, names eos from the wrong id for some GGUF tokenizers and, for GGUFs without a chat
template, has none: each is repaired here before ``save_pretrained``. Runs in .venv/train
(transformers + gguf); :mod:`tools.small_model` calls it once per pinned model.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.io import current_umask
from core.templates import CHATML_JINJA
from tools.small_model_wheels import SmallModelError

SOURCE_FILE = "samner_source.json"
_UMASK = current_umask()


def gguf_special_tokens(gguf_path: Path) -> dict[str, str]:
    """``{bos,eos,pad,unk}_token`` strings named by the GGUF's tokenizer metadata ids."""
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf_path))
    tokens_field = reader.fields.get("tokenizer.ggml.tokens")
    if tokens_field is None:
        return {}
    tokens = tokens_field.contents()
    found = {}
    for name, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"),
                      ("pad", "padding_token_id"), ("unk", "unknown_token_id")):
        field = reader.fields.get(f"tokenizer.ggml.{key}")
        if field is not None:
            found[f"{name}_token"] = tokens[int(field.contents())]
    return found


@contextlib.contextmanager
def _gguf_parsed_once() -> Iterator[None]:
    """Within the block, every ``gguf.GGUFReader(path)`` of one path is the same reader.

    transformers opens the GGUF anew for the tokenizer's config, the tokenizer, the model's
    config and the weights, and gguf-py parses a 151k-token vocabulary element by element: five
    parses of ~20 s each on our CPU. The reader only reads (a memory map), so sharing is safe.
    """
    import gguf

    original = gguf.GGUFReader
    readers: dict[tuple[str, str], Any] = {}

    def shared_reader(path: str | os.PathLike[str], mode: str = "r") -> Any:
        key = (os.path.realpath(path), mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf.GGUFReader = shared_reader
    try:
        yield
    finally:
        gguf.GGUFReader = original


def convert_gguf(gguf_path: Path, out: Path, source: dict[str, Any] | None = None,
                 chat_format: str = "gguf") -> dict[str, float]:
    """A float32 Hugging Face checkpoint in ``out`` from a verified GGUF file; returns timings.

    Written to a temporary dir beside ``out`` and renamed into place, so ``out`` is either a
    complete checkpoint (with ``samner_source.json``) or untouched.
    """
    with _gguf_parsed_once():
        return _convert_gguf(gguf_path, out, source, chat_format)


def _convert_gguf(gguf_path: Path, out: Path, source: dict[str, Any] | None,
                  chat_format: str) -> dict[str, float]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    timings = {}
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    # transformers' GGUF llama converter takes eos from bos_token_id: name them from the GGUF.
    for attr, token in gguf_special_tokens(gguf_path).items():
        setattr(tokenizer, attr, token)
    if not tokenizer.chat_template:
        if chat_format != "chatml":
            raise SmallModelError(f"{gguf_path.name} carries no chat template")
        tokenizer.chat_template = CHATML_JINJA
    timings["tokenizer_s"] = time.perf_counter() - start

    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                 dtype=torch.float32)
    # A GGUF-loaded model carries quantizer marks; LlamaFactory then refuses to train it.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    ids = {name: tokenizer.convert_tokens_to_ids(getattr(tokenizer, f"{name}_token"))
           for name in ("bos", "eos", "pad") if getattr(tokenizer, f"{name}_token", None)}
    for name, token_id in ids.items():
        setattr(model.config, f"{name}_token_id", token_id)
        setattr(model.generation_config, f"{name}_token_id", token_id)
    model.generation_config.do_sample = False
    timings["load_gguf_s"] = time.perf_counter() - start

    start = time.perf_counter()
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        record = {**(source or {}), "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "gguf_file": gguf_path.name, "dtype": "float32",
                  "transformers": _version("transformers"), "gguf": _version("gguf"),
                  "parameters": sum(p.numel() for p in model.parameters())}
        (staging / SOURCE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        # mkdtemp makes 0700 and safetensors writes 0600: give outputs the usual permissions.
        os.chmod(staging, 0o777 & ~_UMASK)
        for path in staging.iterdir():
            os.chmod(path, 0o666 & ~_UMASK)
        _replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    timings["save_s"] = time.perf_counter() - start
    return timings


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _replace_dir(new: Path, target: Path) -> None:
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


def check_load(out: Path, max_new_tokens: int = 8) -> dict[str, Any]:
    """Load the checkpoint the normal way and generate a few greedy tokens from a chat prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    load_s = time.perf_counter() - start
    messages = [{"role": "user", "content": "Name one city in France."}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)
    start = time.perf_counter()
    with torch.no_grad():
        generated = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    new = generated[0, ids["input_ids"].shape[1]:]
    return {"load_s": load_s, "generate_s": time.perf_counter() - start,
            "new_tokens": int(new.shape[0]), "dtype": str(model.dtype),
            "text": tokenizer.decode(new, skip_special_tokens=True)}
