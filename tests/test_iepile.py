"""IEPile NER records → stage-2 alpaca records (filtering, projection, tagging): the archetype
classifier's and the direct-typing classifier's, and the provenance sidecar beside them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.io import DataError
from core.mappings import load_archetypes
from core.prompts import CLASSIFIER_PREAMBLE, DIRECT_TYPING_PREAMBLE, PROMPT_VERSION
from core.register import read_data_meta
from data_prep import iepile
from data_prep.iepile import IEPileStats, UnmappedTypesError, convert

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
IEPILE_ZH = SHARED_DATA / "iepile" / "NER" / "train.json"
# Placeholder: the real IEPile instruction belongs to the inference config, not to this converter.
INSTRUCTION = "Extract the entities of the schema types from the input."


def ner(text: str, output: dict[str, list[str]], task: str = "NER",
        schema: list[str] | None = None) -> str:
    instruction = {"instruction": INSTRUCTION, "schema": schema or list(output), "input": text}
    return json.dumps({"task": task, "source": "CoNLL2003",
                       "instruction": json.dumps(instruction, ensure_ascii=False),
                       "output": json.dumps(output, ensure_ascii=False)}, ensure_ascii=False)


LINES = [
    ner("Marie Curie worked in Paris for the Sorbonne on 4 July 1902 .",  # line 1
        {"person": ["Marie Curie", "Curie"], "organization": ["Sorbonne"],
         "location": ["Paris"], "date": ["4 July 1902"]}),
    ner("Alice knows Bob .", {"head": ["Alice"]}, task="RE"),  # 2: not NER
    ner("It was a quiet week .", {"person": [], "location": []}),  # 3: no entity
    '{"task": "NER", "instruction": ',  # 4: bad JSON
    ner("The Lakers beat the Celtics in Boston .",  # 5: unmapped type, a mention not in text
        {"sports team": ["Lakers", "Celtics"], "location": ["Boston", "Chicago"], "else": []}),
    ner("It rained all day .", {"location": ["Berlin"]}),  # 6: no mention found
    ner("Jordan visited Jordan .", {"person": ["Jordan"], "location": ["Jordan"]}),  # 7: conflict
    ner("See you on Monday .", {"date": ["Monday"]}),  # 8: only a dropped type
    ner("Arthur drew Excalibur .",  # 9: another unmapped type, schema from the instruction
        {"person": ["Arthur"], "sports team": [], "weapon": ["Excalibur"]},
        schema=["person", "sports team", "weapon"]),
]


def prompt(schema: str, sentence: str, output: str,
           preamble: str = CLASSIFIER_PREAMBLE) -> dict[str, str]:
    return {"instruction": preamble + "\nSchema: " + schema,
            "input": "Sentence: " + sentence, "output": output}


EXPECTED = [
    prompt('["person", "organization", "location"]',
           "<ENT>Marie Curie</ENT> worked in <ENT>Paris</ENT> for the <ENT>Sorbonne</ENT> on "
           "4 July 1902 .",
           '[{"Marie Curie": "person"}, {"Paris": "location"}, {"Sorbonne": "organization"}]'),
    prompt('["location", "misc"]', "The Lakers beat the Celtics in <ENT>Boston</ENT> .",
           '[{"Boston": "location"}]'),
    prompt('["person", "location"]', "<ENT>Jordan</ENT> visited Jordan .",
           '[{"Jordan": "person"}]'),
    prompt('["person"]', "<ENT>Arthur</ENT> drew Excalibur .", '[{"Arthur": "person"}]'),
]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def read_out(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def expected_stats() -> IEPileStats:
    stats = IEPileStats(
        lines_read=9, bad_lines=1, not_ner=1, no_entity=1, no_mention_left=1,
        no_tagged_mention=1, records_written=4, mentions_read=15, dropped_type_mentions=2,
        unmapped_mentions=3, conflicts=1, mentions_not_found=3, mentions_tagged=6)
    stats.unmapped_records.update({"sports team": 2, "weapon": 1})
    stats.unmapped_mention_counts.update({"sports team": 2, "weapon": 1})
    stats.written_by_source.update({"CoNLL2003": 4})
    return stats


def test_fixture_exact_output_and_stats(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "train.json", LINES)
    stats = convert(src, tmp_path / "out.jsonl", skip_unmapped=True, skip_bad=True)
    assert read_out(tmp_path / "out.jsonl") == EXPECTED
    assert stats == expected_stats()


def test_json_array_output(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "train.json", LINES)
    convert(src, tmp_path / "out.json", skip_unmapped=True, skip_bad=True)
    assert read_out(tmp_path / "out.json") == EXPECTED


def test_unmapped_types_fail_after_the_whole_pass(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "train.json", LINES)
    out = tmp_path / "out.jsonl"
    with pytest.raises(UnmappedTypesError) as err:
        convert(src, out, skip_bad=True)
    assert not out.exists()
    assert err.value.stats == expected_stats()  # the pass was finished
    message = str(err.value)
    assert message.endswith("\n  'sports team': 2 records, 2 mentions"
                            "\n  'weapon': 1 records, 1 mentions")
    assert message.startswith("2 IEPile types are neither projected nor dropped")


def test_bad_json_line_fails_with_file_and_line(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "train.json", LINES)
    with pytest.raises(DataError, match=r"train\.json:4: "):
        convert(src, tmp_path / "out.jsonl", skip_unmapped=True)
    bad_field = write_lines(tmp_path / "bad.json", [
        json.dumps({"task": "NER", "instruction": "{}", "output": "{}"})])
    with pytest.raises(DataError, match=r"bad\.json:1: 'instruction' must encode an object"):
        convert(bad_field, tmp_path / "out.jsonl")
    bad_output = write_lines(tmp_path / "bad2.json", [ner("A .", {"person": "A"})])
    with pytest.raises(DataError, match=r"bad2\.json:1: 'output' type 'person' must map"):
        convert(bad_output, tmp_path / "out.jsonl")


def test_limit_caps_written_records(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "train.json", LINES)
    stats = convert(src, tmp_path / "out.jsonl", skip_unmapped=True, skip_bad=True, limit=2)
    assert read_out(tmp_path / "out.jsonl") == EXPECTED[:2]
    assert stats.lines_read == 5  # stopped right after the second written record


def test_streaming_reads_lazily(tmp_path: Path) -> None:
    """Records come out while the file is being read: nothing holds the whole input."""
    lines = [ner(f"Ada number {i} .", {"person": ["Ada"]}) for i in range(5000)]
    src = write_lines(tmp_path / "big.json", lines)
    stats = IEPileStats()
    records = iepile.iter_records(src, load_archetypes(), stats)
    next(records)
    assert stats.lines_read == 1
    records.close()


def test_schema_follows_archetypes_yaml_order(tmp_path: Path) -> None:
    yaml_path = tmp_path / "archetypes.yaml"
    yaml_path.write_text(
        "archetypes:\n"
        "  location: {definition: A place.}\n"
        "  person: {definition: A human.}\n"
        "projection:\n"
        "  location: [city]\n"
        "  person: [person, actor]\n"
        "dropped_types: [date]\n", encoding="utf-8")
    src = write_lines(tmp_path / "train.json", [
        ner("Ada acted in Rome .", {"actor": ["Ada"], "person": [], "city": ["Rome"]})])
    convert(src, tmp_path / "out.jsonl", archetypes=load_archetypes(yaml_path))
    assert read_out(tmp_path / "out.jsonl") == [
        prompt('["location", "person"]', "<ENT>Ada</ENT> acted in <ENT>Rome</ENT> .",
               '[{"Ada": "person"}, {"Rome": "location"}]')]


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_lines(tmp_path / "train.json", LINES)
    out = tmp_path / "out.jsonl"
    assert iepile.main(["--src", str(src), "--out", str(out), "--skip-bad"]) == 2
    captured = capsys.readouterr()
    assert "'sports team': 2 records" in captured.err and "nothing written" in captured.out
    assert not out.exists()
    argv = ["--src", str(src), "--out", str(out), "--skip-bad", "--skip-unmapped"]
    assert iepile.main(argv) == 0
    printed = capsys.readouterr().out
    assert "mentions_not_found" in printed and "'weapon': 1 records" in printed
    assert read_out(out) == EXPECTED


def test_real_chinese_sample(tmp_path: Path) -> None:
    stats = convert(IEPILE_ZH, tmp_path / "zh.jsonl")
    schema = '["person", "organization", "location"]'
    assert read_out(tmp_path / "zh.jsonl") == [
        prompt(schema, "相比之下，<ENT>青岛海牛队</ENT>和<ENT>广州松日队</ENT>的雨中之战虽然也是"
                       "0∶0，但乏善可陈。",
               '[{"青岛海牛队": "organization"}, {"广州松日队": "organization"}]'),
        prompt(schema, "<ENT>胡</ENT>老说，当画画疲倦时就到院里去看看，给这盆花浇点水，给那棵花"
                       "剪剪枝，回来再接着画，画累了再出去，如此循环往复，脑体结合，有益健康，胜过吃药。",
               '[{"胡": "person"}]'),
    ]
    assert (stats.lines_read, stats.no_entity, stats.records_written) == (6, 4, 2)
    assert stats.mentions_tagged == 3 and not stats.unmapped_records


# ---- bad inputs: a record without a task, empty inputs, nothing to train on -------------------

def test_record_without_task_fails_or_is_counted_apart(tmp_path: Path) -> None:
    no_task = json.loads(LINES[0])
    del no_task["task"]
    null_task = {**no_task, "task": None}
    src = write_lines(tmp_path / "train.json",
                      [LINES[0], json.dumps(no_task), json.dumps(null_task), LINES[3]])
    with pytest.raises(DataError) as err:
        convert(src, tmp_path / "out.jsonl")
    assert str(err.value) == (
        f"{src}:2: no string 'task' (IEPile records name their task, e.g. \"NER\")")
    # --skip-bad: counted as missing_task, neither as not_ner nor among the other bad lines.
    stats = convert(src, tmp_path / "out.jsonl", skip_bad=True)
    assert (stats.lines_read, stats.missing_task, stats.bad_lines, stats.not_ner,
            stats.records_written) == (4, 2, 1, 0, 1)
    assert "  missing_task                   2" in stats.summary().splitlines()


@pytest.mark.parametrize("content", ["", "\n \n"], ids=["empty", "blank lines"])
def test_empty_input_fails_naming_the_file(tmp_path: Path, content: str) -> None:
    src = tmp_path / "train.json"
    src.write_text(content, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    with pytest.raises(DataError) as err:
        convert(src, out)
    assert str(err.value) == f"{src}: no records: the file is empty or blank"
    assert not out.exists()


def test_input_without_a_training_record_fails_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_lines(tmp_path / "train.json", [LINES[1], LINES[2], LINES[3], LINES[7]])
    out = tmp_path / "out.json"
    argv = ["--src", str(src), "--out", str(out), "--skip-bad"]
    assert iepile.main(argv) == 2
    assert capsys.readouterr().err == (
        f"error: {src}: no training record among 4 records (bad_lines 1, not_ner 1, "
        f"no_entity 1, no_mention_left 1): nothing to train on\n")
    assert not out.exists()


# --- sources: every one kept by default (the paper's data), --exclude-sources opts out --------


def sourced(source: str, text: str, output: dict[str, list[str]], task: str = "NER") -> str:
    record = json.loads(ner(text, output, task=task))
    return json.dumps({**record, "source": source})


EXCLUDE_LINES = [
    sourced("mit-movie", "what movies star tom hanks", {"actor": ["tom hanks"]}),
    sourced("MIT Restaurant", "cheap pizza nearby", {"Dish": ["pizza"]}),  # same key as below
    sourced("CoNLL2003", "Marie Curie lived in Paris .",
            {"person": ["Marie Curie"], "location": ["Paris"]}),
    sourced("mit_movie", "Alice knows Bob .", {"head": ["Alice"]}, task="RE"),  # any task
    sourced("mitmovies", "Ann met Bob in Rome .", {"person": ["Ann", "Bob"]}),  # another name
]
ALL_OUTPUTS = [[{"tom hanks": "person"}], [{"pizza": "food"}],
               [{"Marie Curie": "person"}, {"Paris": "location"}],
               [{"Ann": "person"}, {"Bob": "person"}]]


def test_every_source_is_kept_by_default(tmp_path: Path) -> None:
    """The paper trained on IEPile's whole NER subset, MIT Movie and MIT Restaurant included."""
    assert iepile.DEFAULT_EXCLUDED_SOURCES == ()
    src = write_lines(tmp_path / "train.json", EXCLUDE_LINES)
    stats = convert(src, tmp_path / "out.jsonl")
    assert [json.loads(r["output"]) for r in read_out(tmp_path / "out.jsonl")] == ALL_OUTPUTS
    assert (stats.lines_read, stats.excluded_source, stats.records_written, stats.not_ner) == (
        5, 0, 4, 1)
    assert stats.written_by_source == {"mit-movie": 1, "MIT Restaurant": 1, "CoNLL2003": 1,
                                       "mitmovies": 1}
    assert "    written from source 'MIT Restaurant': 1 records" in stats.summary()


def test_mit_sources_excluded_on_request_and_counted(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "train.json", EXCLUDE_LINES)
    stats = convert(src, tmp_path / "out.jsonl", exclude_sources=iepile.MIT_SOURCES)
    assert [json.loads(r["output"]) for r in read_out(tmp_path / "out.jsonl")] == ALL_OUTPUTS[2:]
    assert (stats.lines_read, stats.excluded_source, stats.records_written) == (5, 3, 2)
    assert stats.excluded_by_source == {"mit-movie": 1, "MIT Restaurant": 1, "mit_movie": 1}
    assert stats.not_ner == 0  # the excluded RE record is counted as excluded, not as not-NER
    assert "    excluded source 'MIT Restaurant': 1 records" in stats.summary()
    conll = convert(src, tmp_path / "conll.jsonl", exclude_sources=["conll 2003"])
    assert conll.excluded_by_source == {"CoNLL2003": 1} and conll.records_written == 3


def test_cli_exclude_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_lines(tmp_path / "train.json", EXCLUDE_LINES)
    out = tmp_path / "out.jsonl"
    assert iepile.main(["--src", str(src), "--out", str(out)]) == 0
    assert "excluded_source                0" in capsys.readouterr().out
    assert len(read_out(out)) == 4
    argv = ["--src", str(src), "--out", str(out), "--exclude-sources", "mit-movie",
            "mit-restaurant"]
    assert iepile.main(argv) == 0
    assert "excluded_source                3" in capsys.readouterr().out
    assert len(read_out(out)) == 2
    assert read_data_meta(out)["excluded_sources"] == ["mit-movie", "mit-restaurant"]


def test_only_excluded_records_fail_naming_the_reason(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "train.json", EXCLUDE_LINES[:2])
    with pytest.raises(DataError, match=r"no training record among 2 records "
                                        r"\(excluded_source 2\)"):
        convert(src, tmp_path / "out.jsonl", exclude_sources=iepile.MIT_SOURCES)
    assert not (tmp_path / "out.jsonl").exists()
    assert read_data_meta(tmp_path / "out.jsonl") is None  # no data, no sidecar


def test_sidecar_records_source_exclusions_counts_and_prompt_version(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "train.json", EXCLUDE_LINES)
    out = tmp_path / "out.jsonl"
    convert(src, out, exclude_sources=["mit-movie"], limit=5,
            source_info={"repo_id": "zjunlp/iepile", "revision": "abc"})
    meta = read_data_meta(out)
    assert meta is not None and (tmp_path / "out.jsonl.meta.json").is_file()
    stats = meta.pop("stats")
    assert meta == {
        "converter": "data_prep.iepile", "target": "archetypes", "prompt_version": PROMPT_VERSION,
        "source": {"file": str(src.resolve()), "bytes": src.stat().st_size,
                   "repo_id": "zjunlp/iepile", "revision": "abc"},
        "excluded_sources": ["mit-movie"], "limit": 5, "skip_unmapped": False,
        "skip_bad": False, "records_written": 3,
        "records_by_source": {"CoNLL2003": 1, "MIT Restaurant": 1, "mitmovies": 1}}
    assert (stats["lines_read"], stats["excluded_source"], stats["not_ner"]) == (5, 2, 0)
    assert stats["excluded_by_source"] == {"mit-movie": 1, "mit_movie": 1}


# --- --target direct: the record's own types, for the direct-typing classifier ----------------


def direct(schema: str, sentence: str, output: str) -> dict[str, str]:
    return prompt(schema, sentence, output, DIRECT_TYPING_PREAMBLE)


# LINES again, hand-computed for the direct target: no projection, so "sports team" and "weapon"
# (unknown to archetypes.yaml) are kept as candidates and answers; "date" is still dropped; the
# candidates are the record's kept schema types in record order, negatives ("else") included.
EXPECTED_DIRECT = [
    direct('["person", "organization", "location"]',
           "<ENT>Marie Curie</ENT> worked in <ENT>Paris</ENT> for the <ENT>Sorbonne</ENT> on "
           "4 July 1902 .",
           '[{"Marie Curie": "person"}, {"Paris": "location"}, {"Sorbonne": "organization"}]'),
    direct('["sports team", "location", "else"]',
           "The <ENT>Lakers</ENT> beat the <ENT>Celtics</ENT> in <ENT>Boston</ENT> .",
           '[{"Lakers": "sports team"}, {"Celtics": "sports team"}, {"Boston": "location"}]'),
    # "Jordan" under person and location: the first type wins, counted as a conflict
    direct('["person", "location"]', "<ENT>Jordan</ENT> visited Jordan .",
           '[{"Jordan": "person"}]'),
    direct('["person", "sports team", "weapon"]', "<ENT>Arthur</ENT> drew <ENT>Excalibur</ENT> .",
           '[{"Arthur": "person"}, {"Excalibur": "weapon"}]'),
]


def test_direct_target_exact_output_and_stats(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "train.json", LINES)
    out = tmp_path / "direct.jsonl"
    stats = convert(src, out, skip_bad=True, target="direct")  # no --skip-unmapped needed
    assert read_out(out) == EXPECTED_DIRECT
    expected = IEPileStats(
        lines_read=9, bad_lines=1, not_ner=1, no_entity=1, no_mention_left=1,
        no_tagged_mention=1, records_written=4, mentions_read=15, dropped_type_mentions=2,
        conflicts=1, mentions_not_found=3, mentions_tagged=9)
    expected.written_by_source.update({"CoNLL2003": 4})
    assert stats == expected
    assert read_data_meta(out)["target"] == "direct"


def test_direct_target_same_records_as_the_archetype_target(tmp_path: Path) -> None:
    """Both targets read the same records and tag the same mentions; only the labels differ."""
    src = write_lines(tmp_path / "train.json", LINES)
    convert(src, tmp_path / "a.jsonl", skip_bad=True, skip_unmapped=True)
    convert(src, tmp_path / "d.jsonl", skip_bad=True, target="direct")
    archetype_inputs = [r["input"] for r in read_out(tmp_path / "a.jsonl")]
    direct_inputs = [r["input"] for r in read_out(tmp_path / "d.jsonl")]
    # the archetype target drops the unmapped "sports team" and "weapon" mentions, so the
    # Lakers/Celtics and Excalibur tags exist only in the direct data; the rest is identical
    assert archetype_inputs[0] == direct_inputs[0] and archetype_inputs[2] == direct_inputs[2]
    assert [r.replace("<ENT>", "").replace("</ENT>", "") for r in archetype_inputs] == [
        r.replace("<ENT>", "").replace("</ENT>", "") for r in direct_inputs]


def test_cli_direct_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_lines(tmp_path / "train.json", LINES)
    out = tmp_path / "direct.json"
    assert iepile.main(["--src", str(src), "--out", str(out), "--skip-bad",
                        "--target", "direct"]) == 0
    assert "conflicts                      1" in capsys.readouterr().out
    assert read_out(out) == EXPECTED_DIRECT
    with pytest.raises(SystemExit):
        iepile.main(["--src", str(src), "--out", str(out), "--target", "fine"])
