"""Label definitions chosen per run (``DEFINITIONS=``): both file layouts, fail-fast errors, and
what ``run.json`` records (source, setting, per-domain origin, test gold strings quoted)."""

from __future__ import annotations

import json

import pytest

from core.definitions import (
    DefinitionsError,
    apply_definitions,
    load_definitions,
)
from core.mappings import load_domain
from eval.config import ConfigError, load_config
from eval.engine import FakeBackend
from eval.infer import run_pipeline
from tests.test_pipeline_fake import gold_by_text, oracle, write_config

MUSIC = load_domain("music")

# The authors' layout (domain -> raw tag -> definition), with invented text: the repository never
# ships their file. "jazz" and "Grammy Award" are music test gold: the run must report them.
AUTHORS_LAYOUT = {
    "music": {tag: f"Invented text for {tag}." for tag in MUSIC.labels}
    | {"musicgenre": 'A style of music, e.g. "jazz".',
       "award": 'A prize for music, e.g. "Grammy Award".'},
    "ai": {"programlang": "A language for programs."},
}


def write_authors(tmp_path, data=AUTHORS_LAYOUT):
    path = tmp_path / "schema_define_crossNER.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def test_authors_layout_replaces_the_definitions(tmp_path):
    definitions = load_definitions(write_authors(tmp_path))
    assert (definitions.layout, definitions.setting, definitions.paper_setting) == (
        "authors", "external", False)
    domain, origin = apply_definitions(MUSIC, definitions)
    assert origin == "file"
    assert domain.labels["musicgenre"].definition == 'A style of music, e.g. "jazz".'
    assert domain.labels["band"].definition == "Invented text for band."
    assert domain.labels["musicalartist"].name == MUSIC.labels["musicalartist"].name  # kept
    assert domain.more_specific == MUSIC.more_specific
    assert MUSIC.labels["band"].definition != "Invented text for band."  # the default is intact


def test_a_domain_the_file_does_not_list_keeps_its_defaults(tmp_path):
    literature = load_domain("literature")
    assert apply_definitions(literature, load_definitions(write_authors(tmp_path))) == (
        literature, "default")
    assert apply_definitions(literature, None) == (literature, "default")


def test_a_listed_domain_must_define_every_label_and_no_other(tmp_path):
    data = {"music": {tag: "x" for tag in MUSIC.labels if tag != "song"} | {"songg": "y"}}
    definitions = load_definitions(write_authors(tmp_path, data))
    with pytest.raises(DefinitionsError, match=r"music: missing labels \['song'\]; labels not "
                                               r"in the domain \['songg'\]"):
        apply_definitions(MUSIC, definitions)


def test_our_layout_with_a_setting_and_names(tmp_path):
    path = tmp_path / "defs.yaml"
    path.write_text(
        "setting: in_domain_train_examples\ndescription: mine\ndomains:\n  music:\n"
        + "".join(f"    {tag}: Text {tag}.\n" for tag in MUSIC.labels if tag != "band")
        + "    band: {name: music group, definition: A group that plays.}\n", encoding="utf-8")
    definitions = load_definitions(path)
    assert (definitions.layout, definitions.setting, definitions.paper_setting) == (
        "samner", "in_domain_train_examples", False)
    domain, _ = apply_definitions(MUSIC, definitions)
    assert (domain.labels["band"].name, domain.labels["band"].definition) == (
        "music group", "A group that plays.")
    assert definitions.record()["setting_means"].startswith(
        "definitions with in-domain train examples: not the paper's setting")


@pytest.mark.parametrize("text, message", [
    ("setting: mine\ndomains: {music: {band: x}}\n", r"setting 'mine' is not one of"),
    ("domains: {}\n", r"no domain defined"),
    ("domains: {music: {band: ''}}\n", r"music\.band: expected a non-empty definition"),
    ("domains: {music: {band: {definition: x, example: y}}}\n", r"unknown keys \['example'\]"),
    ("extra: 1\ndomains: {music: {band: x}}\n", r"unknown top-level keys \['extra'\]"),
])
def test_bad_files_fail_naming_file_and_entry(tmp_path, text, message):
    path = tmp_path / "defs.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DefinitionsError, match=message):
        load_definitions(path)


def test_bad_json_names_the_line(tmp_path):
    path = tmp_path / "defs.json"
    path.write_text('{\n  "music": {\n    "band": "x",\n  }\n}\n', encoding="utf-8")
    with pytest.raises(DefinitionsError, match=r"defs\.json:4: invalid JSON \("):
        load_definitions(path)


def test_unknown_variant_lists_the_shipped_ones():
    with pytest.raises(DefinitionsError, match=r"no such variant \(shipped variants: "
                                               r"train_examples\)"):
        load_definitions("train_exampels")


def test_shipped_variant_covers_the_seven_domains():
    variant = load_definitions("train_examples")
    assert variant.setting == "in_domain_train_examples" and not variant.paper_setting
    for name in ("ai", "literature", "music", "politics", "science", "mit_movie",
                 "mit_restaurant"):
        assert apply_definitions(load_domain(name), variant)[1] == "file"


def test_config_refuses_a_bad_definitions_file_before_any_model(tmp_path, converted_crossner):
    path = write_authors(tmp_path, {"music": {"band": "x"}})
    with pytest.raises(ConfigError, match=r"definitions: .*music: missing labels"):
        load_config(write_config(tmp_path, converted_crossner, definitions=str(path)))
    assert not (tmp_path / "run").exists()


def test_run_records_the_definitions_and_the_test_gold_they_quote(tmp_path, converted_crossner):
    path = write_authors(tmp_path)
    config = load_config(write_config(tmp_path, converted_crossner, definitions=str(path)))
    prompts: list[str] = []
    respond = oracle(gold_by_text(converted_crossner))

    def recording(request, prompt):
        prompts.append(prompt)
        return respond(request, prompt)

    run_pipeline(config, backend=FakeBackend(recording))
    record = json.loads((tmp_path / "run" / "run.json").read_text())["definitions"]
    assert {k: record[k] for k in ("source", "layout", "setting", "paper_setting")} == {
        "source": str(path), "layout": "authors", "setting": "external",
        "paper_setting": False}
    assert record["domains"] == {
        "music": {"from": "file", "gold_strings_quoted": ["Grammy Award", "jazz"]}}
    calibration = [p for p in prompts if "\nMention: " in p]
    assert calibration and all('- music genre: A style of music, e.g. "jazz".' in p
                               for p in calibration)


def test_default_run_records_the_paper_setting(tmp_path, converted_crossner):
    config = load_config(write_config(tmp_path, converted_crossner))
    run_pipeline(config, backend=FakeBackend(oracle(gold_by_text(converted_crossner))))
    record = json.loads((tmp_path / "run" / "run.json").read_text())["definitions"]
    assert (record["setting"], record["paper_setting"]) == ("guidelines", True)
    assert record["domains"] == {"music": {"from": "default", "gold_strings_quoted": []}}
