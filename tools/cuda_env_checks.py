"""Checks run INSIDE the CUDA train / infer environments on a machine without a GPU.

    .venv-cuda/infer/bin/python -m tools.cuda_env_checks infer
    .venv-cuda/train/bin/python -m tools.cuda_env_checks train
    .venv-cuda/train/bin/python -m tools.cuda_env_checks train-gpu
    .venv-cuda/train/bin/python -m tools.cuda_env_checks train-ds RECIPE   (torchrun-like env)

``tools/check_cuda_envs.py`` (``make check-cuda-envs``) builds the environments and runs these;
each check prints one ``SAMNER-CHECK {json}`` line (``env``, ``name``, ``ok``, ``detail``) and
each run one ``SAMNER-VERSIONS {json}`` line, among whatever vLLM, LlamaFactory and DeepSpeed
log. Everything short of running a kernel is checked: what the project hands vLLM is built by
eval/engine.py's own builders (``llm_kwargs``, ``sampling_params``, ``lora_requests``,
``tokens_prompt``) from the stage code's real requests and checked against the installed vLLM's
classes; the GPU recipes go through LlamaFactory's parser with ``torch.cuda`` faked.

The checks live in tools/cuda_checks_common.py (the output lines, running one check, the
checks both envs get), tools/cuda_checks_infer.py and tools/cuda_checks_train.py (which also
says what "parses" means for a training recipe).
"""

from __future__ import annotations

import os
import sys

from tools.cuda_checks_common import REPO
from tools.cuda_checks_infer import infer_checks
from tools.cuda_checks_train import train_checks, train_ds_check, train_gpu_checks


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.chdir(REPO)  # recipes name their files relative to the repository
    if args[:1] == ["infer"]:
        infer_checks()
    elif args[:1] == ["train"] and len(args) == 2:
        train_checks(args[1])
    elif args[:1] == ["train-gpu"]:
        train_gpu_checks()
    elif args[:1] == ["train-ds"] and len(args) == 2:
        train_ds_check(args[1])
    else:
        print("usage: python -m tools.cuda_env_checks infer | train DEEPSPEED_VERSION | "
              "train-gpu | train-ds RECIPE", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
