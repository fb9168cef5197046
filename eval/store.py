"""Per-stage artifact files that make a run resumable: nothing saved is ever recomputed.

Each LLM stage of a domain owns one JSONL file (``<stage>.jsonl``) of records keyed by request
key: prompt, raw output, parsed result, parse status, token counts. Results are appended one
chunk at a time and fsynced; a run killed mid-chunk leaves at most a torn last line, which is
ignored (and cut off) on the next start, so only the unfinished chunk is generated again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from data_prep.io import dumps_line
from eval.engine import Backend, Completion, Request


class StageStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        self.torn_lines = 0
        if path.exists():
            self._load()

    def _load(self) -> None:
        good_bytes = 0
        with open(self.path, "rb") as handle:
            for raw in handle:
                try:
                    record = json.loads(raw)
                except json.JSONDecodeError:
                    self.torn_lines += 1
                    break  # a torn tail: everything after it is suspect
                if not raw.endswith(b"\n"):
                    self.torn_lines += 1
                    break
                self.records[record["key"]] = record
                good_bytes += len(raw)
        if self.torn_lines:
            with open(self.path, "r+b") as handle:
                handle.truncate(good_bytes)

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            for record in records:
                handle.write(dumps_line(record))
                self.records[record["key"]] = record
            handle.flush()
            os.fsync(handle.fileno())


ParseFn = Callable[[Request, Completion], tuple[Any, str]]


def run_stage(
    store: StageStore,
    requests: Sequence[Request],
    backend: Backend,
    parse: ParseFn,
    describe: Callable[[Request], str],
    chunk_size: int,
    label: str,
) -> dict[str, dict[str, Any]]:
    """Generate what ``store`` lacks, in chunks, saving each chunk; returns records by key.

    ``parse`` turns a completion into (parsed value, status); ``describe`` renders a request's
    prompt as text for the artifact (prompts are kept so every sample can be inspected).
    """
    pending = [r for r in requests if r.key not in store.records]
    with tqdm(total=len(requests), initial=len(requests) - len(pending), desc=label,
              unit="req", disable=None) as bar:
        for start in range(0, len(pending), chunk_size):
            chunk = pending[start:start + chunk_size]
            completions = backend.generate(chunk)
            records = []
            for request, completion in zip(chunk, completions, strict=True):
                parsed, status = parse(request, completion)
                records.append({
                    "key": request.key, "id": request.key.split("#", 1)[0],
                    "adapter": request.adapter, "prompt": describe(request),
                    "raw": completion.text, "parsed": parsed, "status": status,
                    "finish_reason": completion.finish_reason,
                    "prompt_tokens": completion.prompt_tokens,
                    "output_tokens": completion.output_tokens,
                })
            store.append(records)
            bar.update(len(chunk))
    return {r.key: store.records[r.key] for r in requests}
