"""What stages and backends exchange: a request for one answer, the completion that answers it.

Stages build :class:`Request` s and parse :class:`Completion` s; a :class:`Backend` (vLLM or
the fake one, :mod:`eval.engine`) turns one into the other. Neither side needs the other's
module: the types live here, on the ground floor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Request:
    key: str  # unique within a stage; its format is private to the stage that makes it
    prompt_ids: list[int]
    # the asking role (an extractor's name, "classifier" or "direct_classifier": the LoRA of
    # that role in config.adapters_by_role(), none for a base-model extractor); None = calibrator
    adapter: str | None
    max_tokens: int
    stop: tuple[str, ...] = ()
    choices: tuple[str, ...] | None = None  # structured output: answer one of these exactly
    grammar: str | None = None  # structured output: an EBNF grammar the answer must follow
    # structured output: a JSON schema (as canonical JSON text, so the request stays hashable)
    json_schema: str | None = None
    sentence: str = ""  # the sentence id the answer belongs to (saved records carry it)


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: str  # "stop" or "length" (cut at max_tokens)


class Backend(Protocol):
    tokenizer: Any

    def generate(self, requests: Sequence[Request]) -> list[Completion]: ...

    def stats(self) -> dict[str, Any]: ...

    def identity(self) -> dict[str, Any]:
        """The base model's weights by content (or hub id and revision)."""
        ...
