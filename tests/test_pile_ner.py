"""Pile-NER (ShareGPT rows, SLIMER lines, UniNER eval files) → explorer alpaca records."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from core.io import DataError, ProjectError
from core.prompts import EXPLORER_PREAMBLE
from data_prep import pile_ner
from data_prep.pile_ner import PileNerStats, RawPassage, convert, read_slimer

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SLIMER = SHARED_DATA / "pile_ner" / "slimer_pileNER_5pos_5neg_top391NEs_FalseDef_validation.jsonl"
UNINER_AI = SHARED_DATA / "uniner_eval" / "CrossNER_AI.json"
ACK = {"from": "gpt", "value": "I've read this text."}


def row(text: str, *qa: tuple[str, str], prefix: str = "Text: ") -> dict[str, Any]:
    turns = [{"from": "human", "value": prefix + text}, ACK]
    for type_name, answer in qa:
        turns += [{"from": "human", "value": f"What describes {type_name} in the text?"},
                  {"from": "gpt", "value": answer}]
    return {"conversations": turns}


GOOD = [
    row("Ada Lovelace wrote notes on the Analytical Engine .",
        ("person", '["Ada Lovelace"]'),
        ("machine", '["Analytical Engine", "Analytical Engine"]'),
        ("city", "[]"),  # a negative type
        ("date", "no dates here")),  # unparseable answer
    row("Paris is in France .", ("location", '["Paris", "France"]')),
    row("Nothing to ask about ."),  # no question at all
]
BAD_PREFIX = row("Paris again", prefix="")  # no "Text: " turn
ODD = {"conversations": [*row("Odd .", ("person", "[]"))["conversations"][:3]]}  # unanswered

EXPECTED = [
    {"instruction": EXPLORER_PREAMBLE + '\nSchema: ["date", "machine", "city", "person"]',
     "input": "Passage: Ada Lovelace wrote notes on the Analytical Engine .",
     "output": '{"date": [], "machine": ["Analytical Engine"], "city": [], '
               '"person": ["Ada Lovelace"]}'},
    {"instruction": EXPLORER_PREAMBLE + '\nSchema: ["location"]',
     "input": "Passage: Paris is in France .",
     "output": '{"location": ["Paris", "France"]}'},
]


def write_json(path: Path, rows: list[Any]) -> Path:
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def read_out(path: Path) -> list[dict[str, str]]:
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_fixture_exact_output_and_stats(tmp_path: Path) -> None:
    src = write_json(tmp_path / "pile.json", [*GOOD, BAD_PREFIX, ODD])
    stats = convert(src, tmp_path / "out.json", skip_bad=True)
    assert read_out(tmp_path / "out.json") == EXPECTED
    assert stats == PileNerStats(
        records_read=5, bad_records=2, passages_written=2, passages_without_type=1,
        questions=5, unparseable_answers=1, mentions_read=5, duplicate_mentions=1)
    assert stats.mentions_written == 4


def test_jsonl_in_jsonl_out(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "pile.jsonl", GOOD)
    convert(src, tmp_path / "out.jsonl")
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == EXPECTED


def test_json_output_is_one_array(tmp_path: Path) -> None:
    convert(write_json(tmp_path / "p.json", GOOD), tmp_path / "out.json")
    text = (tmp_path / "out.json").read_text(encoding="utf-8")
    assert text.startswith("[") and json.loads(text) == EXPECTED
    with pytest.raises(ProjectError, match=r"\.json \(array\) or \.jsonl"):
        convert(tmp_path / "p.json", tmp_path / "out.txt")


def test_malformed_row_fails_with_file_and_record(tmp_path: Path) -> None:
    src = write_json(tmp_path / "pile.json", [*GOOD, BAD_PREFIX])
    with pytest.raises(DataError) as err:
        convert(src, tmp_path / "out.json")
    assert str(err.value) == (
        f"{src}: record 3: turn 0 must start with 'Text: ', got 'Paris again'")
    assert not (tmp_path / "out.json").exists()  # nothing half-written

    src = write_jsonl(tmp_path / "pile.jsonl", [*GOOD, ODD])
    with pytest.raises(DataError, match=r"pile\.jsonl:4: record 3: turn 2 \(a question\) has no"):
        convert(src, tmp_path / "out.jsonl")


@pytest.mark.parametrize(("turns", "message"), [
    ([{"from": "human", "value": "Text: a"}, {"from": "human", "value": "b"}], "turn 1 must be"),
    ([{"from": "human", "value": "Text: a"}, ACK,
      {"from": "human", "value": "Which person is it?"}, {"from": "gpt", "value": "[]"}],
     "turn 2 is not 'What describes"),
    ([{"from": "human", "value": "Text: a"}], "at least the text"),
])
def test_malformed_conversations(turns: list[Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pile_ner.parse_conversation({"conversations": turns})


def test_bad_json_line_fails_or_is_skipped(tmp_path: Path) -> None:
    src = tmp_path / "pile.jsonl"
    src.write_text(json.dumps(GOOD[1]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"pile\.jsonl:2: invalid JSON"):
        convert(src, tmp_path / "out.jsonl")
    stats = convert(src, tmp_path / "out.jsonl", skip_bad=True)
    assert (stats.records_read, stats.bad_records, stats.passages_written) == (2, 1, 1)


def test_seed_is_deterministic_and_per_passage(tmp_path: Path) -> None:
    src = write_json(tmp_path / "pile.json", GOOD)
    convert(src, tmp_path / "a.json", seed=7)
    convert(src, tmp_path / "b.json", seed=7)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    first = read_out(tmp_path / "a.json")[0]
    assert first["instruction"].endswith('["date", "city", "machine", "person"]')
    assert json.loads(first["output"]) == json.loads(EXPECTED[0]["output"])  # same content
    # --limit keeps the first records unchanged (the shuffle depends on the passage index only).
    stats = convert(src, tmp_path / "c.json", seed=7, limit=1)
    assert stats.passages_written == 1
    assert read_out(tmp_path / "c.json") == [first]


def test_group_by_text_merges_uniner_rows(tmp_path: Path) -> None:
    rows = [row("Ada met Bob .", ("person", '["Ada", "Bob"]')),
            row("Rome is old .", ("location", '["Rome"]')),
            row("Ada met Bob .", ("location", "[]")),
            row("Ada met Bob .", ("person", '["Bob"]'))]  # a type asked twice: merged
    src = write_json(tmp_path / "uniner.json", rows)
    stats = convert(src, tmp_path / "out.jsonl", group=True, seed=1)
    records = read_out(tmp_path / "out.jsonl")
    assert [r["input"] for r in records] == ["Passage: Ada met Bob .", "Passage: Rome is old ."]
    assert json.loads(records[0]["output"]) == {"person": ["Ada", "Bob"], "location": []}
    assert (stats.merged_records, stats.duplicate_types, stats.duplicate_mentions) == (2, 1, 1)
    assert len(read_out(tmp_path / "out.jsonl")) == 2
    ungrouped = convert(src, tmp_path / "flat.jsonl")
    assert ungrouped.passages_written == 4


def slimer_line(pair_id: str, tag: str, text: str, output: str) -> dict[str, str]:
    return {"doc_question_pairID": pair_id, "tagName": tag, "input": text,
            "instruction": "(not used)", "output": output}


def test_slimer_adapter_regroups_by_row(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "slimer.jsonl", [
        slimer_line("7:1", "city", "Paris is in France .", '["Paris"]'),
        slimer_line("9:0", "person", "Nobody here .", "[]"),
        slimer_line("7:0", "country", "Paris is in France .", '["France"]'),
    ])
    stats = PileNerStats()
    assert read_slimer(src, stats) == [
        RawPassage("Paris is in France .", [("country", '["France"]'), ("city", '["Paris"]')]),
        RawPassage("Nobody here .", [("person", "[]")]),
    ]
    assert stats.records_read == 3
    out_stats = convert(src, tmp_path / "out.jsonl", fmt="slimer", seed=0)
    assert out_stats.passages_written == 2 and out_stats.mentions_written == 2


def test_slimer_malformed_lines(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "slimer.jsonl", [
        slimer_line("7:0", "city", "Paris .", '["Paris"]'),
        slimer_line("7:1", "country", "Another passage .", "[]"),
        slimer_line("no-colon", "city", "x", "[]"),
    ])
    with pytest.raises(DataError, match=r"slimer\.jsonl:2: row 7 carries two different"):
        read_slimer(src, PileNerStats())
    stats = PileNerStats()
    assert len(read_slimer(src, stats, skip_bad=True)) == 1
    assert stats.bad_records == 2


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_json(tmp_path / "pile.json", [*GOOD, BAD_PREFIX])
    out = tmp_path / "out.jsonl"
    assert pile_ner.main(["--src", str(src), "--out", str(out)]) == 2
    assert "record 3" in capsys.readouterr().err
    assert pile_ner.main(["--src", str(src), "--out", str(out), "--skip-bad"]) == 0
    printed = capsys.readouterr().out
    assert "unparseable_answers" in printed and "bad_records" in printed
    assert read_out(out) == EXPECTED


# ---- the real files in ../shared/data --------------------------------------------------------


def test_real_slimer_sample(tmp_path: Path) -> None:
    lines = [json.loads(x) for x in SLIMER.read_text(encoding="utf-8").splitlines()]
    tags_by_text: dict[str, list[str]] = defaultdict(list)
    for line in lines:
        tags_by_text[line["input"]].append(line["tagName"])
    answers = sum(len(json.loads(line["output"])) for line in lines)

    stats = convert(SLIMER, tmp_path / "explorer.jsonl", fmt="slimer")
    records = read_out(tmp_path / "explorer.jsonl")
    assert stats.passages_written == len(records) == len(tags_by_text) == 882
    assert stats.questions == len(lines) == 1320
    assert stats.mentions_read == answers == 1582
    assert stats.unparseable_answers == stats.bad_records == 0
    written = 0
    for record in records:
        text = record["input"].removeprefix("Passage: ")
        output = json.loads(record["output"])
        schema = json.loads(record["instruction"].split("\nSchema: ", 1)[1])
        assert list(output) == schema  # keys in schema order
        assert sorted(schema) == sorted(tags_by_text[text])
        written += sum(len(v) for v in output.values())
    assert written == stats.mentions_written


def test_real_uniner_file_grouped(tmp_path: Path) -> None:
    rows = json.loads(UNINER_AI.read_text(encoding="utf-8"))
    texts = {r["conversations"][0]["value"] for r in rows}
    stats = convert(UNINER_AI, tmp_path / "ai.json", group=True)
    records = read_out(tmp_path / "ai.json")
    assert stats.records_read == len(rows) == 5603
    assert stats.passages_written == len(records) == len(texts) == 430
    assert stats.merged_records == 5603 - 430
    assert stats.mentions_read == 1624
    for record in records:
        assert len(json.loads(record["output"])) == 13  # every AI type, misc not asked


# ---- bad inputs: bytes that are not UTF-8, empty inputs, nothing to train on ------------------

@pytest.mark.parametrize(("name", "content"), [
    ("pile.json", ""), ("pile.json", "[]"), ("pile.json", " [ \n ] \n"), ("pile.jsonl", "\n\n"),
])
def test_empty_input_fails_naming_the_file(tmp_path: Path, name: str, content: str) -> None:
    src = tmp_path / name
    src.write_text(content, encoding="utf-8")
    out = tmp_path / "out.json"
    with pytest.raises(DataError) as err:
        convert(src, out)
    assert str(err.value) == f"{src}: no records: the file is empty or blank"
    assert not out.exists()


def test_input_without_a_passage_to_train_on_fails(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_jsonl(tmp_path / "pile.jsonl", [GOOD[2], BAD_PREFIX])  # no type; malformed
    out = tmp_path / "out.json"
    assert pile_ner.main(["--src", str(src), "--out", str(out), "--skip-bad"]) == 2
    assert capsys.readouterr().err == (
        f"error: {src}: no passage to train on (2 records, 1 skipped as bad, 1 passages "
        f"without a type)\n")
    assert not out.exists()


def test_bytes_that_are_not_utf8_name_file_and_line(tmp_path: Path) -> None:
    good = json.dumps(GOOD[1]).encode()
    lines = tmp_path / "pile.jsonl"
    lines.write_bytes(good + b"\n" + good.replace(b"Paris", b"P\xe4ris") + b"\n")
    with pytest.raises(DataError) as err:
        convert(lines, tmp_path / "out.jsonl")
    # Column 55: '{"conversations": [' (19) + '{"from": "human", ' (18) + '"value": "' (10)
    # + 'Text: ' (6) + 'P' (1), then the Latin-1 "ä".
    assert str(err.value) == (
        f"{lines}:2: not UTF-8: byte 0xe4 at column 55 (invalid continuation byte); save the "
        f"file as UTF-8")
    array = tmp_path / "pile.json"
    array.write_bytes(b"[" + good + b",\n" + good.replace(b"Paris", b"P\xe4ris") + b"]")
    with pytest.raises(DataError, match=rf"^{re.escape(str(array))}:2: not UTF-8: byte 0xe4"):
        convert(array, tmp_path / "out.json")


def test_bom_is_dropped(tmp_path: Path) -> None:
    for name in ("pile.json", "pile.jsonl"):
        src = tmp_path / name
        body = json.dumps([GOOD[1]]) if name.endswith(".json") else json.dumps(GOOD[1]) + "\n"
        src.write_bytes(b"\xef\xbb\xbf" + body.encode())
        stats = convert(src, tmp_path / "out.json")
        assert (stats.records_read, stats.passages_written) == (1, 1)
        assert read_out(tmp_path / "out.json") == EXPECTED[1:]


# ---- --prompt-format authors: the authors' explorer layout (docs/fidelity.md) ------------------

AUTHORS_ROWS = [
    row("  Ada Lovelace met Ada Lovelace 's friend in London .\n",  # whitespace around the text
        ("person", '["Ada Lovelace", "Ada Lovelace"]'),  # a repeated mention: kept
        ("city", '["London"]'),
        ("writer's work", "no works here"),  # unparseable: []; the name repr'd in double quotes
        ("city", "[]"),  # asked again: listed twice; the later answer wins, the key stays 2nd
        ("date", '"none"')),  # JSON but not a list: written as parsed
    row("Q:\n\nHow do I install Python on Windows ?\n\n",  # a Pile Q&A passage
        ("software", '["Python", "Python", ""]'), ("os", '["Windows"]')),
    row("Nothing to ask about ."),  # no question: skipped in both formats
]
AUTHORS_PREFIX = "Act as a named entity extractor. Read the passage and pull out every named " \
    "entity in it whose type is one of the types listed in the schema."
AUTHORS_EXPECTED = [  # seed 42; schema order = shuffled_schema(asked types, 42, passage index)
    {"instruction": AUTHORS_PREFIX + "Schema:[\"writer's work\", 'city', 'date', 'city', "
                    "'person']. Passage: Ada Lovelace met Ada Lovelace 's friend in London .",
     "input": "",
     "output": '{"person": ["Ada Lovelace", "Ada Lovelace"], "city": [], "writer\'s work": [], '
               '"date": "none"}'},
    {"instruction": AUTHORS_PREFIX + "Schema:['os', 'software']. Passage: How do I install "
                    "Python on Windows ?",
     "input": "",
     "output": '{"software": ["Python", "Python", ""], "os": ["Windows"]}'},
]


def test_authors_format_exact_records_and_stats(tmp_path: Path) -> None:
    src = write_json(tmp_path / "pile.json", AUTHORS_ROWS)
    stats = convert(src, tmp_path / "out.json", prompt_format="authors")
    assert read_out(tmp_path / "out.json") == AUTHORS_EXPECTED
    assert stats == PileNerStats(
        records_read=3, passages_written=2, passages_without_type=1, questions=7,
        duplicate_types=1, unparseable_answers=1, mentions_read=7, replaced_mentions=1,
        odd_answers_kept=1, passages_trimmed=2)
    assert stats.mentions_written == 6  # 2 + 0 (city's ["London"] replaced) + 3 + 1
    assert pile_ner.shuffled_schema(["software", "os"], 42, 1) == ["os", "software"]


def test_default_format_of_the_same_rows_is_unchanged(tmp_path: Path) -> None:
    src = write_json(tmp_path / "pile.json", AUTHORS_ROWS)
    stats = convert(src, tmp_path / "out.json")
    first = read_out(tmp_path / "out.json")[0]
    assert first["input"] == "Passage:   Ada Lovelace met Ada Lovelace 's friend in London .\n"
    assert json.loads(first["output"]) == {"person": ["Ada Lovelace"], "city": ["London"],
                                           "writer's work": [], "date": []}
    assert (stats.duplicate_types, stats.duplicate_mentions, stats.empty_mentions,
            stats.unparseable_answers, stats.replaced_mentions, stats.passages_trimmed) == (
        1, 2, 1, 2, 0, 0)


def test_default_sample_data_is_byte_identical_to_prompt_version_1(tmp_path: Path) -> None:
    """The default explorer data of the project's Pile-NER sample, as samner-prompts/1 wrote it
    before the authors' format existed: a change here needs a new PROMPT_VERSION."""
    import hashlib

    from core.prompts import PROMPT_VERSION

    sample = Path(__file__).resolve().parents[1] / "data_prep" / "samples" / "pile_ner_sample.json"
    convert(sample, tmp_path / "explorer.json")
    assert PROMPT_VERSION == "samner-prompts/1"
    assert hashlib.sha256((tmp_path / "explorer.json").read_bytes()).hexdigest() == (
        "a9e6ee903e9ff2665ce38a940df1bbc19bdc9a403384742e0e86e88de5c478c5")


@pytest.mark.parametrize(("text", "kept"), [
    ("Paris .", "Paris ."),
    (" \n Paris .\t", "Paris ."),
    ("Q:\n\nHow ?", "How ?"),
    ("q:  \n \n  How ?", "How ?"),  # any case; whitespace up to the last newline, then stripped
    ("Q: no newline after it", "Q: no newline after it"),
    ("Q:\n\nText: the rest", "the rest"),  # a "Text:" right after the Q: line goes too
    ("Q:\n\n  Text: the rest", "Text: the rest"),  # not after whitespace that is not a newline
    ("Text: twice", "Text: twice"),  # only one "Text: " is removed without a Q: line
    ("Why Q:\n?", "Why Q:\n?"),
])
def test_authors_passage_text(text: str, kept: str) -> None:
    assert pile_ner.authors_passage_text(text) == kept


def test_authors_format_cli_and_unknown_format(tmp_path: Path) -> None:
    src = write_json(tmp_path / "pile.json", AUTHORS_ROWS)
    out = tmp_path / "out.jsonl"
    assert pile_ner.main(["--src", str(src), "--out", str(out), "--prompt-format", "authors"]) == 0
    assert read_out(out) == AUTHORS_EXPECTED
    with pytest.raises(ValueError, match="unknown prompt format 'gnerish'"):
        convert(src, out, prompt_format="gnerish")
