"""make check-cuda-envs without building anything: the driver's pure parts (pip isolation,
result parsing, PASS/FAIL lines, the doc and its atomic write, the run plan), the check
tables against the project's own planners, and eval/engine.py's builders (the same code path
VLLMBackend uses and the CUDA check calls), pinned with a stand-in ``vllm`` module. Fast: no
GPU, no network, no vLLM. The real run's output is docs/cuda-envs.md."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from core.devices import place_shards, visible_gpu_ids
from core.messages import Request
from eval import engine
from eval.plan import load_unchecked
from tools import check_cuda_envs as driver
from tools import cuda_checks_common as common
from tools import cuda_checks_infer as infer_env
from tools import cuda_checks_train as train_env
from tools import train
from tools.envs import REPO

LLAMA = "recipes/infer/llama3-8b.yaml"


# --- driver: pip isolation, parsing, lines, doc ----------------------------------------------


def test_pip_ignores_config_find_links_and_constraints_but_keeps_the_index() -> None:
    environ = {"PIP_FIND_LINKS": "/opt/wheels", "PIP_EXTRA_INDEX_URL": "file:///opt/pypi",
               "PIP_CONSTRAINT": "/etc/xdg/pip/c.txt", "PIP_NO_INDEX": "1",
               "PIP_INDEX_URL": "https://mirror/simple", "PIP_CERT": "/etc/ssl/ca.crt",
               "HOME": "/root"}
    env = driver.isolated_pip_environ(environ)
    assert env == {"PIP_INDEX_URL": "https://mirror/simple", "PIP_CERT": "/etc/ssl/ca.crt",
                   "HOME": "/root", "PIP_CONFIG_FILE": os.devnull,
                   "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    assert environ["PIP_FIND_LINKS"] == "/opt/wheels"  # the caller's mapping is untouched


def _mark(mark: str, data: dict[str, Any]) -> str:
    return mark + json.dumps(data)


def test_parse_results_picks_marked_lines_out_of_the_logs() -> None:
    output = "\n".join([
        "INFO 12-03 vllm: something",
        _mark(common.VERSIONS_MARK, {"env": "infer", "versions": {"vllm": "0.32.0"}}),
        _mark(common.CHECK_MARK, {"env": "infer", "name": "a", "ok": True, "detail": "fine"}),
        "  SAMNER-CHECK not at the start of the line",
        _mark(common.CHECK_MARK, {"env": "infer", "name": "b", "ok": False, "detail": "bad"}),
        _mark(common.VERSIONS_MARK, {"env": "infer", "versions": {"torch": "2.13.0"}}),
    ])
    found, versions = driver.parse_results(output)
    assert found == [driver.Check("infer", "a", True, "fine"),
                     driver.Check("infer", "b", False, "bad")]
    assert versions == {"infer": {"vllm": "0.32.0", "torch": "2.13.0"}}
    assert driver.CHECK_MARK == common.CHECK_MARK  # one protocol on both sides
    assert driver.VERSIONS_MARK == common.VERSIONS_MARK


def test_emit_and_parse_round_trip(capsys: pytest.CaptureFixture[str]) -> None:
    assert common.check("train", "works", lambda: "detail\nover lines")
    assert not common.check("train", "raises", lambda: 1 / 0)
    found, _ = driver.parse_results(capsys.readouterr().out)
    assert found[0] == driver.Check("train", "works", True, "detail over lines")
    assert not found[1].ok
    assert found[1].detail.startswith("ZeroDivisionError: division by zero (at ")


def test_lines_and_summary() -> None:
    ok = driver.Check("infer", "import vllm, version", True, "vllm 0.32.0 == pin")
    bad = driver.Check("train", "pins", False, "torch is 2.13.0+cpu, pinned 2.13.0")
    assert ok.line() == "PASS  infer  import vllm, version: vllm 0.32.0 == pin"
    assert bad.line() == "FAIL  train  pins: torch is 2.13.0+cpu, pinned 2.13.0"
    assert driver.summary([ok, bad]) == "2 checks: 1 passed, 1 failed"
    assert driver.summary([]) == "0 checks: 0 passed, 0 failed (nothing ran)"


def test_a_crashed_run_is_a_fail_with_its_last_lines() -> None:
    output = "\n".join(f"line {i}" for i in range(40)) + "\nTraceback: boom\n"
    check = driver.run_failure("infer", "infer: python -m tools.cuda_env_checks infer", 1,
                               output)
    assert not check.ok
    assert check.name == "run `infer: python -m tools.cuda_env_checks infer`"
    assert check.detail == ("exited with code 1; last lines: line 36 | line 37 | line 38 | "
                            "line 39 | Traceback: boom")


def test_render_doc_has_date_versions_every_line_and_the_gpu_only_list() -> None:
    report = driver.Report(
        checks=[driver.Check("infer", "a", True, "x"), driver.Check("train", "b", False, "y")],
        versions={"infer": {"vllm": "0.32.0", "torch": "2.13.0"},
                  "train": {"llamafactory": "0.9.5", "deepspeed": "0.16.9"}},
        timings={"build train": 365.2, "checks": 71.0}, disk_bytes=14 * 1024**3 + 1,
        machine="Linux x86_64, no GPU", date="2026-12-03 10:19 UTC")
    doc = driver.render_doc(report, Path(".venv-cuda"))
    assert "**Last run:** 2026-12-03 10:19 UTC on Linux x86_64, no GPU: **2 checks: 1 " \
           "passed, 1 failed**." in doc
    assert "Timings: build train 365 s, checks 71 s. Disk used by `.venv-cuda/`: 14.0 GB." in doc
    for row in ("| vllm | infer | 0.32.0 |", "| torch | infer | 2.13.0 |",
                "| llamafactory | train | 0.9.5 |", "| deepspeed | train | 0.16.9 |"):
        assert row in doc
    assert "| torch | train |" not in doc  # no version, no row
    assert "```text\nPASS  infer  a: x\nFAIL  train  b: y\n2 checks: 1 passed, 1 failed\n```" \
           in doc
    assert "## What only a GPU can show" in doc
    assert f"deepspeed=={driver.DEEPSPEED}" in doc


def test_write_atomic_replaces_and_leaves_no_temp_file(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "docs" / "cuda-envs.md"
    driver.write_atomic(doc, "first\n")
    driver.write_atomic(doc, "second\n")
    assert doc.read_text() == "second\n"
    assert sorted(p.name for p in doc.parent.iterdir()) == ["cuda-envs.md"]

    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(driver.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        driver.write_atomic(doc, "third\n")
    assert doc.read_text() == "second\n"  # the old file stays whole
    assert sorted(p.name for p in doc.parent.iterdir()) == ["cuda-envs.md"]


@pytest.mark.parametrize(("size", "text"), [(None, "unknown"), (512, "512 B"),
                                            (3 * 1024**2, "3.0 MB"), (5 * 1024**4, "5120.0 GB")])
def test_human_bytes(size: int | None, text: str) -> None:
    assert driver.human_bytes(size) == text


def test_run_plan_covers_every_deepspeed_recipe_under_torchrun() -> None:
    recipes = driver.gpu_recipes(REPO / "recipes" / "train")
    assert recipes and not [p for p in recipes if p.stem.endswith("-cpu")]
    assert [p.name for p in recipes] == [p.name for p in common.TRAIN_RECIPES]
    ds = [str(p.relative_to(REPO)) for p in driver.deepspeed_recipes(recipes)]
    assert ds and all(p.endswith("-ds-z3.yaml") for p in ds)
    runs = driver.plan_runs(ds, 29512)
    assert [r.args for r in runs[:3]] == [("infer",), ("train", driver.DEEPSPEED),
                                          ("train-gpu",)]
    assert [r.args for r in runs[3:]] == [("train-ds", p) for p in ds]
    assert runs[3].environ == {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
                               "LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                               "MASTER_PORT": "29512"}
    assert runs[0].label == "infer: python -m tools.cuda_env_checks infer"


def test_checks_run_offline_and_keep_no_gpu_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    env = driver.check_environ({"RANK": "0"})
    assert "CUDA_VISIBLE_DEVICES" not in env  # an empty mask would hide the faked GPUs
    assert env["HF_HUB_OFFLINE"] == "1" and env["RANK"] == "0"
    assert env["PYTHONPATH"] == str(REPO)


def test_the_doc_holds_a_real_run() -> None:
    doc = (REPO / "docs" / "cuda-envs.md").read_text(encoding="utf-8")
    assert doc.startswith("# CUDA environments, checked without a GPU\n")
    assert "**Last run:** " in doc and "| vllm | infer | 0.32.0 |" in doc
    assert "PASS  infer  import vllm, version: vllm 0.32.0 == pin" in doc


# --- the check tables agree with the project's own planners ----------------------------------


def test_dry_run_table_is_what_plan_launch_prints() -> None:
    for (recipe, gpus), line in train_env.DRY_RUNS.items():
        assert train.plan_launch(recipe, [], train.load_recipe(recipe, []), gpus,
                                 {}).line() == line


def test_dp_table_is_what_placement_plans() -> None:
    for (dp, tp, mask, gpus), masks in infer_env.DP_PLANS.items():
        environ = {} if mask is None else {"CUDA_VISIBLE_DEVICES": mask}
        shards = place_shards(visible_gpu_ids(gpus, environ), dp, tp)
        assert [",".join(s) for s in shards] == masks


def test_pinned_reads_every_exact_pin_through_includes() -> None:
    pins = common.pinned(REPO / "requirements" / "infer-cuda.txt")
    assert pins["vllm"] == "0.32.0" and pins["pyyaml"] == "6.0.3"  # -r ../requirements.txt
    assert common.pinned(REPO / "requirements" / "train.txt")["torch"] == "2.13.0"


def test_adapter_ranks_come_from_their_recipes_and_the_iepile_lora() -> None:
    config = load_unchecked(LLAMA, [])
    found = {role: infer_env.adapter_lora_config(config, role, a)
             for role, a in config.adapters_by_role().items()}
    assert {role: (c["r"], c["lora_alpha"]) for role, c in found.items()} == {
        "anchor": (64, 64), "explorer": (8, 16), "classifier": (8, 16)}
    assert found["explorer"]["_from"] == "explorer-llama3-8b-ds-z3.yaml"  # same output_dir


def test_engine_kwarg_problems() -> None:
    assert infer_env.engine_kwarg_problems({"model": 1, "dtype": 2, "bogus": 3},
                                           {"model", "dtype"}, {"seed"}) == ["bogus"]


# --- eval/engine.py's builders: one code path for the engine and the CUDA check --------------


def test_llm_kwargs_is_what_the_engine_passes() -> None:
    config = load_unchecked(LLAMA, [])
    e = config.engine
    kwargs = engine.llm_kwargs(config, config.model, "abc", {"anchor": 64, "explorer": 8,
                                                             "classifier": 8}, True)
    assert kwargs == {
        "model": config.model, "revision": "abc", "tokenizer_revision": "abc",
        "dtype": "bfloat16", "seed": e.seed, "max_model_len": 4096, "max_num_seqs": 256,
        "tensor_parallel_size": 1, "enable_prefix_caching": True, "disable_log_stats": False,
        "gpu_memory_utilization": 0.9, "enable_lora": True, "max_loras": 3,
        "max_lora_rank": 64,
        "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True}}
    cpu = load_unchecked(LLAMA, ["engine.single_process=true", "engine.block_size=32",
                                 "engine.extra={enforce_eager: true}"])
    kwargs = engine.llm_kwargs(cpu, "models/x", None, {}, False)
    assert "gpu_memory_utilization" not in kwargs and "enable_lora" not in kwargs
    assert (kwargs["distributed_executor_backend"], kwargs["block_size"],
            kwargs["enforce_eager"], kwargs["revision"]) == ("uni", 32, True, None)


class _Recorded:
    """Stands in for a vLLM class: keeps its arguments, exposes keywords as attributes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs
        self.__dict__.update(kwargs)


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    made = types.SimpleNamespace(llm=[], generate=[])

    class LLM(_Recorded):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            made.llm.append(kwargs)

        def generate(self, prompts: list[Any], params: list[Any], **kwargs: Any) -> list[Any]:
            made.generate.append((prompts, params, kwargs))
            out = types.SimpleNamespace(text="x", token_ids=[1], finish_reason="stop")
            return [types.SimpleNamespace(outputs=[out], prompt_token_ids=p["prompt_token_ids"])
                    for p in prompts]

    modules = {
        "vllm": {"LLM": LLM, "SamplingParams": type("SamplingParams", (_Recorded,), {})},
        "vllm.sampling_params": {
            "StructuredOutputsParams": type("StructuredOutputsParams", (_Recorded,), {})},
        "vllm.inputs": {"TokensPrompt": dict},
        "vllm.lora": {},
        "vllm.lora.request": {"LoRARequest": type("LoRARequest", (_Recorded,), {})},
    }
    for name, attrs in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)
    return made


SAMPLING = types.SimpleNamespace(temperature=0.0, top_p=1.0, repetition_penalty=1.0)


@pytest.mark.parametrize(("request_", "structured"), [
    (Request("a", [1, 2], None, 16, choices=("band", "person")), {"choice": ["band", "person"]}),
    (Request("b", [3], "explorer", 1024, ("<|eot_id|>",), grammar='root ::= "{}"'),
     {"grammar": 'root ::= "{}"'}),
    (Request("c", [4], "classifier", 1024, ("<|eot_id|>", "<|eom_id|>")), None),
])
def test_sampling_params_keywords(fake_vllm: types.SimpleNamespace, request_: Request,
                                  structured: dict[str, Any] | None) -> None:
    params = engine.sampling_params(request_, SAMPLING)
    assert set(params.kwargs) == {"temperature", "top_p", "repetition_penalty", "max_tokens",
                                  "stop", "seed", "structured_outputs"}
    assert params.max_tokens == request_.max_tokens and params.seed is None
    assert params.stop == (list(request_.stop) or None)
    if structured is None:
        assert params.structured_outputs is None
    else:
        assert params.structured_outputs.kwargs == structured
    # what the CUDA check asserts of vLLM's own SamplingParams holds for the builder's call
    assert infer_env.describe_params(request_, params, SAMPLING)
    assert engine.tokens_prompt(request_) == {"prompt_token_ids": request_.prompt_ids}


def test_lora_requests_are_name_id_path(fake_vllm: types.SimpleNamespace) -> None:
    loras = engine.lora_requests({"anchor": Path("models/a"), "explorer": "saves/e"})
    assert {role: r.args for role, r in loras.items()} == {
        "anchor": ("anchor", 1, "models/a"), "explorer": ("explorer", 2, "saves/e")}


def test_vllm_backend_uses_the_builders(fake_vllm: types.SimpleNamespace,
                                        tmp_path: Path) -> None:
    paths = {}
    for role, rank in (("anchor", 64), ("explorer", 8), ("classifier", 8)):
        paths[role] = tmp_path / role
        paths[role].mkdir()
        (paths[role] / "adapter_config.json").write_text(json.dumps({"r": rank}))
    config = load_unchecked(LLAMA, [
        f"extractors.anchor.path={paths['anchor']}", f"extractors.explorer.path="
        f"{paths['explorer']}", f"classifier_adapter.path={paths['classifier']}",
        "engine.cpu_grouped_lora=false"])
    backend = object.__new__(engine.VLLMBackend)  # no tokenizer load
    backend.config, backend.model, backend.revision = config, config.model, "rev"
    backend.llm, backend.loras, backend.sampling, backend.calls = None, {}, config.sampling, 0
    requests = [Request("a", [1], "explorer", 8, ("<|eot_id|>",)),
                Request("b", [2], None, 4, choices=("x", "y"))]
    out = backend.generate(requests)
    ranks = {"anchor": 64, "explorer": 8, "classifier": 8}
    assert fake_vllm.llm == [engine.llm_kwargs(config, config.model, "rev", ranks,
                                               engine.on_gpu())]
    prompts, params, kwargs = fake_vllm.generate[0]
    assert prompts == [engine.tokens_prompt(r) for r in requests]
    assert [p.kwargs for p in params[:1]] == [engine.sampling_params(requests[0],
                                                                     config.sampling).kwargs]
    assert params[1].structured_outputs.kwargs == {"choice": ["x", "y"]}
    assert [r.args if r else None for r in kwargs["lora_request"]] == [
        ("explorer", 2, str(paths["explorer"])), None]
    assert kwargs["use_tqdm"] is True
    assert [o.text for o in out] == ["x", "x"]


def test_stage_requests_build_on_cpu_and_cover_every_stage() -> None:
    config = load_unchecked(LLAMA, ["extraction.constrain_to_spans=true"])
    found = infer_env.stage_requests(config)
    assert set(found) == {"stage1_anchor", "stage1_explorer", "stage2_classifier",
                          "stage2_direct", "stage3_calibration"}
    assert all(found.values())
    assert all(r.grammar for r in found["stage1_explorer"])
    assert all(r.choices for r in found["stage3_calibration"])
    assert all(r.stop for r in found["stage2_classifier"])
