"""Extractors are data: any number of them, each asked in its prompt format, joined by a rule;
ablations are generated from the list; old-style configs are refused with how to convert."""

from __future__ import annotations

import json

import pytest
import yaml

from core.messages import Request
from eval.config import ConfigError, load_config
from eval.engine import FakeBackend
from eval.infer import ablation_overrides, ablations, run_pipeline
from tests.test_pipeline_fake import gold_by_text, oracle, write_config

THREE = {
    "anchor": {"template": "iepile", "prompt": "iepile"},
    "explorer": {"template": "llama3", "prompt": "explorer"},
    "base": {"template": "llama3", "prompt": "zero_shot"},  # no path: the base model itself
}


def test_ablations_are_generated_from_the_extractors(tmp_path, converted_crossner):
    assert ablations(["anchor", "explorer", "base"]) == {
        "no-anchor": ["extractors.anchor.enabled=false"],
        "no-explorer": ["extractors.explorer.enabled=false"],
        "no-base": ["extractors.base.enabled=false"],
        "no-ccr": ["consensus.rule=union"],
        # the paper's w/o cali.: direct typing with the target labels, no stage 3
        "no-calibration": ["typing=direct", "calibration.enabled=false"],
        # the archetype classifier + each domain's archetype_fallback lookup
        "archetype-lookup": ["calibration.enabled=false"]}
    path = write_config(tmp_path, converted_crossner, extractors=THREE)
    assert ablation_overrides(path, [], "no-base") == ["extractors.base.enabled=false"]
    with pytest.raises(ConfigError, match=r"--ablation no-tagger: not an ablation of .* "
                                          r"no-anchor, no-base, no-explorer, no-ccr, "
                                          r"no-calibration, archetype-lookup\)"):
        ablation_overrides(path, [], "no-tagger")


def test_old_style_config_says_how_to_convert(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"model": "m", "anchor_adapter": {"path": "a"},
                                    "explorer_adapter": {"path": "e"},
                                    "ccr": {"rule": "authors"}}))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert "old-style config (anchor_adapter, explorer_adapter, ccr)" in message
    assert "anchor_adapter -> extractors.anchor" in message
    assert "ccr -> consensus (rule: ccr, corroborator: anchor" in message
    assert "prompt` (iepile | explorer | authors_explorer | zero_shot)" in message


@pytest.mark.parametrize(("extractors", "message"), [
    ({"classifier": {"prompt": "explorer"}}, "extractors.classifier: not a usable extractor"),
    ({"a": {"prompt": "explorer", "enabled": False}}, "at least one enabled extractor"),
    ({"a": {"prompt": "explorer", "hub_id": "org/x"}}, "hub_id needs a path"),
])
def test_bad_extractor_entries(tmp_path, converted_crossner, extractors, message):
    path = write_config(tmp_path, converted_crossner, extractors=extractors,
                        consensus={"rule": "union"})
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_vote_needs_enough_extractors(tmp_path, converted_crossner):
    path = write_config(tmp_path, converted_crossner, extractors=THREE,
                        consensus={"rule": "vote", "min_votes": 4})
    with pytest.raises(ConfigError, match=r"consensus\.min_votes: 4 must be between 1 and the 3"):
        load_config(path)


def test_three_extractors_with_vote_share_one_stream(tmp_path, converted_crossner):
    """anchor and explorer answer like the oracle; the base model answers nothing. With vote
    (2 of 3 on every mention) the oracle's mentions survive, and the run's three steps are still
    three generate calls: 20 anchor + 10 explorer + 10 base requests in the first."""
    gold = gold_by_text(converted_crossner)
    base = oracle(gold)
    seen: list[str] = []

    def respond(request: Request, prompt: str) -> str:
        seen.append(request.adapter or "calibrator")
        if request.adapter == "base":
            assert "Types: [" in prompt and "\nText: " in prompt  # the zero-shot format
            return "{}"
        return base(request, prompt)

    path = write_config(tmp_path, converted_crossner, extractors=THREE,
                        consensus={"rule": "vote", "min_votes": 2, "scope": "all"},
                        engine={"backend": "fake", "chunk_size": 1000})
    backend = FakeBackend(respond)
    run_pipeline(load_config(path), backend=backend)
    assert backend.calls == 3
    assert seen[:40].count("anchor") == 20 and seen[:40].count("explorer") == 10
    assert seen[:40].count("base") == 10
    stats = json.loads((tmp_path / "run" / "music" / "stats.json").read_text())["stages"]
    assert stats["stage1_base"]["requests"] == 10
    assert stats["stage1_discovery"]["mentions_base"] == 0
    assert stats["stage1_discovery"]["consensus_dropped"] == 0  # anchor + explorer agree
    # the same with the third extractor ablated: identical predictions
    alone = tmp_path / "alone"
    ablated = load_config(path, ["extractors.base.enabled=false", f"output_dir={alone}"])
    run_pipeline(ablated, backend=FakeBackend(respond))
    assert (alone / "music" / "predictions.jsonl").read_text() == (
        tmp_path / "run" / "music" / "predictions.jsonl").read_text()
    assert not (alone / "music" / "stage1_base.jsonl").exists()


def test_report_diagnostics_name_every_extractor(tmp_path, converted_crossner):
    """Oracle anchor and explorer, a silent base model: the base finds nothing (TP 0, FP 0, FN =
    every gold mention string), the consensus output holds only gold strings (FP 0), and every
    mention typed is typed right."""
    from core.records import load_sentences
    from eval.report import build, write

    gold = gold_by_text(converted_crossner)
    base = oracle(gold)

    def respond(request: Request, prompt: str) -> str:
        return "{}" if request.adapter == "base" else base(request, prompt)

    path = write_config(tmp_path, converted_crossner, extractors=THREE,
                        consensus={"rule": "vote", "min_votes": 2})
    run_pipeline(load_config(path), backend=FakeBackend(respond))
    report = build(tmp_path / "run", converted_crossner.parent)
    diag = report.diagnostics["music"]
    sentences = load_sentences(converted_crossner / "music" / "test.jsonl")[:10]
    gold_strings = sum(len({e.text for e in s.entities}) for s in sentences)
    assert list(diag["mentions"]) == ["anchor", "base", "explorer", "consensus"]
    assert (diag["mentions"]["base"]["tp"], diag["mentions"]["base"]["fp"],
            diag["mentions"]["base"]["fn"]) == (0, 0, gold_strings)
    assert diag["mentions"]["consensus"]["fp"] == 0
    assert diag["typing"]["accuracy"] == 1.0
    md = write(report, tmp_path / "report").read_text()
    for name in ("anchor", "base", "explorer"):
        assert f"| extractor `{name}` |" in md
    assert (tmp_path / "report" / "diagnostics.csv").read_text().startswith(
        "domain,what,precision,recall,f1,tp,fp,fn\nmusic,mentions:anchor,")


@pytest.mark.parametrize("rule", ["ccr", "union", "intersection", "vote"])
def test_every_consensus_rule_runs_the_pipeline(tmp_path, converted_crossner, rule):
    """Each registered rule through the whole fake pipeline: the discovery file holds exactly
    what the rule makes of the extractors' mentions (then minus mentions not in the sentence)."""
    from core.io import iter_jsonl
    from eval import consensus
    from eval.config import ConsensusConfig

    gold = gold_by_text(converted_crossner)
    base = oracle(gold)

    def respond(request: Request, prompt: str) -> str:
        if request.adapter == "base":  # a noisy third opinion: the sentence's first two words
            words = prompt.rsplit("Text: ", 1)[-1].split()[:2]
            return json.dumps({"person": words})
        return base(request, prompt)

    settings = {"rule": rule, "min_votes": 2, "scope": "all"}
    path = write_config(tmp_path, converted_crossner, extractors=THREE, consensus=settings)
    run_pipeline(load_config(path), backend=FakeBackend(respond))
    records = [r for _, r in iter_jsonl(tmp_path / "run" / "music" / "stage1_discovery.jsonl")]
    assert len(records) == 10
    for record in records:
        kept, dropped = consensus.apply(record["found"], ConsensusConfig(**settings))
        assert record["consensus_dropped"] == dropped
        assert [m for m in kept if m not in record["not_in_sentence"]] == record["mentions"]
        assert set(record["not_in_sentence"]) <= set(kept)
    dropped_any = sum(len(r["consensus_dropped"]) for r in records)
    assert (dropped_any == 0) == (rule == "union")
