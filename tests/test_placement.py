"""The GPU path of ``make infer`` on faked GPU sets: DP×TP placement over the visible GPUs, the
refusals that must come before any engine starts, the dry run, and pinned Hub downloads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from core.devices import FAKE_GPUS_ENV, place_shards, tp_problem, visible_gpu_ids
from core.io import ProjectError
from eval.config import ConfigError, InferenceConfig, load_config, validate
from eval.placement import SINGLE_PROCESS_ON_CUDA, placement_problems
from tests.conftest import REPO
from tools import fetch_models
from tools.demo import ADAPTER_KEY

EIGHT = [str(i) for i in range(8)]


# --- the visible set --------------------------------------------------------------------------


@pytest.mark.parametrize(("mask", "count", "visible"), [
    (None, 8, EIGHT),                      # no mask: every GPU torch sees
    ("4,5,6,7", 4, ["4", "5", "6", "7"]),  # a scheduler's mask is kept, not renumbered
    ("", 0, []),                           # empty mask: no GPU, the shards run on CPU
    ("GPU-a1, GPU-b2", 2, ["GPU-a1", "GPU-b2"]),  # UUIDs pass through as written
    ("0,1", 0, []),                        # a mask, but a CPU torch: no GPU
])
def test_visible_gpu_ids(mask: str | None, count: int, visible: list[str]) -> None:
    environ = {} if mask is None else {"CUDA_VISIBLE_DEVICES": mask}
    assert visible_gpu_ids(count, environ) == visible


def test_fake_gpu_count_is_what_torch_would_report(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAKE_GPUS_ENV, "8")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpu_ids() == EIGHT


# --- DP x TP placement ------------------------------------------------------------------------


@pytest.mark.parametrize(("visible", "dp", "tp", "shards"), [
    (["4", "5", "6", "7"], 2, 2, [["4", "5"], ["6", "7"]]),
    (EIGHT, 4, 1, [["0"], ["1"], ["2"], ["3"]]),  # DP=4 on 8 GPUs: the first four
    (EIGHT, 1, 8, [EIGHT]),
    (EIGHT, 2, 4, [["0", "1", "2", "3"], ["4", "5", "6", "7"]]),
    ([], 3, 1, [[], [], []]),  # CPU: every shard on CPU
])
def test_each_shard_gets_tp_gpus_in_order(visible: list[str], dp: int, tp: int,
                                          shards: list[list[str]]) -> None:
    assert place_shards(visible, dp, tp) == shards


def test_more_gpus_than_visible_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        place_shards(["4", "5", "6", "7"], 3, 2)
    assert str(err.value) == ("engine: DP=3 x TP=2 needs 6 GPUs, but only 4 are visible "
                              "(4,5,6,7); lower DP or TP, or make more GPUs visible "
                              "(CUDA_VISIBLE_DEVICES)")


# --- TP against the model's attention heads ---------------------------------------------------


@pytest.mark.parametrize(("heads", "kv_heads", "tp", "problem"), [
    (28, 4, 4, None),  # Qwen2.5-7B-Instruct: 28 heads, 4 KV heads
    (28, 4, 2, None),
    (28, 4, 8, "engine.tensor_parallel_size: m has 28 attention heads, which TP=8 does not "
               "divide"),
    (28, 4, 7, "engine.tensor_parallel_size: m has 4 KV heads, which TP=7 can neither split "
               "nor replicate evenly"),
    (32, 8, 8, None),   # Llama-3-8B-Instruct
    (32, 8, 16, None),  # KV heads replicated twice
    (32, 32, 3, "engine.tensor_parallel_size: m has 32 attention heads, which TP=3 does not "
                "divide"),
])
def test_tp_must_fit_the_heads(heads: int, kv_heads: int, tp: int, problem: str | None) -> None:
    assert tp_problem("m", heads, kv_heads, tp) == problem


def qwen_like(tmp_path: Path) -> str:
    model = tmp_path / "qwen-like"  # not a registered backbone id: its templates are unchecked
    model.mkdir()
    (model / "config.json").write_text(json.dumps(
        {"architectures": ["Qwen2ForCausalLM"], "num_attention_heads": 28,
         "num_key_value_heads": 4, "hidden_size": 3584}), encoding="utf-8")
    return str(model)


def gpu_config(model: str, tp: int = 1, dp: int = 1, **engine: object) -> InferenceConfig:
    config = InferenceConfig(model=model)
    config.engine.tensor_parallel_size, config.engine.data_parallel_size = tp, dp
    for key, value in engine.items():
        setattr(config.engine, key, value)
    return config


def test_placement_problems_read_a_local_model(tmp_path: Path) -> None:
    model = qwen_like(tmp_path)
    assert placement_problems(gpu_config(model, tp=4), EIGHT) == []
    assert placement_problems(gpu_config(model, tp=8), EIGHT) == [
        f"engine.tensor_parallel_size: {model} has 28 attention heads, which TP=8 does not divide"]
    # a Hub id has no local config.json: a registered backbone's heads stand in (core/backbones)
    assert placement_problems(gpu_config("Qwen/Qwen2.5-7B-Instruct", tp=8), EIGHT) == [
        "engine.tensor_parallel_size: Qwen/Qwen2.5-7B-Instruct has 28 attention heads, which "
        "TP=8 does not divide"]
    assert placement_problems(gpu_config("Qwen/Qwen2.5-7B-Instruct", tp=4), EIGHT) == []
    # Llama3-8B: 32 heads, 8 KV heads; an unregistered hub id is not checked (the dry run says so)
    assert placement_problems(gpu_config("meta-llama/Meta-Llama-3-8B-Instruct", tp=8), EIGHT) == []
    assert placement_problems(gpu_config("someone/unknown-7b", tp=8), EIGHT) == []


def test_single_process_is_refused_on_cuda_only(tmp_path: Path) -> None:
    config = gpu_config(qwen_like(tmp_path), single_process=True)
    assert placement_problems(config, ["0"]) == [SINGLE_PROCESS_ON_CUDA]
    assert placement_problems(config, []) == []  # CPU: what the CPU configs use


def test_validate_refuses_before_any_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    monkeypatch.setenv(FAKE_GPUS_ENV, "4")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    config = gpu_config(qwen_like(tmp_path), tp=8, dp=1)
    config.domains = ["gadgets"]
    with pytest.raises(ConfigError) as err:
        validate(config, check_paths=False)
    assert str(err.value).splitlines()[1:] == [
        "  engine: DP=1 x TP=8 needs 8 GPUs, but only 4 are visible (4,5,6,7); lower DP or TP, "
        "or make more GPUs visible (CUDA_VISIBLE_DEVICES)",
        f"  engine.tensor_parallel_size: {config.model} has 28 attention heads, which TP=8 does "
        "not divide",
    ]


# --- run_data_parallel: each child's CUDA_VISIBLE_DEVICES -------------------------------------


def fake_dp_config(tmp_path: Path, dp: int, tp: int) -> InferenceConfig:
    config = InferenceConfig(model="fake", domains=["gadgets"], limit=4,
                             output_dir=str(tmp_path / "run"))
    config.engine.backend = "fake"
    config.engine.data_parallel_size, config.engine.tensor_parallel_size = dp, tp
    return config


def test_data_parallel_children_get_their_gpus(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from eval import infer

    monkeypatch.setenv(FAKE_GPUS_ENV, "4")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    started: list[tuple[str, str]] = []

    def popen(command: list[str], env: dict[str, str]) -> SimpleNamespace:
        started.append((command[command.index("--shard") + 1], env["CUDA_VISIBLE_DEVICES"]))
        return SimpleNamespace(wait=lambda: 1)  # every shard "fails": nothing to merge

    monkeypatch.setattr(infer.subprocess, "Popen", popen)
    with pytest.raises(ConfigError, match=r"shard\(s\) \[0, 1\] failed"):
        infer.run_data_parallel(fake_dp_config(tmp_path, 2, 2), "config.yaml", [], 2)
    assert started == [("0/2", "4,5"), ("1/2", "6,7")]


def test_data_parallel_refused_before_out_exists(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from eval import infer

    monkeypatch.setenv(FAKE_GPUS_ENV, "4")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    with pytest.raises(ConfigError, match=r"^engine: DP=3 x TP=2 needs 6 GPUs"):
        infer.run_data_parallel(fake_dp_config(tmp_path, 3, 2), "config.yaml", [], 3)
    assert not (tmp_path / "run").exists()


# --- the dry run: python -m eval.infer --dry-run ----------------------------------------------


def dry_run(tmp_path: Path, mask: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """The shipped Llama3 config with adapters, data and OUT under ``tmp_path`` (none exist)."""
    command = [sys.executable, "-m", "eval.infer", "--config", "recipes/infer/llama3-8b.yaml",
               "--dry-run", "--domains", "music", "ai", "--out", str(tmp_path / "out"),
               f"data_dir={tmp_path / 'data'}",
               *(f"{ADAPTER_KEY[role]}.path={tmp_path / role}"
                 for role in ("anchor", "explorer", "classifier")), *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO), FAKE_GPUS_ENV: "4",
           "CUDA_VISIBLE_DEVICES": mask}
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=120)


def missing_lines(tmp_path: Path) -> list[str]:
    config = "recipes/infer/llama3-8b.yaml"
    return [
        f"missing: extractors.anchor: {tmp_path / 'anchor'} has no adapter_config.json (fetch it: "
        f"make models CONFIG={config})",
        f"missing: extractors.explorer: {tmp_path / 'explorer'} has no adapter_config.json (train "
        "it: make train-explorer)",
        f"missing: classifier_adapter: {tmp_path / 'classifier'} has no adapter_config.json "
        "(train it: make train-classifier)",
        f"missing: data: {tmp_path / 'data' / 'crossner' / 'music' / 'test.jsonl'} not found "
        "(make data)",
        f"missing: data: {tmp_path / 'data' / 'crossner' / 'ai' / 'test.jsonl'} not found "
        "(make data)",
    ]


HUB_NOTE = ("note: meta-llama/Meta-Llama-3-8B-Instruct (revision "
            "5f0b02c75b57c5855da9ae460ce51323ea669d8a) is a Hub id: vLLM downloads it on first "
            "use; the TP/attention-head check used the registered backbone's heads")


def test_dry_run_prints_one_line_per_shard_and_what_is_missing(tmp_path: Path) -> None:
    done = dry_run(tmp_path, "4,5,6,7", "--dp", "2", "engine.tensor_parallel_size=2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"plan: recipes/infer/llama3-8b.yaml -> {tmp_path / 'out'} (domains: music, ai)",
        "engine: DP=2 x TP=2 on 4 visible GPUs",
        "shard 0: CUDA_VISIBLE_DEVICES=4,5",
        "shard 1: CUDA_VISIBLE_DEVICES=6,7",
        HUB_NOTE,
        *missing_lines(tmp_path),
        "dry run: no engine started, nothing written",
    ]
    assert not (tmp_path / "out").exists()


def test_dry_run_on_cpu_says_so(tmp_path: Path) -> None:
    done = dry_run(tmp_path, "", "--dp", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:4] == [
        "engine: DP=2 x TP=1 on CPU", "shard 0: CPU (no GPU visible)",
        "shard 1: CPU (no GPU visible)"]
    assert not (tmp_path / "out").exists()


def test_dry_run_refuses_an_impossible_placement(tmp_path: Path) -> None:
    done = dry_run(tmp_path, "4,5,6,7", "--dp", "3", "engine.tensor_parallel_size=2")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: invalid inference config:",
        "  engine: DP=3 x TP=2 needs 6 GPUs, but only 4 are visible (4,5,6,7); lower DP or TP, "
        "or make more GPUs visible (CUDA_VISIBLE_DEVICES)",
    ]
    assert not (tmp_path / "out").exists()


# --- Hub downloads are pinned (tools/fetch_models.py) -----------------------------------------

SHIPPED = ["recipes/infer/llama3-8b.yaml", "recipes/infer/qwen2.5-7b.yaml"]
IEPILE = "zjunlp/llama3-8b-iepile-lora"


@pytest.mark.parametrize("path", SHIPPED)
def test_shipped_gpu_configs_pin_every_download(path: str, tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / path).read_text(encoding="utf-8"))
    assert fetch_models.SHA.fullmatch(config["model_revision"])
    assert len(config["model_revision"]) == 40
    anchor = config["extractors"]["anchor"]
    anchor["path"] = str(tmp_path / "anchor")
    wanted = fetch_models.missing_adapters({"extractors": {"anchor": anchor}}, path)
    assert wanted == {"extractors.anchor": (IEPILE, str(tmp_path / "anchor"), "42ffeae")}
    # every base model an engine starts on is pinned to a full commit, the foreign one too
    loaded = load_config(REPO / path, ["engine.backend=fake"])
    for model in {loaded.model, *loaded.foreign_bases().values()}:
        assert len(loaded.revision_of(model)) == 40, model


@pytest.mark.parametrize(("revision", "shown"), [("", "not set"), ("main", "main")])
def test_an_unpinned_adapter_is_refused(tmp_path: Path, revision: str, shown: str) -> None:
    adapter = {"path": str(tmp_path / "a"), "hub_id": IEPILE, "revision": revision}
    with pytest.raises(ProjectError) as err:
        fetch_models.missing_adapters({"anchor_adapter": adapter}, "c.yaml")
    assert str(err.value) == (
        f"anchor_adapter.revision: {shown}; pin {IEPILE} to a commit sha in c.yaml "
        f"(https://huggingface.co/{IEPILE}/commits/main) so every download gets the same weights")


class FakeApi:
    def __init__(self, commits: list[str]) -> None:
        self.commits = commits
        self.calls = 0

    def list_repo_commits(self, repo_id: str) -> list[SimpleNamespace]:
        self.calls += 1
        return [SimpleNamespace(commit_id=c) for c in self.commits]


def test_an_abbreviated_revision_resolves_to_exactly_one_commit() -> None:
    head, first = "42ffeae" + "1" * 33, "fdd23b6" + "2" * 33
    api = FakeApi([head, first])
    assert fetch_models.full_revision(api, IEPILE, "42ffeae") == head
    assert fetch_models.full_revision(api, IEPILE, first) == first and api.calls == 1
    with pytest.raises(ProjectError, match=r"^revision 0000000 matches 0 commits of "):
        fetch_models.full_revision(api, IEPILE, "0000000")
    with pytest.raises(ProjectError, match=r"matches 2 commits .* pin the full 40-character sha"):
        fetch_models.full_revision(FakeApi([head, "42ffeae" + "3" * 33]), IEPILE, "42ffeae")


def test_make_models_skips_the_stage2_classifier_the_run_does_not_ask(tmp_path: Path) -> None:
    missing = {"path": str(tmp_path / "not-trained")}  # no hub_id: only training makes it
    config = {"classifier_adapter": {"path": str(tmp_path)}, "direct_classifier_adapter": missing}
    (tmp_path / "adapter_config.json").write_text("{}")
    assert fetch_models.missing_adapters(config, "c.yaml") == {}  # typing: archetypes
    with pytest.raises(ProjectError, match=r"^direct_classifier_adapter: .* is missing"):
        fetch_models.missing_adapters({**config, "typing": "direct"}, "c.yaml")
