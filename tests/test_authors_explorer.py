"""The authors' explorer layout as a switch: prompt format ``authors_explorer`` at inference,
``data_prep.pile_ner --prompt-format authors`` (``samner_explorer_authors``) in training, one
builder (core.prompts) for both; the same user turn, token for token, through LlamaFactory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.messages import Completion, Request
from core.prompt_formats import PROMPT_FORMATS
from core.prompts import AUTHORS_EXPLORER_PREAMBLE
from core.records import Sentence
from core.templates import user_content
from data_prep import pile_ner, train_data
from eval.config import ConfigError, load_config
from eval.discovery import extractor_requests, parse_extraction
from tests.conftest import REPO, run_json

AUTHORS_CONFIG = REPO / "recipes" / "infer" / "llama3-8b-authors.yaml"
SAMPLE = REPO / "data_prep" / "samples" / "pile_ner_sample.json"
# A hand-written passage with what the sample lacks: surrounding whitespace, a Pile Q&A opening,
# a type asked twice, a type name holding an apostrophe, non-ASCII text.
ODD_ROW = {"conversations": [
    {"from": "human", "value": "Text: Q:\n\n  Zoë asked about the Hitchhiker's Guide in Köln ?\n"},
    {"from": "gpt", "value": "I've read this text."},
    {"from": "human", "value": "What describes writer's work in the text?"},
    {"from": "gpt", "value": "[\"Hitchhiker's Guide\"]"},
    {"from": "human", "value": "What describes city in the text?"},
    {"from": "gpt", "value": "[\"Köln\"]"},
    {"from": "human", "value": "What describes person in the text?"},
    {"from": "gpt", "value": "[\"Zoë\", \"Zoë\"]"},
    {"from": "human", "value": "What describes city in the text?"},
    {"from": "gpt", "value": "[\"Köln\"]"},
]}
N_SAMPLE = 3  # sample passages in the token test, besides ODD_ROW


def cases(rows: list[dict[str, Any]], seed: int = pile_ner.DEFAULT_SEED) -> list[dict[str, Any]]:
    """Per row: the types and text inference is given for it, derived WITHOUT the record: the
    asked types in the passage's seeded order and the passage as the authors keep it."""
    out = []
    for index, row in enumerate(rows):
        passage = pile_ner.parse_conversation(row)
        out.append({"types": pile_ner.shuffled_schema([t for t, _ in passage.qa], seed, index),
                    "text": pile_ner.authors_passage_text(passage.text)})
    return out


def rows_for_test() -> list[dict[str, Any]]:
    sample = json.loads(SAMPLE.read_text(encoding="utf-8"))[:N_SAMPLE]
    return [*sample, ODD_ROW]


def test_config_selects_the_authors_format_and_names_it_when_unknown() -> None:
    config = load_config(AUTHORS_CONFIG, ["engine.backend=fake"])
    assert config.extractors["explorer"].prompt == "authors_explorer"
    assert config.extractors["explorer"].path == "saves/llama3-8b/lora/explorer-authors"
    assert "authors_explorer" in PROMPT_FORMATS
    with pytest.raises(ConfigError, match=r"extractors\.explorer\.prompt: unknown 'authorz' "
                                          r"\(known: .*authors_explorer"):
        load_config(AUTHORS_CONFIG, ["engine.backend=fake", "extractors.explorer.prompt=authorz"])


def test_inference_content_is_the_sft_user_turn(tmp_path: Path) -> None:
    """String level: LlamaFactory's alpaca user turn of each SFT record (instruction, then
    "\\n" + input only when the input is non-empty: converter.py AlpacaDatasetConverter) equals
    what eval.discovery asks with for the same types and text."""
    rows = rows_for_test()
    src = tmp_path / "pile.json"
    src.write_text(json.dumps(rows), encoding="utf-8")
    pile_ner.convert(src, tmp_path / "authors.json", prompt_format="authors")
    records = json.loads((tmp_path / "authors.json").read_text(encoding="utf-8"))
    config = load_config(AUTHORS_CONFIG, ["engine.backend=fake"])
    for record, case in zip(records, cases(rows), strict=True):
        assert record["input"] == ""
        lf_user_turn = "\n".join(x for x in (record["instruction"], record["input"]) if x)
        [(asked, content)] = PROMPT_FORMATS["authors_explorer"](case["types"], case["text"],
                                                                 config)
        assert asked == case["types"]
        assert content == lf_user_turn == user_content(record["instruction"], record["input"])
    assert records[-1]["instruction"] == (
        AUTHORS_EXPLORER_PREAMBLE + "Schema:['city', 'city', 'person', \"writer's work\"]. "
        "Passage: Zoë asked about the Hitchhiker's Guide in Köln ?")
    assert records[-1]["output"] == (
        '{"writer\'s work": ["Hitchhiker\'s Guide"], "city": ["Köln"], "person": ["Zoë", "Zoë"]}')


class Tokens:
    """One id per character: enough to see where the prompt pieces go."""

    bos_token_id = 1

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]


def test_requests_use_the_authors_layout_under_llama3() -> None:
    config = load_config(AUTHORS_CONFIG, ["engine.backend=fake"])
    sentence = Sentence("s1", "music", ["The", "Clash", "played", "London", "."])
    [request] = extractor_requests("explorer", [sentence], ["band", "city"], config, Tokens())
    text = "".join(chr(i) for i in request.prompt_ids[1:])
    assert request.prompt_ids[0] == Tokens.bos_token_id
    assert text == ("<|start_header_id|>user<|end_header_id|>\n\n" + AUTHORS_EXPLORER_PREAMBLE
                    + "Schema:['band', 'city']. Passage: The Clash played London .<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert request.key == "s1#0" and request.adapter == "explorer"


def test_authors_answer_goes_through_the_usual_parse() -> None:
    """Keys in question order and repeated mentions, as the authors' explorer learned to answer:
    the {type: [mentions]} parse takes them (mentions de-duplicated, order kept)."""
    parse = parse_extraction(["band", "city"])
    request = Request("s1#0", [1], "explorer", 64)
    answer = '{"city": ["London", "London"], "band": ["The Clash"], "genre": ["punk"]}'
    parsed, status = parse(request, Completion(answer, 1, 20, "stop"))
    assert parsed["mentions"] == ["London", "The Clash", "punk"]
    assert parsed["by_type"] == {"city": ["London"], "band": ["The Clash"], "genre": ["punk"]}
    assert parsed["unknown_types"] == ["genre"] and parsed["off_schema_mentions"] == 1
    assert status == "ok"


TOKEN_SCRIPT = """
import json, sys
from datasets import load_dataset
from transformers import AutoTokenizer
from llamafactory.data.converter import get_dataset_converter
from llamafactory.data.parser import get_dataset_list
from llamafactory.data.template import get_template_and_fix_tokenizer
from llamafactory.hparams import DataArguments
from core.records import Sentence
from eval.config import load_config
from eval.discovery import extractor_requests

args = json.loads(sys.stdin.read())
name = "samner_explorer_authors"
config = load_config(args["config"], ["engine.backend=fake"])
tok = AutoTokenizer.from_pretrained(args["tokenizer"])
data_args = DataArguments(template=config.extractors["explorer"].template,
                          dataset_dir=args["dataset_dir"], dataset=name)
attr = get_dataset_list([name], args["dataset_dir"])[0]
rows = load_dataset("json", data_files=args["dataset_dir"] + "/" + attr.dataset_name,
                    split="train", cache_dir=args["cache"])
convert = get_dataset_converter(attr.formatting, attr, data_args)
template = get_template_and_fix_tokenizer(tok, data_args)
out = []
for row, case in zip(rows, args["cases"], strict=True):
    example = convert(row)
    messages = example["_prompt"] + example["_response"]
    lf = template.encode_multiturn(tok, messages, example["_system"] or None,
                                   example["_tools"] or None)[0][0]
    sentence = Sentence("s", "x", case["text"].split(" "))
    [request] = extractor_requests("explorer", [sentence], case["types"], config, tok)
    out.append({"lf": lf, "ours": request.prompt_ids, "user": example["_prompt"][0]["content"],
                "input": row["input"]})
print(json.dumps({"bos": tok.bos_token_id, "pairs": out}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("which", ["tiny", "llama3"])
def test_sft_prompt_and_inference_prompt_are_the_same_tokens(which, request, tmp_path,
                                                              venv_python):
    """In the train env: `make data-train`'s samner_explorer_authors records, read as
    LlamaFactory reads them (dataset_info.json entry, datasets' JSON loader, its alpaca
    converter, its llama3 template) vs eval.discovery's requests of the authors' config for
    the same types and text: identical token ids, on the tiny model's tokenizer and on a real
    Llama-3 tokenizer."""
    folder = request.getfixturevalue("tiny_model" if which == "tiny" else "llama3_tokenizer")
    rows = rows_for_test()
    src = tmp_path / "pile.json"
    src.write_text(json.dumps(rows), encoding="utf-8")
    out = tmp_path / "train"
    train_data.build(out, pile_ner_file=src, roles=("explorer_authors",))
    stdin = json.dumps({"config": str(AUTHORS_CONFIG), "tokenizer": str(folder),
                        "dataset_dir": str(out), "cache": str(tmp_path / "hf-datasets"),
                        "cases": cases(rows)})
    result = run_json(venv_python("train"), TOKEN_SCRIPT, stdin=stdin)
    assert len(result["pairs"]) == len(rows)
    for pair in result["pairs"]:
        assert pair["input"] == "" and "\nPassage" not in pair["user"]  # no "\n" + empty input
        assert pair["ours"] == pair["lf"]
        assert pair["ours"][0] == result["bos"]
    if which == "llama3":
        assert result["bos"] == 128000
