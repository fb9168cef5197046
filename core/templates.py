"""Chat templates for inference, token for token what the adapters' training encoders produced.

A LoRA adapter only works when inference wraps the prompt exactly as training did. The inference
environment (vLLM) installs neither LlamaFactory nor IEPile's code, so the templates this project
uses are restated here and ``tests/test_templates.py`` checks them token for token.

* ``alpaca``, ``llama3``, ``qwen``: LlamaFactory's (our explorer, classifier and CPU adapters).
  LlamaFactory encodes the prefix, the system turn and the user turn as separate pieces and
  concatenates their token ids.
* ``iepile``: IEPile's own ``alpaca`` (``src/datamodule/template.py``), which trained the public
  IEPile LoRA (the anchor): BOS + system + sep ``"\n\n"`` +
  ``"### Instruction:\n{query}\n\n### Response:\n"``, each piece encoded separately. It differs from
  LlamaFactory's ``alpaca`` by the BOS token and by one token boundary (LlamaFactory encodes
  system and ``"\n\n"`` as one piece).

:func:`prompt_token_ids` encodes piece by piece as those encoders do, so token boundaries match
too. The result is passed to vLLM as token ids, which also avoids a second BOS.

Pitfall: the authors asked the IEPile LoRA with ``llama3``; it was trained with IEPile's alpaca.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from core.registry import Registry


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
    sep: str = ""  # encoded as a piece of its own after the system turn (IEPile's ``sep``)
    stop: tuple[str, ...] = ()  # stop strings besides the tokenizer's EOS

    def pieces(self, content: str, system: str | None = None) -> list[str | None]:
        """Prompt pieces in the training encoder's order; ``None`` stands for the BOS token."""
        out: list[str | None] = [None] if self.bos_prefix else []
        system = system if system is not None else self.default_system
        if system:
            out.append(self.system.replace("{content}", system))
            if self.sep:
                out.append(self.sep)
        out.append(self.user.replace("{content}", content))
        return out


TEMPLATES: Registry[ChatTemplate] = Registry("chat template")
for _template in (
    ChatTemplate(
        name="alpaca",
        user="### Instruction:\n{content}\n\n### Response:\n",
        default_system=(
            "Below is an instruction that describes a task. "
            "Write a response that appropriately completes the request.\n\n"
        ),
    ),
    ChatTemplate(
        name="iepile",
        user="### Instruction:\n{content}\n\n### Response:\n",
        default_system=(
            "Below is an instruction that describes a task. "
            "Write a response that appropriately completes the request."
        ),
        bos_prefix=True,
        sep="\n\n",
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
):
    TEMPLATES.add(_template.name, _template)

# The `qwen` turns (ChatML) as a Hugging Face chat template, without the default system prompt:
# written into converted checkpoints whose GGUF carries no template (tools/gguf_convert.py).
CHATML_JINJA = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


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
