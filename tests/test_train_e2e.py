"""LoRA training end to end on CPU (LlamaFactory, tiny model, tiny data) and the recipe checker's
rejections. Slow: each LlamaFactory process spends ~10 s importing before it does anything."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TINY_ROLES, TINY_TRAIN_STEPS, run_json

pytestmark = pytest.mark.slow

# (rank, alpha): paper Table 7 for explorer/classifier; the tiny anchor imitates the public
# IEPile LoRA (zjunlp/llama3-8b-iepile-lora: rank 64, alpha 64)
LORA_SHAPE = {"anchor": (64, 64), "explorer": (8, 16), "classifier": (8, 16)}
PROJECTIONS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
TINY_LAYERS = 2  # tools/tiny_model.py


def safetensors_names(path: Path) -> list[str]:
    """Tensor names from a safetensors header (8-byte little-endian length, then JSON), read
    without the safetensors package, which the dev env does not have."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return [name for name in header if name != "__metadata__"]


def logged_losses(output_dir: Path) -> list[float]:
    state = json.loads((output_dir / "trainer_state.json").read_text(encoding="utf-8"))
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


@pytest.mark.parametrize("role", TINY_ROLES)
def test_adapter_is_a_standard_peft_lora(tiny_adapters: dict[str, Path], tiny_model: Path,
                                         role: str) -> None:
    adapter = tiny_adapters[role]
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").is_file()
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["peft_type"] == "LORA"
    assert (config["r"], config["lora_alpha"]) == LORA_SHAPE[role]
    assert set(config["target_modules"]) == PROJECTIONS  # lora_target: all
    assert not config.get("modules_to_save")  # vLLM serves plain LoRA weights only
    assert Path(config["base_model_name_or_path"]) == tiny_model

    names = safetensors_names(adapter / "adapter_model.safetensors")
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names), names[:5]
    covered = {(n.split(".layers.")[1].split(".")[0], module)
               for n in names for module in PROJECTIONS if f".{module}.lora_" in n}
    assert covered == {(str(layer), m) for layer in range(TINY_LAYERS) for m in PROJECTIONS}


@pytest.mark.parametrize("role", TINY_ROLES)
def test_loss_goes_down(tiny_adapters: dict[str, Path], role: str) -> None:
    losses = logged_losses(tiny_adapters[role])
    assert len(losses) == TINY_TRAIN_STEPS  # logging_steps: 1 in the tiny recipes
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    print(f"{role}: loss {first:.3f} -> {last:.3f} over {len(losses)} steps")
    assert last < first, losses


CHECK_CASES: dict[str, tuple[list[str], str]] = {
    # name: (overrides on top of the valid tiny recipe, text the error must contain)
    "misspelled key": (["lora_rnak=8"], "lora_rnak"),
    "unknown template": (["template=llama3x"], "unknown template 'llama3x'"),
    "dataset not registered": (["dataset=samner_nope"], "samner_nope"),
    "missing model dir": (["model_name_or_path=/nonexistent/tiny-llama"],
                          "'/nonexistent/tiny-llama' is not a local model dir"),
}

CHECK_SCRIPT = """
import contextlib, io, json
import llamafactory.data.parser, llamafactory.data.template, llamafactory.hparams  # log handlers
from tools import train
cases = json.loads(CASES)  # prepended by the fixture
results = {}
for name, argv in cases.items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as out:
        code = train.main(argv)
    results[name] = {"code": code, "stderr": err.getvalue(), "stdout": out.getvalue()}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def check_results(venv_python, tiny_model: Path, tiny_train_data: Path) -> dict[str, Any]:
    """``tools.train.main([... --check])`` for every case in ONE train-env process."""
    base = ["recipes/train/explorer-tiny-cpu.yaml", f"model_name_or_path={tiny_model}",
            f"dataset_dir={tiny_train_data}", "--check"]
    cases = {"valid": base, **{name: [*base, *extra] for name, (extra, _) in CHECK_CASES.items()}}
    return run_json(venv_python("train"), f"CASES = {json.dumps(cases)!r}" + CHECK_SCRIPT)


def test_check_accepts_the_valid_recipe(check_results: dict[str, Any]) -> None:
    valid = check_results["valid"]
    assert valid["code"] == 0, valid["stderr"]
    assert "recipe OK: recipes/train/explorer-tiny-cpu.yaml" in valid["stdout"]


@pytest.mark.parametrize("case", CHECK_CASES)
def test_check_rejects_with_one_error_line(check_results: dict[str, Any], case: str) -> None:
    result = check_results[case]
    errors = [line for line in result["stderr"].splitlines() if line.startswith("error: ")]
    assert result["code"] == 2, result
    assert len(errors) == 1, result["stderr"]
    assert CHECK_CASES[case][1] in errors[0]
    assert "recipe OK" not in result["stdout"]
