"""Chat templates for inference, token-for-token the same as LlamaFactory's training templates.

A LoRA adapter only works when inference wraps the prompt exactly as training did. The inference
environment (vLLM) does not install LlamaFactory, so the three templates this project uses are
restated here and ``tests/test_templates.py`` checks them against LlamaFactory's own encoder.

LlamaFactory encodes the prefix, the system turn and the user turn as separate pieces and
concatenates their token ids; :func:`prompt_token_ids` does the same, so token boundaries match
too. The result is passed to vLLM as token ids, which also avoids a second BOS.

Pitfall: the public IEPile LoRA (the anchor) was trained with ``alpaca``, not ``llama3``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class Tokenizer(Protocol):
    bos_token_id: int | None

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    user: str  # contains "{content}"
    system: str = "{content}"
    default_system: str = ""
    bos_prefix: bool = False
    stop: tuple[str, ...] = ()  # stop strings besides the tokenizer's EOS

    def pieces(self, content: str, system: str | None = None) -> list[str | None]:
        """Prompt pieces in LlamaFactory's order; ``None`` stands for the BOS token."""
        out: list[str | None] = [None] if self.bos_prefix else []
        system = system if system is not None else self.default_system
        if system:
            out.append(self.system.replace("{content}", system))
        out.append(self.user.replace("{content}", content))
        return out


TEMPLATES: dict[str, ChatTemplate] = {
    t.name: t
    for t in (
        ChatTemplate(
            name="alpaca",
            user="### Instruction:\n{content}\n\n### Response:\n",
            default_system=(
                "Below is an instruction that describes a task. "
                "Write a response that appropriately completes the request.\n\n"
            ),
        ),
        ChatTemplate(
            name="llama3",
            user=(
                "<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n"
            ),
            system="<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
            bos_prefix=True,
            stop=("<|eot_id|>", "<|eom_id|>"),
        ),
        ChatTemplate(
            name="qwen",
            user="<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n",
            system="<|im_start|>system\n{content}<|im_end|>\n",
            default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
            stop=("<|im_end|>",),
        ),
    )
}


def get_template(name: str) -> ChatTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown template {name!r}; known: {sorted(TEMPLATES)}") from None


def user_content(instruction: str, input_text: str = "") -> str:
    """LlamaFactory's alpaca-format user turn: instruction and input joined by a newline."""
    return f"{instruction}\n{input_text}" if input_text else instruction


def prompt_token_ids(tokenizer: Any, template: str | ChatTemplate, content: str,
                     system: str | None = None) -> list[int]:
    """Token ids of a one-turn prompt, ending where the model's answer starts."""
    tmpl = get_template(template) if isinstance(template, str) else template
    ids: list[int] = []
    for piece in tmpl.pieces(content, system):
        if piece is None:
            if tokenizer.bos_token_id is not None:
                ids.append(tokenizer.bos_token_id)
        elif piece:
            ids += tokenizer.encode(piece, add_special_tokens=False)
    return ids


def prompt_text(template: str | ChatTemplate, content: str, system: str | None = None,
                bos: str = "") -> str:
    """The same prompt as text, for logs and artifacts (``bos`` stands in for the BOS token)."""
    tmpl = get_template(template) if isinstance(template, str) else template
    return "".join(bos if piece is None else piece for piece in tmpl.pieces(content, system))
