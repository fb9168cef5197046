"""Build a tiny Llama-3-shaped model locally: no download, seconds on a CPU.

It stands in for Llama3-8B-Instruct in tests and CPU checks of the plumbing (LlamaFactory LoRA
training, vLLM serving with LoRA). Its outputs are noise; it proves mechanics, never quality.

* tokenizer: byte-level BPE trained on local text (``tools/tiny_corpus.txt``, a frozen snapshot of
  the project's mappings and prompts, plus any ``--corpus`` files), with Llama-3's special tokens
  and a Llama-3 chat template, so LlamaFactory's ``llama3`` template and vLLM's chat formatting
  both apply unchanged;
* model: ``LlamaForCausalLM``, 2 layers, hidden 64, 2 heads of head_dim 32 (vLLM's CPU attention
  supports head sizes 32 and up, not 16), random weights from a fixed seed.

    .venv/train/bin/python -m tools.tiny_model --out models/tiny-llama [--corpus FILE ...]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

from core.cli import make_parser

REPO = Path(__file__).resolve().parents[1]
SPECIAL_TOKENS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eot_id|>", "<|eom_id|>",
]
# Same rendering as Llama-3-Instruct's template (BOS, header-wrapped roles, <|eot_id|> after each).
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)


# Frozen text to learn BPE merges from: a snapshot (2026-12-03) of the project's mappings/*.yaml
# and prompt module. Frozen so that editing definitions or moving a module does not retrain the
# tokenizer, and with it every prediction of the tiny model that tests pin.
CORPUS = Path(__file__).with_name("tiny_corpus.txt")


def corpus_lines(extra: list[Path]) -> Iterator[str]:
    """Text to learn BPE merges from: the frozen project text, then any extra files."""
    yield from CORPUS.read_text(encoding="utf-8").splitlines()
    for path in extra:
        with open(path, encoding="utf-8") as handle:
            yield from handle


def build(out: Path, corpus: list[Path], vocab_size: int = 2048, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(corpus_lines(corpus), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
        pad_token="<|end_of_text|>", model_max_length=2048,
    )
    tokenizer.chat_template = CHAT_TEMPLATE

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, head_dim=32, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False, torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id, do_sample=False,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "samner_tiny.json").write_text(json.dumps({"seed": seed, "vocab_size": len(tokenizer)}))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, nargs="*", default=[], help="extra text files")
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = build(args.out, args.corpus, args.vocab_size, args.seed)
    print(f"tiny model -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
