"""The GPUs this environment sees, how DP x TP shards split them, and what a model's heads allow.

The device facts both the inference placement (:mod:`eval.placement`) and the training launcher
(``tools/train.py``) need, with no config of either: visible GPU ids (``CUDA_VISIBLE_DEVICES``
kept as written, never overwritten), the shard split, a model reference's locality, and vLLM's
tensor-parallel rule on attention heads (from a local ``config.json``, or the backbone registry
for a hub id of a paper backbone).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from core.backbones import backbone_of
from core.io import ConfigError

# Test-only: "<n>[:<major>.<minor>]" stands in for torch.cuda (n GPUs of that compute capability,
# default 9.0), so tests prove multi-GPU logic on CPU. Read by cuda_devices() and nowhere else.
FAKE_GPUS_ENV = "SAMNER_FAKE_GPUS"
Capability = tuple[int, int]


def cuda_devices(capability: bool = False) -> tuple[int, Capability | None]:
    """(GPUs torch sees here, their lowest compute capability if ``capability``).

    The count is ``torch.cuda.device_count()``, so it respects ``CUDA_VISIBLE_DEVICES`` and is 0
    with a CPU torch or none at all. Reading the capability initialises CUDA (a context on the
    first GPU), so only the training launcher, which then execs, asks for it.
    """
    fake = os.environ.get(FAKE_GPUS_ENV)
    if fake:
        count, _, cap = fake.partition(":")
        try:
            major, _, minor = (cap or "9.0").partition(".")
            return int(count), ((int(major), int(minor or 0)) if int(count) else None)
        except ValueError:
            raise ConfigError(f"{FAKE_GPUS_ENV}={fake!r}: expected <n>[:<major>.<minor>] "
                              "(test-only)") from None
    try:
        import torch
    except ImportError:
        return 0, None
    if not torch.cuda.is_available():
        return 0, None
    count = torch.cuda.device_count()
    if not capability or not count:
        return count, None
    return count, min(torch.cuda.get_device_capability(i) for i in range(count))


def visible_gpu_ids(count: int | None = None, environ: Mapping[str, str] | None = None
                    ) -> list[str]:
    """The ids a child's ``CUDA_VISIBLE_DEVICES`` may name: the entries of the current mask
    (kept as written: numbers, UUIDs or MIG ids) when one is set, else ``0..count-1``; ``count``
    defaults to :func:`cuda_devices`. An empty mask means no GPU."""
    environ = os.environ if environ is None else environ
    count = cuda_devices()[0] if count is None else count
    mask = environ.get("CUDA_VISIBLE_DEVICES")
    if mask is None:
        return [str(i) for i in range(count)]
    return [part.strip() for part in mask.split(",") if part.strip()][:count]


def place_shards(visible: Sequence[str], dp: int, tp: int) -> list[list[str]]:
    """Shard i gets ``visible[i*tp:(i+1)*tp]``; with no visible GPU every shard runs on CPU
    (an empty list). Raises :class:`ConfigError` when DP×TP GPUs are not there."""
    if not visible:
        return [[] for _ in range(dp)]
    if dp * tp > len(visible):
        raise ConfigError(f"engine: DP={dp} x TP={tp} needs {dp * tp} GPUs, but only "
                          f"{len(visible)} are visible ({','.join(visible)}); lower DP or TP, "
                          "or make more GPUs visible (CUDA_VISIBLE_DEVICES)")
    return [list(visible[i * tp:(i + 1) * tp]) for i in range(dp)]


def looks_local(model: str) -> bool:
    """Whether a model reference is a local path rather than a Hub id (``org/name``)."""
    return model.startswith((".", "/", "~")) or Path(model).exists() or model.count("/") != 1


def attention_heads(model: str) -> tuple[int, int] | None:
    """(attention heads, KV heads) from a local model dir's ``config.json``, else the registered
    backbone's for its hub id; None when neither knows (the check is then skipped)."""
    config_file = Path(model) / "config.json"
    if not config_file.is_file():
        backbone = backbone_of(model)
        return backbone.heads if backbone is not None else None
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{config_file}: unreadable ({exc})") from None
    data = data.get("text_config", data) if "num_attention_heads" not in data else data
    heads = data.get("num_attention_heads")
    if not isinstance(heads, int):
        return None
    kv_heads = data.get("num_key_value_heads") or heads
    return heads, kv_heads


def tp_problem(model: str, heads: int, kv_heads: int, tp: int) -> str | None:
    """vLLM's rule: TP divides the attention heads, and the KV heads split evenly over the TP
    ranks or are replicated a whole number of times (TP a multiple of them)."""
    if heads % tp:
        return (f"engine.tensor_parallel_size: {model} has {heads} attention heads, which "
                f"TP={tp} does not divide")
    if (kv_heads % tp) if tp <= kv_heads else (tp % kv_heads):
        return (f"engine.tensor_parallel_size: {model} has {kv_heads} KV heads, which TP={tp} "
                "can neither split nor replicate evenly")
    return None
