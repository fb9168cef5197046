"""Per-stage artifact files that make a run resumable: nothing saved is ever recomputed.

Each LLM stage of a domain owns one JSONL file (``<stage>.jsonl``) of records keyed by request
key: prompt, raw output, parsed result, parse status, token counts. Results are appended one
chunk at a time and fsynced; a run killed mid-chunk leaves at most a torn last line, which is
ignored (and cut off) on the next start, so only the unfinished chunk is generated again.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class StageCall:
    """One LLM stage of one domain: its requests, where their records go, how to parse them.
    ``describe`` renders a request's prompt as text for the artifact (every sample stays
    inspectable)."""

    store: StageStore
    requests: Sequence[Request]
    parse: ParseFn
    describe: Callable[[Request], str]


def run_stages(calls: Sequence[StageCall], backend: Backend, chunk_size: int, label: str
               ) -> list[dict[str, dict[str, Any]]]:
    """Generate what the calls' stores lack as ONE request stream (stages and domains share
    the engine's batches), ``chunk_size`` requests per saved chunk; returns each call's records
    by key. ``parse`` turns a completion into (parsed value, status)."""
    pending = [(i, r) for i, call in enumerate(calls) for r in call.requests
               if r.key not in call.store.records]
    total = sum(len(call.requests) for call in calls)
    with tqdm(total=total, initial=total - len(pending), desc=label, unit="req",
              disable=None) as bar:
        for start in range(0, len(pending), chunk_size):
            chunk = pending[start:start + chunk_size]
            completions = backend.generate([request for _, request in chunk])
            records: dict[int, list[dict[str, Any]]] = defaultdict(list)
            for (i, request), completion in zip(chunk, completions, strict=True):
                parsed, status = calls[i].parse(request, completion)
                records[i].append({
                    "key": request.key, "id": request.key.split("#", 1)[0],
                    "adapter": request.adapter, "prompt": calls[i].describe(request),
                    "raw": completion.text, "parsed": parsed, "status": status,
                    "finish_reason": completion.finish_reason,
                    "prompt_tokens": completion.prompt_tokens,
                    "output_tokens": completion.output_tokens,
                })
            for i, chunk_records in records.items():
                calls[i].store.append(chunk_records)
            bar.update(len(chunk))
    return [{r.key: call.store.records[r.key] for r in call.requests} for call in calls]
