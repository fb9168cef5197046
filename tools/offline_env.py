"""The environment of the project's own subprocesses (training, inference, model conversion):
no Hub access (local paths only, so a missing file fails at once instead of hanging on the
network), the repository importable, no telemetry; ``cpu=True`` also hides any GPU."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def offline_env(cpu: bool = True, **extra: str) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO),
           "WANDB_DISABLED": "true", "TOKENIZERS_PARALLELISM": "false", **extra}
    if cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env
