"""tools.train on 0-8 GPUs, proven on CPU with faked device counts: the launch LlamaFactory's way
(``llamafactory-cli``, torchrun with FORCE_TORCHRUN=1 for 2+ GPUs or DeepSpeed, multi-node
variables passed through), the GPU checks, and the dry run.

The unit tests run here (tools.train imports no LlamaFactory at module level). One test runs
``tools.train.main`` in the train env with ``torch.cuda`` faked to 2 and 8 GPUs, where
LlamaFactory's parser in a plain process refuses the paper recipe (the bug this guards against),
and checks the exact plans printed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.devices import FAKE_GPUS_ENV, cuda_devices
from tests.conftest import run_json
from tools import train

PLAIN = "recipes/train/explorer-llama3-8b.yaml"
DS = "recipes/train/explorer-llama3-8b-ds-z3.yaml"
CPU = "recipes/train/explorer-tiny-cpu.yaml"
GPU_RECIPE: dict[str, Any] = {"bf16": True}
DS_RECIPE: dict[str, Any] = {"bf16": True, "deepspeed": "recipes/deepspeed/ds_z3_config.json"}
CPU_RECIPE: dict[str, Any] = {"use_cpu": True, "bf16": False}


@pytest.mark.parametrize(("path", "recipe", "gpus", "line"), [
    (PLAIN, GPU_RECIPE, 1,
     f"launch: llamafactory-cli train {PLAIN} x=1  (1 process on 1 GPU)"),
    (PLAIN, GPU_RECIPE, 2,
     f"launch: FORCE_TORCHRUN=1 llamafactory-cli train {PLAIN} x=1  "
     "(torchrun, 2 processes on 2 GPUs)"),
    (PLAIN, GPU_RECIPE, 8,
     f"launch: FORCE_TORCHRUN=1 llamafactory-cli train {PLAIN} x=1  "
     "(torchrun, 8 processes on 8 GPUs)"),
    (DS, DS_RECIPE, 1,  # DeepSpeed cannot run without torchrun, even on one GPU
     f"launch: FORCE_TORCHRUN=1 llamafactory-cli train {DS} x=1  (torchrun, 1 process on 1 GPU)"),
    (DS, DS_RECIPE, 8,
     f"launch: FORCE_TORCHRUN=1 llamafactory-cli train {DS} x=1  "
     "(torchrun, 8 processes on 8 GPUs)"),
    (CPU, CPU_RECIPE, 8,  # a CPU recipe hides the GPUs, whatever is present
     f"launch: CUDA_VISIBLE_DEVICES='' llamafactory-cli train {CPU} x=1  (1 process on CPU)"),
    (PLAIN, GPU_RECIPE, 0,
     f"launch: llamafactory-cli train {PLAIN} x=1  (1 process; no GPU visible here)"),
])
def test_launch_line_and_process_count(path: str, recipe: dict[str, Any], gpus: int,
                                       line: str) -> None:
    assert train.plan_launch(path, ["x=1"], recipe, gpus, {}).line() == line


def test_multi_node_variables_pass_through_in_a_fixed_order() -> None:
    environ = {"MASTER_PORT": "29500", "NODE_RANK": "1", "MASTER_ADDR": "10.0.0.1", "NNODES": "2",
               "HOME": "/root"}
    launch = train.plan_launch(DS, [], DS_RECIPE, 8, environ)
    assert launch.line() == (
        "launch: FORCE_TORCHRUN=1 NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 MASTER_PORT=29500 "
        f"llamafactory-cli train {DS}  (torchrun, 16 processes: 8 on each of 2 nodes, this is "
        "node 1 with 8 GPUs)")


def test_user_settings_are_honoured() -> None:
    # FORCE_TORCHRUN=1 on one GPU, NPROC_PER_NODE below the GPU count: LlamaFactory's own rules
    one = train.plan_launch(PLAIN, [], GPU_RECIPE, 1, {"FORCE_TORCHRUN": "true"})
    assert one.line().endswith("(torchrun, 1 process on 1 GPU)")
    four = train.plan_launch(PLAIN, [], GPU_RECIPE, 8, {"NPROC_PER_NODE": "4"})
    assert four.env == {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "4"}
    assert four.summary == "torchrun, 4 processes on 8 GPUs"
    cpu = train.plan_launch(CPU, [], CPU_RECIPE, 8, {"FORCE_TORCHRUN": "1"})  # torchrun on 0 GPUs
    assert cpu.line() == (f"launch: CUDA_VISIBLE_DEVICES='' FORCE_TORCHRUN=0 llamafactory-cli "
                          f"train {CPU}  (1 process on CPU)")
    with pytest.raises(train.RecipeError, match=r"^NNODES='two' is not a whole number$"):
        train.plan_launch(PLAIN, [], GPU_RECIPE, 8, {"NNODES": "two"})


@pytest.mark.parametrize(("recipe", "gpus", "capability", "expected"), [
    (GPU_RECIPE, 8, (9, 0), []),
    (GPU_RECIPE, 2, (7, 5), [("bf16: the GPUs' compute capability is 7.5, bf16 needs >= 8.0: "
                              "add the overrides bf16=false fp16=true", False)]),
    ({"bf16": False, "fp16": True}, 2, (7, 5), []),
    (GPU_RECIPE, 0, None, [("no GPU visible (torch.cuda.device_count() is 0 in the train env): "
                            "run this recipe on a CUDA machine (make env-train DEVICE=cuda), or "
                            "train a -cpu recipe", True)]),
    (CPU_RECIPE, 0, None, []),
    (DS_RECIPE, 8, (8, 0), [("DeepSpeed is not installed in the train env (the recipe sets "
                             "deepspeed): .venv/train/bin/pip install deepspeed==0.16.9", True)]),
])
def test_gpu_findings(monkeypatch: pytest.MonkeyPatch, recipe: dict[str, Any], gpus: int,
                      capability: tuple[int, int] | None,
                      expected: list[tuple[str, bool]]) -> None:
    monkeypatch.setattr(train, "deepspeed_installed", lambda: False)
    found = train.gpu_findings(recipe, gpus, capability)
    assert [(f.text, f.missing) for f in found] == expected


@pytest.mark.parametrize(("fake", "expected"), [
    ("8", (8, (9, 0))), ("2:7.5", (2, (7, 5))), ("1:12.0", (1, (12, 0))), ("0", (0, None)),
])
def test_fake_gpus_stand_in_for_torch(monkeypatch: pytest.MonkeyPatch, fake: str,
                                      expected: tuple[int, tuple[int, int] | None]) -> None:
    monkeypatch.setenv(FAKE_GPUS_ENV, fake)
    assert cuda_devices(capability=True) == expected


def test_deepspeed_config_must_be_a_json_object(tmp_path: Path) -> None:
    bad = tmp_path / "ds.json"
    bad.write_text("[1]", encoding="utf-8")
    assert train._deepspeed_config_problem(str(bad)) == (
        f"deepspeed config {bad} is not a JSON object")
    bad.write_text("{", encoding="utf-8")
    assert train._deepspeed_config_problem(str(bad)).startswith(
        f"deepspeed config {bad} is not readable JSON (")
    assert train._deepspeed_config_problem(str(tmp_path / "no.json")) == (
        f"deepspeed config {tmp_path / 'no.json'} not found")


# --- tools.train.main in the train env, torch.cuda faked --------------------------------------

# torch.cuda faked as GPUS[0] devices of compute capability 9.0 (what transformers and
# LlamaFactory read), SAMNER_FAKE_GPUS the same for tools.train; DeepSpeed reported absent and
# the launch recorded instead of run (the training-data record is not written: nothing trained).
# Cases: name -> (argv, fake GPUs, extra environment).
MAIN_SCRIPT = r"""
import contextlib, io, json, os, sys
import torch
GPUS = [0]
torch.cuda.is_available = lambda: GPUS[0] > 0
torch.cuda.device_count = lambda: GPUS[0]
torch.cuda.set_device = lambda *a, **k: None
torch.cuda.is_bf16_supported = lambda *a, **k: True
torch.cuda.get_device_capability = lambda *a, **k: (9, 0)
from llamafactory.hparams import get_train_args
from tools import train
train.deepspeed_installed = lambda: False
execs = []
def fake_launch(launch):
    env = {**os.environ, **launch.env}
    execs.append([launch.argv[0], launch.argv[1:], env.get("FORCE_TORCHRUN"),
                  env.get("CUDA_VISIBLE_DEVICES")])
    return 0
train.run_launch = fake_launch
train.record_training_data = lambda path, recipe: None
cases, data, model = json.loads(sys.stdin.read())
os.makedirs(data, exist_ok=True)
with open(os.path.join(data, "dataset_info.json"), "w") as f:
    json.dump({"samner_explorer": {"file_name": "explorer.json"}}, f)
with open(os.path.join(data, "explorer.json"), "w") as f:
    f.write("[]")
os.makedirs(model, exist_ok=True)
with open(os.path.join(model, "config.json"), "w") as f:
    f.write("{}")
results = {}
base = dict(os.environ)
for name, (argv, gpus, extra) in cases.items():
    GPUS[0] = gpus
    os.environ.clear()
    os.environ.update(base, SAMNER_FAKE_GPUS=str(gpus), **extra)
    execs.clear()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = train.main(argv)
    lines = [l for l in out.getvalue().splitlines() + err.getvalue().splitlines()
             if l.split(":")[0] in ("recipe", "recipe OK", "gpus", "note", "missing", "launch",
                                    "error", "dry run")]
    results[name] = {"code": code, "lines": lines, "execs": list(execs)}
# the bug: LlamaFactory's parser in a plain process, the raw GPU recipe (bf16 off: a CPU torch
# fails transformers' bf16 probe first)
for gpus in (1, 2, 8):
    GPUS[0] = gpus
    try:
        get_train_args(train.load_recipe("recipes/train/explorer-llama3-8b.yaml",
                                         [f"dataset_dir={data}", "bf16=false"]))
        results[f"raw parser, {gpus} GPUs"] = "accepted"
    except ValueError as exc:
        results[f"raw parser, {gpus} GPUs"] = str(exc)
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def main_results(venv_python, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("launch")
    absent, data, model = tmp / "absent", tmp / "data", tmp / "model"
    cases = {
        "1 GPU": ([PLAIN, f"dataset_dir={absent}", "--dry-run"], 1, {}),
        "2 GPUs": ([PLAIN, f"dataset_dir={absent}", "--dry-run"], 2, {}),
        "8 GPUs": ([PLAIN, f"dataset_dir={absent}", "--dry-run"], 8, {}),
        "DeepSpeed, 8 GPUs": ([DS, f"dataset_dir={absent}", "--dry-run"], 8, {}),
        "DeepSpeed, 8 GPUs, no dry run": ([DS, f"dataset_dir={absent}"], 8, {}),
        "2 GPUs, everything there": ([PLAIN, f"dataset_dir={data}"], 2, {}),
        "CPU recipe, 8 GPUs": ([CPU, f"dataset_dir={data}", f"model_name_or_path={model}"], 8,
                               {}),
        "2 nodes": ([PLAIN, f"dataset_dir={data}", "--dry-run"], 8,
                    {"NNODES": "2", "NODE_RANK": "0", "MASTER_ADDR": "node0",
                     "MASTER_PORT": "29500"}),
    }
    results = run_json(venv_python("train"), MAIN_SCRIPT,
                       stdin=json.dumps([cases, str(data), str(model)]))
    return {"absent": str(absent), "data": str(data), "model": str(model), **results}


NOTE = ("note: model meta-llama/Meta-Llama-3-8B-Instruct is not local: LlamaFactory downloads it "
        "from the Hugging Face Hub at launch unless it is in the Hugging Face cache (gated models "
        "need HF_TOKEN)")
NO_DATA = "training data not prepared: {}/dataset_info.json not found (make data-train)"
NO_DEEPSPEED = ("DeepSpeed is not installed in the train env (the recipe sets deepspeed): "
                ".venv/train/bin/pip install deepspeed==0.16.9")


@pytest.mark.parametrize(("case", "recipe", "launch"), [
    ("1 GPU", PLAIN, "llamafactory-cli train {recipe} dataset_dir={absent}  (1 process on 1 GPU)"),
    ("2 GPUs", PLAIN, "FORCE_TORCHRUN=1 llamafactory-cli train {recipe} dataset_dir={absent}  "
                      "(torchrun, 2 processes on 2 GPUs)"),
    ("8 GPUs", PLAIN, "FORCE_TORCHRUN=1 llamafactory-cli train {recipe} dataset_dir={absent}  "
                      "(torchrun, 8 processes on 8 GPUs)"),
    ("DeepSpeed, 8 GPUs", DS, "FORCE_TORCHRUN=1 llamafactory-cli train {recipe} "
                              "dataset_dir={absent}  (torchrun, 8 processes on 8 GPUs)"),
])
def test_dry_run_prints_the_plan(main_results: dict[str, Any], case: str, recipe: str,
                                 launch: str) -> None:
    gpus = case.split()[-2]
    missing = [f"missing: {NO_DATA.format(main_results['absent'])}"]
    if recipe == DS:
        missing.append(f"missing: {NO_DEEPSPEED}")
    assert main_results[case] == {"code": 0, "execs": [], "lines": [
        f"recipe: {recipe} (template llama3, dataset samner_explorer)",
        f"gpus: {gpus} visible, compute capability 9.0",
        NOTE,
        *missing,
        "launch: " + launch.format(recipe=recipe, absent=main_results["absent"]),
        "dry run: nothing trained",
    ]}


def test_the_fake_reproduces_llamafactorys_refusal(main_results: dict[str, Any]) -> None:
    """Without the device-neutral check, 2+ visible GPUs stop the plain process: the dry runs
    above passed the same recipe through the same parser."""
    refusal = "Please launch distributed training with `llamafactory-cli` or `torchrun`."
    assert main_results["raw parser, 1 GPUs"] == "accepted"
    assert main_results["raw parser, 2 GPUs"] == refusal
    assert main_results["raw parser, 8 GPUs"] == refusal


def test_without_dry_run_missing_things_are_errors(main_results: dict[str, Any]) -> None:
    assert main_results["DeepSpeed, 8 GPUs, no dry run"] == {"code": 2, "execs": [], "lines": [
        f"error: {NO_DATA.format(main_results['absent'])}",
        f"error: {NO_DEEPSPEED}",
    ]}


def test_launch_execs_llamafactory_cli(main_results: dict[str, Any]) -> None:
    data, model = main_results["data"], main_results["model"]
    assert main_results["2 GPUs, everything there"] == {"code": 0, "lines": [
        f"recipe OK: {PLAIN} (template llama3, dataset samner_explorer)",
        f"launch: FORCE_TORCHRUN=1 llamafactory-cli train {PLAIN} dataset_dir={data}  "
        "(torchrun, 2 processes on 2 GPUs)",
    ], "execs": [["llamafactory-cli", ["train", PLAIN, f"dataset_dir={data}"], "1", ""]]}
    cpu = main_results["CPU recipe, 8 GPUs"]
    assert cpu["code"] == 0
    assert cpu["execs"] == [["llamafactory-cli", ["train", CPU, f"dataset_dir={data}",
                                                  f"model_name_or_path={model}"], None, ""]]


def test_multi_node_dry_run(main_results: dict[str, Any]) -> None:
    lines = main_results["2 nodes"]["lines"]
    assert main_results["2 nodes"]["code"] == 0
    assert lines[-2] == (
        "launch: FORCE_TORCHRUN=1 NNODES=2 NODE_RANK=0 MASTER_ADDR=node0 MASTER_PORT=29500 "
        f"llamafactory-cli train {PLAIN} dataset_dir={main_results['data']}  (torchrun, "
        "16 processes: 8 on each of 2 nodes, this is node 0 with 8 GPUs)")


# --- what an adapter was trained on: samner_train_data.json -----------------------------------


def test_training_data_record_is_kept_with_the_adapter(tmp_path: Path) -> None:
    """After a successful training: the recipe's datasets, their files and their converters'
    sidecars (None for a file without one) land in output_dir, readable by a run."""
    from core.register import read_adapter_training_data, register, write_data_meta

    data = tmp_path / "data"
    data.mkdir()
    for name in ("classifier.jsonl", "other.jsonl"):
        (data / name).write_text('{"instruction": "i", "input": "", "output": "o"}\n')
    register(data, {"samner_classifier": data / "classifier.jsonl",
                    "other": data / "other.jsonl"})
    meta = {"converter": "data_prep.iepile", "excluded_sources": []}
    write_data_meta(data / "classifier.jsonl", meta)
    out = tmp_path / "adapter"
    recipe = {"dataset": "samner_classifier, other", "dataset_dir": str(data),
              "output_dir": str(out)}
    assert train.record_training_data("recipes/train/x.yaml", recipe) is None  # no output dir
    out.mkdir()
    assert train.record_training_data("recipes/train/x.yaml", recipe) == (
        out / "samner_train_data.json")
    assert read_adapter_training_data(out) == {
        "recipe": "recipes/train/x.yaml", "dataset_dir": str(data.resolve()),
        "datasets": {"samner_classifier": {"file": "classifier.jsonl", "data": meta},
                     "other": {"file": "other.jsonl", "data": None}}}
    assert read_adapter_training_data(tmp_path) is None  # an adapter trained elsewhere
    assert read_adapter_training_data("") is None


def test_a_failed_training_writes_no_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    out = tmp_path / "adapter"
    out.mkdir()
    recipe_path = tmp_path / "r.yaml"
    recipe_path.write_text(f"template: llama3\ndataset: d\noutput_dir: {out}\nuse_cpu: true\n")
    monkeypatch.setattr(train, "recipe_findings", lambda recipe: [])
    codes = iter([3, 0])
    monkeypatch.setattr(train, "run_launch", lambda launch: next(codes))
    assert train.main([str(recipe_path)]) == 3
    assert not (out / "samner_train_data.json").exists()
    assert train.main([str(recipe_path)]) == 0
    assert (out / "samner_train_data.json").is_file()
