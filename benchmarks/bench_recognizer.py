"""Many documents, one stream: what a sentence costs as the batch of documents grows.

    .venv/infer/bin/python -m benchmarks.bench_recognizer [--config recipes/infer/demo-cpu.yaml]
        [--sizes 1 10 100] [--per-doc 3] [--data data] [--out runs/bench-recognizer]

One :class:`eval.recognizer.Recognizer` (one engine, started by a warm-up call that is not
timed) answers a call of 1, 10 and 100 documents, each of ``--per-doc`` consecutive sentences of
CrossNER's dev split (``make data`` first), every call on documents no other call saw, so no
answer is reused. Per call it prints documents/s, sentences/s, LLM requests and generated tokens
per sentence (from the run's stats), and the ratio of seconds per sentence against the first
size: the windows of all documents go through each stage as one request stream, so the cost per
sentence should fall as the batch grows. A script that prints numbers, not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from core.cli import run
from core.records import load_sentences
from eval.recognizer import Recognizer

LABELS = ["person", "organisation", "location", "band", "album", "song"]


def documents(data: Path, count: int, per_doc: int) -> list[str]:
    """``count * per_doc`` distinct dev sentences of the CrossNER domains, ``per_doc`` a doc."""
    texts = [s.text for d in ("music", "literature", "politics", "science", "ai")
             for s in load_sentences(data / "crossner" / d / "dev.jsonl")]
    if len(texts) < count * per_doc:
        raise SystemExit(f"need {count * per_doc} dev sentences, have {len(texts)}")
    return [" ".join(texts[i:i + per_doc]) for i in range(0, count * per_doc, per_doc)]


def stage_totals(out: Path) -> tuple[int, int]:
    """(requests, generated tokens) of the latest call, over every LLM stage."""
    stages = json.loads((out / "text" / "stats.json").read_text())["stages"]
    return (sum(c.get("requests", 0) for c in stages.values()),
            sum(c.get("output_tokens", 0) for c in stages.values()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="recipes/infer/demo-cpu.yaml")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--per-doc", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    return run(lambda: measure(args))  # a bad config or missing data: one line, exit 2


def measure(args: argparse.Namespace) -> None:
    pool = documents(args.data, 1 + sum(args.sizes), args.per_doc)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-recognizer-"))
    print(f"{args.config}: {args.per_doc} CrossNER dev sentence(s) per document, out {out}")
    header = ("docs  sentences  seconds  docs/s  sentences/s  requests/sent  gen.tokens/sent  "
              "s/sent vs first")
    rows: list[str] = []
    base = None
    with Recognizer.from_config(args.config, out=out) as ner:
        ner.predict(pool[:1], LABELS)  # warm-up: the engine starts here, untimed
        used = 1
        for size in args.sizes:
            docs, used = pool[used:used + size], used + size
            start = time.perf_counter()
            ner.predict(docs, LABELS)
            seconds = time.perf_counter() - start
            requests, tokens = stage_totals(out)
            sentences = size * args.per_doc
            base = base or seconds / sentences
            rows.append(f"{size:4d}  {sentences:9d}  {seconds:7.1f}  {size / seconds:6.2f}  "
                        f"{sentences / seconds:11.2f}  {requests / sentences:13.2f}  "
                        f"{tokens / sentences:15.1f}  {seconds / sentences / base:15.2f}")
            print("\n".join([header, *rows]), flush=True)  # each size as soon as it is done


if __name__ == "__main__":
    sys.exit(main())
