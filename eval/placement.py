"""Where the engines run: the GPUs this environment sees, and DP×TP placement over them.

``make infer DP=N TP=M`` starts N shard processes with M GPUs each, taken in order from the
visible set (``CUDA_VISIBLE_DEVICES`` when set, else every GPU torch sees), so a mask that a user
or a scheduler set is split, never overwritten. Everything vLLM would reject only after a model
loaded (too few GPUs, a TP the attention heads do not divide, ``single_process`` on CUDA) is
refused here, before any engine starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.devices import attention_heads, place_shards, tp_problem, visible_gpu_ids
from core.io import ConfigError

if TYPE_CHECKING:  # annotations only: the config module calls this one to validate
    from eval.config import InferenceConfig

SINGLE_PROCESS_ON_CUDA = (
    "engine.single_process: true is CPU-only: on CUDA the in-process engine does not free its "
    "GPU memory when it shuts down (vLLM issue #21073), so the second engine of a two-base "
    "setup (the Qwen config's Llama3 anchor) would not fit; set engine.single_process=false")

def base_models(config: InferenceConfig) -> list[str]:
    """Every base model an engine is started for: the config's, then the foreign ones."""
    return [config.model, *dict.fromkeys(config.foreign_bases().values())]


def placement_problems(config: InferenceConfig, visible: Sequence[str]) -> list[str]:
    """What would fail after an engine started, as one message each (empty: fine)."""
    problems = []
    engine = config.engine
    if engine.tensor_parallel_size < 1 or engine.data_parallel_size < 1:
        return problems  # validate() names them
    if visible and engine.single_process:
        problems.append(SINGLE_PROCESS_ON_CUDA)
    try:
        place_shards(visible, engine.data_parallel_size, engine.tensor_parallel_size)
    except ConfigError as exc:
        problems.append(str(exc))
    for model in base_models(config):
        heads = attention_heads(model)
        if heads:
            problem = tp_problem(model, *heads, engine.tensor_parallel_size)
            if problem:
                problems.append(problem)
    return problems


def check_placement(config: InferenceConfig, visible: Sequence[str] | None = None
                    ) -> list[list[str]]:
    """The GPU ids of each shard, or :class:`ConfigError` naming every problem."""
    visible = visible_gpu_ids() if visible is None else visible
    problems = placement_problems(config, visible)
    if problems:
        raise ConfigError("; ".join(problems))
    return place_shards(visible, config.engine.data_parallel_size,
                        config.engine.tensor_parallel_size)
