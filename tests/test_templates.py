"""Our inference templates must encode exactly like LlamaFactory's training templates."""

from __future__ import annotations

import pytest

from eval.templates import get_template, prompt_text, user_content
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
from eval.templates import TEMPLATES, prompt_token_ids
tok = AutoTokenizer.from_pretrained({str(tiny_model)!r})
messages = [{{"role": "user", "content": {CONTENT!r}}}, {{"role": "assistant", "content": "x"}}]
print(json.dumps({{name: [LF[name].encode_oneturn(tok, messages)[0],
                          prompt_token_ids(tok, name, {CONTENT!r})] for name in TEMPLATES}}))
"""
    result = run_json(venv_python("train"), script)
    assert sorted(result) == ["alpaca", "llama3", "qwen"]
    for name, (theirs, ours) in result.items():
        assert ours == theirs, name
