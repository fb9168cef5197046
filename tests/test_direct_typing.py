"""typing: direct, the paper's w/o-calibration ablation: stage 2 asks a direct-typing classifier
for each tagged mention's target label (the domain's label names, misc included) and there is no
stage 3. A hand-written case on the fake backend pins which labels come out; the config keeps
the direct adapter out of the engine unless the mode is on; run.json records what every adapter
was trained on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from core.io import iter_jsonl
from core.messages import Request
from core.prompts import DIRECT_TYPING_PREAMBLE
from core.register import write_adapter_training_data
from eval.config import ConfigError, load_config
from eval.engine import FakeBackend
from eval.infer import run_pipeline
from eval.plan import load_unchecked, missing_assets
from tests.conftest import REPO

LABELS = {
    "scientist": {"name": "computer scientist", "definition": "A named researcher of computing."},
    "programlang": {"name": "programming language", "definition": "A named programming language."},
    "misc": {"name": "miscellaneous", "definition": "A named entity that fits no other label."},
}
SENTENCES = [
    "Ada Lovelace wrote notes on the Analytical Engine in London .",
    "Guido van Rossum designed Python .",
    "It rained all day .",
]
# what both extractors find (identical answers: CCR keeps the one-word mentions too)
MENTIONS = {SENTENCES[0]: ["Ada Lovelace", "Analytical Engine", "London"],
            SENTENCES[1]: ["Guido van Rossum", "Python"], SENTENCES[2]: []}
# the direct classifier's answers: a label name in other case, a type outside the candidates
# ("machine"), an omitted mention ("London"), a raw tag in other case ("PROGRAMLANG") and a
# mention that was never tagged ("Monty")
ANSWERS = {SENTENCES[0]: [{"Ada Lovelace": "Computer Scientist"},
                          {"Analytical Engine": "machine"}],
           SENTENCES[1]: [{"Guido van Rossum": "computer scientist"}, {"Python": "PROGRAMLANG"},
                          {"Monty": "computer scientist"}]}


def write_domain(root: Path, name: str, misc: bool) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    labels = {tag: body for tag, body in LABELS.items() if misc or tag != "misc"}
    (folder / "domain.yaml").write_text(yaml.safe_dump(
        {"name": name, "sentences": "sentences.jsonl", "labels": labels}, sort_keys=False))
    with open(folder / "sentences.jsonl", "w", encoding="utf-8") as handle:
        for i, text in enumerate(SENTENCES):
            handle.write(json.dumps({"id": f"{name}-{i}", "tokens": text.split()}) + "\n")
    return folder


def respond(request: Request, prompt: str) -> str:
    if request.adapter in ("anchor", "explorer"):
        text = next(s for s in SENTENCES if s in prompt)
        return json.dumps({"computer scientist": MENTIONS[text]})
    assert request.adapter == "direct_classifier", request.adapter  # no classifier, no stage 3
    text = next(s for s in SENTENCES if s in re.sub(r"</?ENT>", "", prompt))
    return json.dumps(ANSWERS[text])


def direct_config(tmp_path: Path, *overrides: str):
    data = {"model": "fake", "engine": {"backend": "fake"}, "output_dir": str(tmp_path / "run"),
            "domains": [str(write_domain(tmp_path / "domains", "withmisc", misc=True)),
                        str(write_domain(tmp_path / "domains", "nomisc", misc=False))],
            "typing": "direct", "calibration": {"enabled": False}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path, list(overrides))


def records(path: Path) -> list[dict]:
    return [r for _, r in iter_jsonl(path)]


def test_direct_typing_labels_on_a_hand_written_case(tmp_path: Path) -> None:
    backend = FakeBackend(respond)
    run_pipeline(direct_config(tmp_path), backend=backend)
    # stage 1: 3 anchor + 3 explorer requests per domain; stage 2: the 2 sentences with mentions
    assert backend.requests == 2 * (3 + 3 + 2) and backend.calls == 2
    run = tmp_path / "run"
    with_misc = {r["id"]: [(e["text"], e["type"]) for e in r["entities"]]
                 for r in records(run / "withmisc" / "predictions.jsonl")}
    assert with_misc == {
        "withmisc-0": [("Ada Lovelace", "scientist"), ("Analytical Engine", "misc"),
                       ("London", "misc")],
        "withmisc-1": [("Guido van Rossum", "scientist"), ("Python", "programlang")],
        "withmisc-2": []}
    no_misc = {r["id"]: [(e["text"], e["type"]) for e in r["entities"]]
               for r in records(run / "nomisc" / "predictions.jsonl")}
    assert no_misc == {  # without misc, the omitted and the unknown-typed mentions are dropped
        "nomisc-0": [("Ada Lovelace", "scientist")],
        "nomisc-1": [("Guido van Rossum", "scientist"), ("Python", "programlang")],
        "nomisc-2": []}

    stats = json.loads((run / "withmisc" / "stats.json").read_text())["stages"]
    assert set(stats) == {"stage1_anchor", "stage1_explorer", "stage1_discovery",
                          "stage2_direct"}
    counts = {k: v for k, v in stats["stage2_direct"].items() if "tokens" not in k}
    assert counts == {"requests": 2, "status_ok": 2, "new": 2,  # zero counts are left out
                      "overlapping_mentions_not_tagged": 0, "mentions_tagged": 5, "typed": 3,
                      "omitted_to_misc": 1, "unknown_type_to_misc": 1,
                      "answer_mention_not_tagged": 1}
    dropped = json.loads((run / "nomisc" / "stats.json").read_text())["stages"]["stage2_direct"]
    assert (dropped["typed"], dropped["omitted_dropped"], dropped["unknown_type_dropped"]) == (
        3, 1, 1)
    assert "omitted_to_misc" not in dropped and "unknown_type_to_misc" not in dropped

    files = sorted(p.name for p in (run / "withmisc").iterdir())
    assert files == ["predictions.jsonl", "stage1_anchor.jsonl", "stage1_discovery.jsonl",
                     "stage1_explorer.jsonl", "stage2_direct.jsonl",
                     "stage2_direct_labels.jsonl", "stats.json"]
    asked = records(run / "withmisc" / "stage2_direct.jsonl")
    assert [r["adapter"] for r in asked] == ["direct_classifier"] * 2
    assert [r["key"] for r in asked] == ["withmisc-0", "withmisc-1"]
    # the candidates are the domain's label names, misc included, in the domain's order
    schema = '\nSchema: ["computer scientist", "programming language", "miscellaneous"]\n'
    assert all(DIRECT_TYPING_PREAMBLE + schema in r["prompt"] for r in asked)
    assert "Sentence: Guido van Rossum designed <ENT>Python</ENT> ." not in asked[1]["prompt"]
    assert "Sentence: <ENT>Guido van Rossum</ENT> designed <ENT>Python</ENT> ." in (
        asked[1]["prompt"])
    nomisc_schema = '\nSchema: ["computer scientist", "programming language"]\n'
    assert nomisc_schema in records(run / "nomisc" / "stage2_direct.jsonl")[0]["prompt"]
    assert records(run / "nomisc" / "stage2_direct_labels.jsonl")[0] == {
        "id": "nomisc-0", "tagged": "<ENT>Ada Lovelace</ENT> wrote notes on the "
                                    "<ENT>Analytical Engine</ENT> in <ENT>London</ENT> .",
        "labels": [["Ada Lovelace", "scientist"], ["Analytical Engine", None],
                   ["London", None]]}

    # a second run resumes: every answer saved, nothing generated, the same predictions
    before = (run / "withmisc" / "predictions.jsonl").read_text()
    again = FakeBackend(respond)
    run_pipeline(direct_config(tmp_path / "again", f"output_dir={run}"), backend=again)
    assert again.requests == 0
    assert (run / "withmisc" / "predictions.jsonl").read_text() == before


def test_run_json_records_typing_and_the_adapters_training_data(tmp_path: Path) -> None:
    adapter = tmp_path / "direct"
    adapter.mkdir()
    trained_on = {"recipe": "recipes/train/direct-classifier-tiny-cpu.yaml", "datasets": {}}
    write_adapter_training_data(adapter, trained_on)
    config = direct_config(tmp_path, f"direct_classifier_adapter.path={adapter}")
    run_pipeline(config, backend=FakeBackend(respond))
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["typing"] == "direct"
    # the fake config's extractors are the base model (no path, no adapter)
    assert run["adapters"] == {"direct_classifier": {"path": str(adapter),
                                                     "training_data": trained_on}}


# --- config: the direct adapter is loaded, checked and asked only in the direct mode ---------


def paper_config(*overrides: str):
    return load_unchecked(str(REPO / "recipes" / "infer" / "llama3-8b.yaml"), list(overrides))


def test_the_direct_adapter_belongs_to_the_direct_mode_only() -> None:
    paper = paper_config()
    assert paper.typing == "archetypes"
    assert list(paper.adapters_by_role()) == ["anchor", "explorer", "classifier"]
    assert paper.direct_classifier_adapter.path == "saves/llama3-8b/lora/direct_classifier"
    direct = paper_config("typing=direct", "calibration.enabled=false")
    assert list(direct.adapters_by_role()) == ["anchor", "explorer", "direct_classifier"]
    assert list(direct.adapters()) == ["anchor", "explorer", "direct_classifier"]  # the engine's
    lookup = paper_config("calibration.enabled=false")  # ABLATION=archetype-lookup
    assert lookup.typing == "archetypes" and "classifier" in lookup.adapters_by_role()


def test_the_authors_config_works_without_the_section() -> None:
    authors = load_unchecked(str(REPO / "recipes" / "infer" / "llama3-8b-authors.yaml"), [])
    assert authors.typing == "archetypes" and "direct_classifier" not in (
        authors.adapters_by_role())


def test_dry_run_names_the_direct_classifier_to_train(tmp_path: Path) -> None:
    config = paper_config("typing=direct", "calibration.enabled=false", "domains=[music]",
                          f"direct_classifier_adapter.path={tmp_path / 'd'}",
                          f"extractors.anchor.path={tmp_path / 'a'}",
                          f"extractors.explorer.path={tmp_path / 'e'}",
                          f"data_dir={REPO / 'nowhere'}")
    assert missing_assets(config, "c.yaml")[:3] == [
        f"extractors.anchor: {tmp_path / 'a'} has no adapter_config.json (fetch it: make models "
        "CONFIG=c.yaml)",
        f"extractors.explorer: {tmp_path / 'e'} has no adapter_config.json (train it: make "
        "train-explorer)",
        f"direct_classifier_adapter: {tmp_path / 'd'} has no adapter_config.json (train it: make "
        "train-direct-classifier)"]


@pytest.mark.parametrize(("overrides", "message"), [
    (["typing=direct"], "typing: direct types the mentions in stage 2 and has no calibration "
                        "stage: set calibration.enabled=false too"),
    (["typing=fine"], "typing: unknown 'fine' .known: archetypes, direct."),
    (["direct_classifier_adapter.base_model=other"],
     "direct_classifier_adapter.base_model: the classifier must share"),
    (["typing=direct", "calibration.enabled=false", "direct_classifier_adapter.enabled=false"],
     "direct_classifier_adapter: stage 2 cannot be disabled"),
    (["direct_classifier_adapter.template=llama9"],
     "direct_classifier_adapter.template: unknown 'llama9'"),
])
def test_config_errors(tmp_path: Path, converted_crossner, overrides, message) -> None:
    from tests.test_pipeline_fake import write_config

    with pytest.raises(ConfigError, match=message):
        load_config(write_config(tmp_path, converted_crossner), overrides)


def test_direct_mode_checks_its_adapter_before_any_model(tmp_path: Path,
                                                         converted_crossner) -> None:
    """A real backend: the direct adapter's path is checked (not the archetype classifier's,
    which the direct mode does not load), and an unset one is named."""
    from tests.test_pipeline_fake import write_config

    path = write_config(tmp_path, converted_crossner)
    real = ["engine.backend=vllm", "typing=direct", "calibration.enabled=false",
            "extractors.anchor.enabled=false", "consensus.rule=union"]
    with pytest.raises(ConfigError) as error:
        load_config(path, real)
    assert "direct_classifier_adapter.path: not set (the trained adapter's directory)" in str(
        error.value)
    with pytest.raises(ConfigError) as error:
        load_config(path, [*real, f"direct_classifier_adapter.path={tmp_path}/none"])
    assert f"direct_classifier_adapter.path: adapter {tmp_path}/none: no adapter_config.json" in (
        str(error.value))
    assert "classifier_adapter.path" not in str(error.value).replace("direct_classifier", "")


def test_every_shipped_config_but_the_authors_names_its_direct_classifier() -> None:
    expected = {"llama3-8b": "saves/llama3-8b/lora/direct_classifier",
                "qwen2.5-7b": "saves/qwen2.5-7b/lora/direct_classifier",
                "tiny-cpu": "saves/tiny/lora/direct_classifier",
                "tiny-cpu-ensemble": "saves/tiny/lora/direct_classifier",
                "demo-cpu": "saves/demo/lora/direct_classifier",
                "demo-cpu-ensemble": "saves/demo/lora/direct_classifier"}
    shipped = sorted(p.stem for p in (REPO / "recipes" / "infer").glob("*.yaml"))
    assert sorted([*expected, "llama3-8b-authors"]) == shipped
    for name, adapter in expected.items():
        data = yaml.safe_load((REPO / "recipes" / "infer" / f"{name}.yaml").read_text())
        assert data["direct_classifier_adapter"] == {
            "path": adapter, "template": data["classifier_adapter"]["template"]}
        assert data["typing"] == "archetypes"  # the paper's pipeline by default
