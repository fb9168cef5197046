"""Our inference templates must encode exactly like LlamaFactory's training templates."""

from __future__ import annotations

import pytest

from core.prompt_formats import anchor_content, type_chunks
from core.templates import get_template, prompt_text, prompt_token_ids, user_content
from tests.conftest import run_json

CONTENT = user_content('Extract entities.\nSchema: ["band", "song"]',
                       "Passage: The Clash ' s London Calling")


def test_alpaca_text_layout():
    text = prompt_text("alpaca", "do X")
    assert text.startswith("Below is an instruction that describes a task.")
    assert text.endswith("### Instruction:\ndo X\n\n### Response:\n")


def test_llama3_marks_bos_and_ends_at_assistant_header():
    text = prompt_text("llama3", "hi", bos="<BOS>")
    assert text == ("<BOS><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\n")


IEPILE_SYSTEM = ("Below is an instruction that describes a task. Write a response that "
                 "appropriately completes the request.")


def test_iepile_pieces_are_bos_system_sep_prompt():
    """IEPile's alpaca (src/datamodule/template.py): turn 0 = bos + prefix + sep + query."""
    assert get_template("iepile").pieces("Q") == [
        None, IEPILE_SYSTEM, "\n\n", "### Instruction:\nQ\n\n### Response:\n"]
    assert prompt_text("iepile", "Q", bos="<s>") == (
        "<s>" + IEPILE_SYSTEM + "\n\n### Instruction:\nQ\n\n### Response:\n")


class PieceTokenizer:
    """Records each encode call: one id per piece, so ids show where the pieces were cut."""

    def __init__(self, bos: int | None) -> None:
        self.bos_token_id, self.pieces = bos, []

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        assert not add_special_tokens
        self.pieces.append(text)
        return [1000 + len(self.pieces)]


def test_iepile_encodes_each_piece_separately_with_bos_when_the_tokenizer_has_one():
    with_bos = PieceTokenizer(bos=7)
    assert prompt_token_ids(with_bos, "iepile", "Q") == [7, 1001, 1002, 1003]
    assert with_bos.pieces == [IEPILE_SYSTEM, "\n\n", "### Instruction:\nQ\n\n### Response:\n"]
    assert prompt_token_ids(PieceTokenizer(bos=None), "iepile", "Q") == [1001, 1002, 1003]
    # LlamaFactory's alpaca: no BOS, system and "\n\n" one piece
    lf = PieceTokenizer(bos=7)
    assert prompt_token_ids(lf, "alpaca", "Q") == [1001, 1002]
    assert lf.pieces[0] == IEPILE_SYSTEM + "\n\n"


@pytest.mark.parametrize(("n", "split_num", "sizes"), [
    (13, 6, [6, 7]),      # CrossNER ai: the remainder 1 < 3 joins the last chunk
    (8, 6, [8]),          # politics: remainder 2 < 3
    (11, 6, [6, 5]),      # literature: remainder 5 >= 3 is a chunk of its own
    (12, 6, [6, 6]),      # music
    (16, 6, [6, 6, 4]),   # science
    (9, 6, [6, 3]),       # remainder exactly 3
    (6, 6, [6]),
    (5, 6, [5]),          # fewer than split_num: one query
    (13, None, [13]),     # the authors: no split
    (5, 1, [1, 1, 1, 1, 1]),
])
def test_type_chunks_follow_iepiles_split(n, split_num, sizes):
    types = [f"t{i}" for i in range(n)]
    chunks = type_chunks(types, split_num)
    assert [len(c) for c in chunks] == sizes
    assert [t for c in chunks for t in c] == types  # order kept, nothing lost


def test_anchor_query_is_iepiles_json_string():
    """IEPile's multischema_construct_instruction: json.dumps, ensure_ascii=False, default
    separators, keys instruction/schema/input in that order."""
    assert anchor_content("Do NER.", ["person", "lieu"], "Zoë est à Paris .") == (
        '{"instruction": "Do NER.", "schema": ["person", "lieu"], '
        '"input": "Zoë est à Paris ."}')


def test_unknown_template_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown template 'llama2'"):
        get_template("llama2")


def test_user_content_joins_like_llamafactory_alpaca():
    assert user_content("a", "b") == "a\nb"
    assert user_content("a") == "a"


@pytest.mark.slow
def test_token_ids_match_llamafactory(tiny_model, venv_python):
    """In the training env: LlamaFactory's encoder vs ours, same tokenizer, every template."""
    script = f"""
import json
from transformers import AutoTokenizer
from llamafactory.data.template import TEMPLATES as LF
from core.templates import TEMPLATES, prompt_token_ids
tok = AutoTokenizer.from_pretrained({str(tiny_model)!r})
messages = [{{"role": "user", "content": {CONTENT!r}}}, {{"role": "assistant", "content": "x"}}]
print(json.dumps({{name: [LF[name].encode_oneturn(tok, messages)[0],
                          prompt_token_ids(tok, name, {CONTENT!r})]
                   for name in TEMPLATES if name in LF}}))  # iepile: tested below
"""
    result = run_json(venv_python("train"), script)
    assert sorted(result) == ["alpaca", "llama3", "qwen"]
    for name, (theirs, ours) in result.items():
        assert ours == theirs, name


IEPILE_SCRIPT = """
import json, sys
from transformers import AutoTokenizer
from eval.config import IEPileConfig
from core.prompt_formats import anchor_content
from core.templates import prompt_token_ids
tok = AutoTokenizer.from_pretrained(sys.stdin.read().strip())
query = anchor_content(IEPileConfig().instruction, ["person", "location", "organisation"],
                       "Ada Lovelace was born in London .")
enc = lambda text: tok.encode(text, add_special_tokens=False)
# IEPile's encoder, restated: bos + system + sep + prompt, each piece encoded on its own
system = ("Below is an instruction that describes a task. Write a response that "
          "appropriately completes the request.")
restated = [tok.bos_token_id] + enc(system) + enc("\\n\\n") + enc(
    "### Instruction:\\n" + query + "\\n\\n### Response:\\n")
print(json.dumps({"bos": tok.bos_token_id, "restated": restated,
                  "ours": prompt_token_ids(tok, "iepile", query),
                  "lf_alpaca": prompt_token_ids(tok, "alpaca", query)}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("which", ["tiny", "llama3"])
def test_iepile_ids_match_iepiles_encoding_rule(which, request, venv_python):
    """On the tiny CPU model's tokenizer and on a real Llama-3 tokenizer (both have a BOS)."""
    folder = request.getfixturevalue("tiny_model" if which == "tiny" else "llama3_tokenizer")
    result = run_json(venv_python("train"), IEPILE_SCRIPT, stdin=str(folder))
    assert result["bos"] is not None
    assert result["ours"] == result["restated"]
    assert result["ours"][0] == result["bos"]
    if which == "llama3":
        assert result["bos"] == 128000
        # LlamaFactory's alpaca lacks the BOS and cuts "request." + "\\n\\n" as one piece:
        # different ids after the BOS too, which is why the anchor needs IEPile's own encoding
        assert result["lf_alpaca"] != result["ours"][1:]
