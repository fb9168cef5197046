"""Per-stage answer files that make a run resumable: reuse only for the identical request.

Each LLM stage of a domain owns one JSONL file (``<stage>.jsonl``) of records: the request's key
(which sentence / mention it answers), its content digest (:func:`eval.identity.request_digest`:
prompt ids, weights, decoding, grammar), the prompt, the raw output, the parse and token counts.
A saved answer is found by digest, never by key alone, so a request that changed in any way is
generated again, and a calibration answer belongs to its mention, not to a position.

Results are appended one chunk at a time and fsynced. On load, a torn last line (a run killed
mid-write) is cut off; a bad line in the middle (not JSON, not an object, no digest) is counted,
dropped, and the file rewritten without it, keeping every good answer after it. Saved answers are
parsed again from their raw text on every run, so parser fixes reach old answers too.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.io import dumps_line, write_jsonl
from core.messages import Backend, Completion, Request
from eval.identity import request_digest

REQUIRED = ("key", "hash", "raw", "finish_reason", "prompt_tokens", "output_tokens")


class StageStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.by_hash: dict[str, dict[str, Any]] = {}
        self.keys_saved: set[str] = set()
        self.torn_lines = 0
        self.bad_lines = 0
        if path.exists():
            self._load()

    def _load(self) -> None:
        good: list[dict[str, Any]] = []
        with open(self.path, "rb") as handle:
            lines = handle.readlines()
        for number, raw in enumerate(lines, start=1):
            if number == len(lines) and not raw.endswith(b"\n"):
                self.torn_lines += 1  # killed mid-write: the only line that may be cut
                break
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                record = None
            if not (isinstance(record, dict) and all(k in record for k in REQUIRED)):
                self.bad_lines += raw.strip() != b""
                continue
            good.append(record)
            self.by_hash[record["hash"]] = record
            self.keys_saved.add(record["key"])
        if self.bad_lines:
            write_jsonl(self.path, good)  # atomically: the good answers stay, in order
        elif self.torn_lines:
            with open(self.path, "r+b") as handle:
                handle.truncate(sum(len(raw) for raw in lines[:-1]))

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            for record in records:
                handle.write(dumps_line(record))
                self.by_hash[record["hash"]] = record
                self.keys_saved.add(record["key"])
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


def _completion(record: Mapping[str, Any]) -> Completion:
    return Completion(record["raw"], record["prompt_tokens"], record["output_tokens"],
                      record["finish_reason"])


def run_stages(calls: Sequence[StageCall], backend: Backend, context: Mapping[str, Any],
               chunk_size: int, label: str
               ) -> tuple[list[dict[str, dict[str, Any]]], list[Counter[str]]]:
    """Generate what the calls' stores lack as ONE request stream (stages and domains share
    the engine's batches), ``chunk_size`` requests per saved chunk.

    Returns each call's records by request key (parsed afresh) and its resume counts: ``reused``
    (identical request saved), ``regenerated`` (the key had an answer to a request that has
    since changed) and ``new``; plus the store's ``bad_lines`` and ``torn_lines``.
    """
    digests = [[request_digest(r, context) for r in call.requests] for call in calls]
    pending: list[tuple[int, Request, str]] = []
    counts = [Counter({"bad_lines": c.store.bad_lines, "torn_lines": c.store.torn_lines})
              for c in calls]
    queued: set[tuple[int, str]] = set()
    for i, call in enumerate(calls):
        for request, digest in zip(call.requests, digests[i], strict=True):
            if digest in call.store.by_hash:
                counts[i]["reused"] += 1
            elif (i, digest) not in queued:  # the same request twice is generated once
                queued.add((i, digest))
                pending.append((i, request, digest))
                counts[i]["regenerated" if request.key in call.store.keys_saved else "new"] += 1
    total = sum(len(call.requests) for call in calls)
    with tqdm(total=total, initial=total - len(pending), desc=label, unit="req",
              disable=None) as bar:
        for start in range(0, len(pending), chunk_size):
            chunk = pending[start:start + chunk_size]
            completions = backend.generate([request for _, request, _ in chunk])
            records: dict[int, list[dict[str, Any]]] = defaultdict(list)
            for (i, request, digest), completion in zip(chunk, completions, strict=True):
                parsed, status = calls[i].parse(request, completion)  # kept for inspection
                records[i].append({
                    "key": request.key, "id": request.sentence or request.key, "hash": digest,
                    "adapter": request.adapter, "prompt": calls[i].describe(request),
                    "raw": completion.text, "parsed": parsed, "status": status,
                    "finish_reason": completion.finish_reason,
                    "prompt_tokens": completion.prompt_tokens,
                    "output_tokens": completion.output_tokens,
                })
            for i, chunk_records in records.items():
                calls[i].store.append(chunk_records)
            bar.update(len(chunk))
    results = []
    for i, call in enumerate(calls):
        by_key = {}
        for request, digest in zip(call.requests, digests[i], strict=True):
            record = dict(call.store.by_hash[digest])
            # a saved answer serves this request even when the same text sat elsewhere before
            # (another document order, another window id): it answers the current key
            record["key"], record["id"] = request.key, request.sentence or request.key
            record["parsed"], record["status"] = call.parse(request, _completion(record))
            by_key[request.key] = record
        results.append(by_key)
    return results, counts
