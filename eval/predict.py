"""NER on your own documents, with character offsets: ``make predict`` and ``eval.predict.predict``.

    python -m eval.predict --input notes/ --labels labels.yaml --out runs/mine \\
        [--config recipes/infer/demo-cpu.yaml] [key=value ...]

    from eval.predict import predict
    records = predict(["Ada Lovelace wrote to Charles Babbage from London."],
                      ["person", "city"], config="recipes/infer/demo-cpu.yaml", out="runs/mine")

A thin user of :class:`eval.recognizer.Recognizer` for one call: the engine starts, answers, and
shuts down. To ask many times without restarting, use the recognizer itself.

Input (:mod:`core.documents`): a UTF-8 text file (one document; blank lines separate
paragraphs), a folder of ``.txt`` files (one document each), or JSON Lines records
``{"id": ..., "text": ...}`` (or ``"tokens"``, pre-tokenised); from Python, also a list of
strings. Labels: a YAML list of names, or a mapping name -> definition (from Python: a path, a
list or a dict). Without a definition a label's name stands in for it, so the calibrator
(stage 3) sees only the names, which costs it the hints a definition gives.

Documents of any length: each is split into sentences and packed into windows that fit the model
(``documents.window_tokens``; see :mod:`eval.recognizer`); nothing is skipped for being long.
Output, under OUT: ``predictions.jsonl``, one record per document::

    {"id": "notes.txt", "text": "<the document>", "entities": [{"start": 0, "end": 12,
     "text": "Ada Lovelace", "type": "person", "found_by": ["anchor", "explorer"],
     "archetype": "person"}]}

``start``/``end`` index the document as a Python string (code points; end exclusive), so
``text == document[start:end]``; ``predictions.html`` shows every document with its entities
highlighted by label (one self-contained file); ``predict.json`` holds the counts; run files
(resumable: a re-run generates only what changed) are under ``OUT/text/``.
misc: unless your labels include ``misc``, a hidden ``misc`` label is offered to the calibrator
  (as CrossNER's domains offer theirs), so a discovered mention that fits none of your labels is
  rejected instead of forced into one; those mentions are counted and left out.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.cli import make_parser, run
from core.documents import Source, read_documents
from eval.config import load_config
from eval.labels import Labels, PredictError, read_labels
from eval.recognizer import Recognizer, check_some_text

__all__ = ["PredictError", "main", "predict"]

DEFAULT_CONFIG = "recipes/infer/llama3-8b.yaml"  # the Makefile's CONFIG
DEFAULT_OUT = "runs/predict"


def predict(texts: Source, labels: Labels, config: str | os.PathLike[str] = DEFAULT_CONFIG,
            out: str | os.PathLike[str] = DEFAULT_OUT, overrides: Sequence[str] = (),
            backend: Any = None, make: Any = None) -> list[dict[str, Any]]:
    """Entities with document offsets, one record per document (see the module doc); also
    written to ``OUT/predictions.jsonl``. ``overrides`` are the config's ``key=value`` words;
    ``backend``/``make`` default to vLLM (tests pass fakes). The input, the labels and the
    config are all checked before anything is written or a model loads."""
    documents = read_documents(texts)
    check_some_text(texts, documents)
    entries = read_labels(labels)
    settings = load_config(config, list(overrides))
    with Recognizer(settings, out, backend, make) as recognizer:
        records = recognizer.predict(documents, entries)
        counts = recognizer.counts
    print(f"predict: {counts['documents']} documents, {counts['windows']} windows "
          f"({counts['split_windows']} cut inside a sentence), {counts['skipped_empty']} empty; "
          f"{counts['entities']} entities -> {Path(out) / 'predictions.jsonl'}, "
          f"{Path(out) / 'predictions.html'}")
    return records


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--input", required=True,
                        help="a UTF-8 text file, a folder of .txt files, or JSON Lines records")
    parser.add_argument("--labels", required=True,
                        help="YAML: a list of label names, or a mapping name: definition")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="inference config")
    parser.add_argument("--out", default=DEFAULT_OUT, help="run directory")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides (dotted keys)")
    args = parser.parse_intermixed_args(argv)

    def body() -> None:
        predict(Path(args.input), Path(args.labels), args.config, args.out, args.overrides)

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
