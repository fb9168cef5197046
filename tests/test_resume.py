"""Resume is keyed by what was asked: every edit regenerates exactly the requests it changed.

Fake backend, the first 10 CrossNER music test sentences, the oracle model of
``test_pipeline_fake``. The music schema has 12 types besides misc, which IEPile's split turns into
2 anchor queries per sentence: 20 anchor + 10 explorer requests, 1 classifier request per sentence
with mentions, 1 calibration request per mention.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from core import prompts
from core.io import iter_jsonl
from core.mappings import DOMAINS_DIR
from core.messages import Request
from eval.config import ConfigError, load_config
from eval.engine import FakeBackend
from eval.infer import lock_run_dir, main, run_pipeline
from tests.conftest import REPO
from tests.test_pipeline_fake import gold_by_text, oracle, write_config

STAGES = ("stage1_anchor", "stage1_explorer", "stage2_classifier", "stage3_calibration")


def stats(run: Path, domain: str = "music") -> dict:
    return json.loads((run / domain / "stats.json").read_text())["stages"]


def resumed(run: Path, domain: str = "music") -> dict[str, tuple[int, int, int]]:
    """(reused, regenerated, new) per LLM stage of the last run."""
    s = stats(run, domain)
    return {k: (s[k].get("reused", 0), s[k].get("regenerated", 0), s[k].get("new", 0))
            for k in STAGES}


@pytest.fixture
def own_domain(tmp_path, converted_crossner):
    """The music domain given by path, with its own copy of the sentences: the tests edit both."""
    folder = tmp_path / "mymusic"
    folder.mkdir()
    data = yaml.safe_load((DOMAINS_DIR / "music.yaml").read_text())
    data["name"] = "mymusic"
    lines = (converted_crossner / "music" / "test.jsonl").read_text().splitlines()[:10]
    (folder / "sentences.jsonl").write_text("\n".join(lines) + "\n")
    data["sentences"] = "sentences.jsonl"
    (folder / "domain.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def run(tmp_path, converted_crossner, domain, respond, overrides=(), backend_id="fake"):
    path = write_config(tmp_path, converted_crossner, domains=[str(domain)])
    backend = FakeBackend(respond, model_id=backend_id)
    run_pipeline(load_config(path, list(overrides)), backend=backend)
    return backend


def first_run(tmp_path, converted_crossner, own_domain):
    gold = gold_by_text(converted_crossner)
    backend = run(tmp_path, converted_crossner, own_domain, oracle(gold))
    out = tmp_path / "run"
    first = {k: stats(out, "mymusic")[k]["requests"] for k in STAGES}
    assert first["stage1_anchor"] == 20 and first["stage1_explorer"] == 10
    assert backend.requests == sum(first.values())
    return gold, out, first, (out / "mymusic" / "predictions.jsonl").read_text()


def test_run_files_live_under_out_whatever_the_domain_path(tmp_path, converted_crossner,
                                                           own_domain):
    _, out, first, _ = first_run(tmp_path, converted_crossner, own_domain)
    assert sorted(p.name for p in own_domain.iterdir()) == ["domain.yaml", "sentences.jsonl"]
    assert (out / "mymusic" / "predictions.jsonl").is_file()
    recorded = json.loads((out / "run.json").read_text())["domains"]["mymusic"]
    assert recorded == {"ref": str(own_domain), "sentences": 10,
                        "gold": str((own_domain / "sentences.jsonl").resolve()),
                        "file": str(own_domain / "domain.yaml")}  # no "refined": not refined
    # a no-op re-run reuses every answer and generates nothing
    gold = gold_by_text(converted_crossner)
    again = run(tmp_path, converted_crossner, own_domain, oracle(gold))
    assert again.requests == 0
    assert resumed(out, "mymusic") == {k: (n, 0, 0) for k, n in first.items()}


def test_editing_a_definition_regenerates_only_that_domains_calibration(
        tmp_path, converted_crossner, own_domain):
    gold, out, first, predictions = first_run(tmp_path, converted_crossner, own_domain)
    data = yaml.safe_load((own_domain / "domain.yaml").read_text())
    data["labels"]["band"]["definition"] = "A named group of musicians."
    (own_domain / "domain.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    again = run(tmp_path, converted_crossner, own_domain, oracle(gold))
    calibration = first["stage3_calibration"]
    assert again.requests == calibration
    assert resumed(out, "mymusic") == {
        "stage1_anchor": (20, 0, 0), "stage1_explorer": (10, 0, 0),
        "stage2_classifier": (first["stage2_classifier"], 0, 0),
        "stage3_calibration": (0, calibration, 0)}
    assert (out / "mymusic" / "predictions.jsonl").read_text() == predictions


def test_removing_a_label_regenerates_every_schema_prompt(tmp_path, converted_crossner,
                                                          own_domain):
    gold, out, _, _ = first_run(tmp_path, converted_crossner, own_domain)
    data = yaml.safe_load((own_domain / "domain.yaml").read_text())
    del data["labels"]["musicalinstrument"]
    data["more_specific"] = {k: v for k, v in (data.get("more_specific") or {}).items()
                             if k != "musicalinstrument"}
    data["archetype_fallback"] = {k: v for k, v in data["archetype_fallback"].items()
                                  if v != "musicalinstrument"}
    (own_domain / "domain.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    run(tmp_path, converted_crossner, own_domain, oracle(gold))
    after = resumed(out, "mymusic")
    # 11 types: IEPile's split gives [6, 5] (a remainder of 5 >= 3). The first chunk (album ...
    # location) is unchanged and reused; the second one lost musicalinstrument.
    assert after["stage1_anchor"] == (10, 10, 0)
    assert after["stage1_explorer"] == (0, 10, 0)
    assert after["stage3_calibration"][0] == 0  # every calibration prompt lists the types


def test_editing_one_sentence_regenerates_only_its_requests(tmp_path, converted_crossner,
                                                            own_domain):
    gold, out, first, _ = first_run(tmp_path, converted_crossner, own_domain)
    predictions = [r for _, r in iter_jsonl(out / "mymusic" / "predictions.jsonl")]
    target = next(i for i, r in enumerate(predictions) if r["entities"])
    mentions = len(predictions[target]["entities"])
    lines = (own_domain / "sentences.jsonl").read_text().splitlines()
    record = json.loads(lines[target])
    record["tokens"] = [*record["tokens"], "indeed"]  # a new last word, no span moves
    lines[target] = json.dumps(record)
    (own_domain / "sentences.jsonl").write_text("\n".join(lines) + "\n")
    text = " ".join(record["tokens"])
    edited_gold = {**gold, text: gold[" ".join(record["tokens"][:-1])]}
    again = run(tmp_path, converted_crossner, own_domain, oracle(edited_gold))
    assert again.requests == 2 + 1 + 1 + mentions
    assert resumed(out, "mymusic") == {
        "stage1_anchor": (18, 2, 0), "stage1_explorer": (9, 1, 0),
        "stage2_classifier": (first["stage2_classifier"] - 1, 1, 0),
        "stage3_calibration": (first["stage3_calibration"] - mentions, mentions, 0)}


@pytest.mark.parametrize("change", ["prompt wording", "base weights", "engine.extra",
                                    "decoding", "adapter retrained (.bin)"])
def test_what_changes_an_answer_regenerates_it(tmp_path, converted_crossner, own_domain,
                                               monkeypatch, change):
    adapter = tmp_path / "anchor-lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 64}')
    (adapter / "adapter_model.bin").write_bytes(b"weights v1")
    overrides = [f"extractors.anchor.path={adapter}"]
    gold = gold_by_text(converted_crossner)
    run(tmp_path, converted_crossner, own_domain, oracle(gold), overrides)
    out = tmp_path / "run"
    first = {k: stats(out, "mymusic")[k]["requests"] for k in STAGES}
    backend_id = "fake"
    if change == "prompt wording":
        monkeypatch.setattr(prompts, "EXPLORER_PREAMBLE", prompts.EXPLORER_PREAMBLE + " Be exact.")
    elif change == "base weights":
        backend_id = "fake, other weights at the same path"
    elif change == "engine.extra":
        overrides.append("engine.extra={quantization: fp8}")
    elif change == "decoding":
        overrides.append("sampling.repetition_penalty=1.1")
    else:
        (adapter / "adapter_model.bin").write_bytes(b"weights v2, retrained in place")
    again = run(tmp_path, converted_crossner, own_domain, oracle(gold), overrides, backend_id)
    after = resumed(out, "mymusic")
    if change == "prompt wording":
        assert after["stage1_explorer"] == (0, 10, 0) and after["stage1_anchor"] == (20, 0, 0)
        assert again.requests == 10
    elif change == "adapter retrained (.bin)":
        assert after["stage1_anchor"] == (0, 20, 0) and after["stage1_explorer"] == (10, 0, 0)
        assert again.requests == 20
    else:  # the whole run depends on it
        assert after == {k: (0, n, 0) for k, n in first.items()}
        assert again.requests == sum(first.values())


def test_a_calibration_answer_belongs_to_its_mention(tmp_path, converted_crossner, own_domain):
    """Run 1 without the anchor; the explorer misses the first mention of one sentence. Run 2
    with the anchor, which finds it: that sentence's mention list gains a mention in front, and
    every old mention keeps its label (a position key would have shifted labels onto others)."""
    gold = gold_by_text(converted_crossner)
    base = oracle(gold)
    target = next(s for s in list(gold.values())[:10] if len({e.text for e in s.entities}) >= 3)
    missed: list[str] = []

    def respond(request: Request, prompt: str) -> str:
        answer = base(request, prompt)
        if request.adapter == "explorer" and target.text in prompt:
            value = json.loads(answer)  # drop the mention that comes first in the sentence
            first = min((m for ms in value.values() for m in ms), key=target.text.find)
            missed.append(first)
            return json.dumps({t: [m for m in ms if m != first] for t, ms in value.items()})
        return answer

    run(tmp_path, converted_crossner, own_domain, respond, ["extractors.anchor.enabled=false"])
    out = tmp_path / "run"
    before = [r for _, r in iter_jsonl(out / "mymusic" / "predictions.jsonl")]
    calibrated = stats(out, "mymusic")["stage3_calibration"]["requests"]
    again = run(tmp_path, converted_crossner, own_domain, respond)
    assert again.requests == 20 + 1 + 1  # the anchor, the target's classifier, the new mention
    after = [r for _, r in iter_jsonl(out / "mymusic" / "predictions.jsonl")]
    index = next(i for i, r in enumerate(after) if r["id"] == target.id)
    old = {(e["text"], e["type"]) for e in before[index]["entities"]}
    new = {(e["text"], e["type"]) for e in after[index]["entities"]}
    gold_type = {e.text: e.type for e in target.entities}
    assert new - old == {(missed[0], gold_type[missed[0]])} and old < new
    # the new mention comes first, so every old one moved up a position
    assert after[index]["entities"][0]["text"] == missed[0]
    assert [e["text"] for e in after[index]["entities"][1:]] == [
        e["text"] for e in before[index]["entities"]]
    assert [r for i, r in enumerate(after) if i != index] == [
        r for i, r in enumerate(before) if i != index]
    assert resumed(out, "mymusic")["stage3_calibration"] == (calibrated, 0, 1)


def test_bad_lines_in_the_middle_keep_every_good_answer_after_them(tmp_path, converted_crossner,
                                                                  own_domain):
    gold, out, _, predictions = first_run(tmp_path, converted_crossner, own_domain)
    stage = out / "mymusic" / "stage1_explorer.jsonl"
    lines = stage.read_text().splitlines(keepends=True)
    assert len(lines) == 10
    lines[2] = '{"key": "cut in the mi\n'  # corrupt: not JSON
    lines.insert(5, "[1, 2, 3]\n")          # JSON, but not a record
    stage.write_text("".join(lines))
    again = run(tmp_path, converted_crossner, own_domain, oracle(gold))
    assert again.requests == 1  # only the answer on the corrupt line
    after = stats(out, "mymusic")["stage1_explorer"]
    assert (after["reused"], after.get("regenerated", 0), after["new"], after["bad_lines"]) == (
        9, 0, 1, 2)
    assert len(stage.read_text().splitlines()) == 10  # rewritten: bad lines out, answer back in
    assert (out / "mymusic" / "predictions.jsonl").read_text() == predictions


def test_a_torn_last_line_is_cut_and_regenerated(tmp_path, converted_crossner, own_domain):
    gold, out, _, predictions = first_run(tmp_path, converted_crossner, own_domain)
    stage = out / "mymusic" / "stage1_anchor.jsonl"
    text = stage.read_text()
    stage.write_text(text[: len(text) - 40])  # killed while writing the last record
    again = run(tmp_path, converted_crossner, own_domain, oracle(gold))
    assert again.requests == 1
    after = stats(out, "mymusic")["stage1_anchor"]
    assert (after["torn_lines"], after["reused"], after["new"]) == (1, 19, 1)
    assert (out / "mymusic" / "predictions.jsonl").read_text() == predictions


def test_a_second_live_run_into_the_same_out_is_refused_until_the_first_dies(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path;"
         "from eval.infer import lock_run_dir; h = lock_run_dir(Path(sys.argv[1]));"
         "print('locked', flush=True); time.sleep(60)", str(out)],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        busy = rf"{out} is in use by a live run \(pid {holder.pid}\)"
        with pytest.raises(ConfigError, match=busy):
            lock_run_dir(out)
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # a crash: no clean-up code runs
        holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the kernel drops the flock with the process
        try:
            lock_run_dir(out).close()
            break
        except ConfigError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


@pytest.mark.parametrize("argv", [["--limit", "0"], ["--dp", "0"], ["sampling.temperature=-1"],
                                  ["domains=[jazz]"]])
def test_a_refused_start_leaves_out_untouched(tmp_path, converted_crossner, capsys, argv):
    path = write_config(tmp_path, converted_crossner)
    out = tmp_path / "never"
    assert main(["--config", path, "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) <= 3
    assert not out.exists()


def test_a_read_only_out_is_a_one_line_error(tmp_path, converted_crossner, capsys):
    if os.geteuid() == 0:  # root writes anywhere: put a file where the folder must go instead
        out = tmp_path / "blocked"
        out.write_text("a file, not a folder")
    else:
        out = tmp_path / "ro"
        out.mkdir(mode=0o500)
    path = write_config(tmp_path, converted_crossner)
    assert main(["--config", path, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {out}") and "\n" not in err


def test_predictions_file_that_is_a_folder_is_a_one_line_error(tmp_path, converted_crossner,
                                                               own_domain, capsys):
    from core.cli import run as run_cli

    blocked = tmp_path / "run" / "mymusic" / "predictions.jsonl"
    blocked.mkdir(parents=True)
    config = load_config(write_config(tmp_path, converted_crossner, domains=[str(own_domain)]))
    gold = gold_by_text(converted_crossner)
    assert run_cli(lambda: run_pipeline(config, backend=FakeBackend(oracle(gold)))) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and str(blocked) in err


def test_extract_as_and_raw_tags_choose_what_the_extractors_are_asked(tmp_path,
                                                                      converted_crossner,
                                                                      own_domain):
    from core.mappings import load_domain
    from eval.discovery import extractor_types

    data = yaml.safe_load((own_domain / "domain.yaml").read_text())
    data["labels"]["organisation"]["extract_as"] = "organization"
    (own_domain / "domain.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    domain = load_domain(own_domain)
    config = load_config(write_config(tmp_path, converted_crossner, domains=[str(own_domain)]))
    names = extractor_types(domain, config)
    assert "organization" in names and "organisation" not in names and "misc" not in names
    assert len(names) == 12  # 13 labels but misc
    path = write_config(tmp_path, converted_crossner, domains=[str(own_domain)])
    raw = extractor_types(domain, load_config(path, ["extraction.type_names=raw_tag"]))
    assert raw == [tag for tag in domain.labels if tag != "misc"]
    assert "musicalartist" in raw


def test_two_domains_with_one_name_are_refused_before_out_exists(tmp_path, converted_crossner,
                                                                own_domain):
    twin = tmp_path / "twin"
    twin.mkdir()
    for name in ("domain.yaml", "sentences.jsonl"):
        (twin / name).write_text((own_domain / name).read_text())
    path = write_config(tmp_path, converted_crossner, domains=[str(own_domain), str(twin)])
    with pytest.raises(ConfigError, match=rf"domains {str(own_domain)!r} and {str(twin)!r} "
                                          "share the name 'mymusic'"):
        run_pipeline(load_config(path), backend=FakeBackend(lambda r, p: ""))
    assert not (tmp_path / "run").exists()
