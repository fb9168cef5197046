"""NER on your own text, with character offsets: ``make predict`` and ``eval.predict.predict``.

    python -m eval.predict --input notes.txt --labels labels.yaml --out runs/mine \\
        [--config recipes/infer/demo-cpu.yaml] [key=value ...]

    from eval.predict import predict
    records = predict(["Ada Lovelace wrote to Charles Babbage from London."],
                      ["person", "city"], config="recipes/infer/demo-cpu.yaml", out="runs/mine")

Input: UTF-8 text, one passage per line (from Python: a path, or a list of strings, one passage
each). Labels: a YAML list of names, or a mapping name -> definition (from Python: a path, a list
or a dict). Without a definition a label's name stands in for it, so the calibrator (stage 3)
sees only the names, which costs it the hints a definition gives (what counts, what is excluded,
which of two close labels wins). The labels become a domain, written with the passages under
``OUT/input/`` (``domain.yaml``, ``sentences.jsonl``; never beside your files); the three stages
run on it like on any domain (run files under ``OUT/text/``, resumable: a re-run generates only
what changed), then ``OUT/predictions.jsonl`` gets one record per input line::

    {"line": 1, "text": "<the line>", "entities": [{"start": 0, "end": 12, "text": "Ada Lovelace",
     "type": "person"}]}

``start``/``end`` index the line as a Python string (code points, not bytes or UTF-16 units; end
exclusive), so ``text == line[start:end]``. ``OUT/predict.json`` holds the counts.

Tokenisation and mentions -> offsets: the rules in ``core/text.py``. In short, a token is a
  word (letters, digits, marks; a hyphen or period inside it: "e-mail", "3.5", "Node.js"), or
  one punctuation mark, symbol or emoji ("U.S." -> ``U.S .``); a token never splits a grapheme
  cluster (a flag, 👩‍🔬). The sentence the stages see is the tokens joined by single spaces. A
  predicted mention is placed at every run of whole tokens equal to it, longest first; one that
  is not a run of whole tokens ("York" inside "York-based") is counted and left out.
misc: unless your labels include ``misc``, a hidden ``misc`` label is offered to the calibrator
  (as CrossNER's domains offer theirs), so a discovered mention that fits none of your labels is
  rejected instead of forced into one; those mentions are counted and left out.
Empty lines (whitespace only) and lines whose prompt would not fit the model (any stage's
  prompt tokens plus that stage's answer budget ``sampling.max_tokens_*`` above
  ``engine.max_model_len``, counted with the model's own tokenizer; stage 2 and 3 are bounded
  with the whole line as one mention) are skipped and counted: their record has no entities and
  says why under ``"skipped"``. An input with nothing left to run is an error.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from core.cli import make_parser, run
from core.io import (
    iter_jsonl,
    iter_lines,
    write_jsonl,
    write_text_atomic,
)
from core.mappings import load_archetypes, load_domain
from core.records import Sentence, save_sentences
from core.text import place_mentions, token_spans
from eval.config import load_config
from eval.labels import (
    DOMAIN_NAME,
    MISC,
    Labels,
    PredictError,
    domain_data,
    read_labels,
)
from eval.recognizer import fit_calibration_budget

DEFAULT_CONFIG = "recipes/infer/llama3-8b.yaml"  # the Makefile's CONFIG
DEFAULT_OUT = "runs/predict"
INPUT_DIR = "input"  # OUT/input/: the generated domain.yaml and sentences.jsonl
SHOWN_SKIPS = 5  # too-long lines named one by one on stderr; the rest are counted
COUNTS = ("predicted_lines", "skipped_empty", "skipped_too_long", "entities", "misc_rejected",
          "mentions_not_token_aligned", "mentions_inside_longer")  # OUT/predict.json

Texts = str | os.PathLike[str] | Sequence[str]


# --- reading the input and the labels -----------------------------------------------------------


def read_lines(texts: Texts) -> tuple[str, list[str]]:
    """(name for messages, lines without their line ends). A ``str`` is a path."""
    if isinstance(texts, str | os.PathLike):
        path = Path(texts)
        if not path.is_file():
            hint = "" if isinstance(texts, os.PathLike) else \
                " (to predict on text itself, pass a list of strings)"
            raise PredictError(f"{path}: input file not found{hint}")
        lines = [line.removesuffix("\n").removesuffix("\r") for _, line in iter_lines(path)]
        return str(path), lines
    if not isinstance(texts, Sequence):
        raise PredictError("texts: expected a path or a list of strings, got "
                           f"{type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise PredictError(f"texts[{i}]: expected a string, got {type(text).__name__}")
    return "texts", list(texts)


# --- the model's context ------------------------------------------------------------------------


# --- predict ------------------------------------------------------------------------------------


def predict(texts: Texts, labels: Labels, config: str | os.PathLike[str] = DEFAULT_CONFIG,
            out: str | os.PathLike[str] = DEFAULT_OUT, overrides: Sequence[str] = (),
            backend: Any = None, make: Any = None) -> list[dict[str, Any]]:
    """Entities with character offsets, one record per input line (see the module doc); also
    written to ``OUT/predictions.jsonl``. ``overrides`` are the config's ``key=value`` words;
    ``backend``/``make`` default to vLLM (tests pass fakes, as to ``run_pipeline``)."""
    from eval.engine import make_backend
    from eval.infer import run_pipeline
    from eval.pipeline import context_problems

    source, lines = read_lines(texts)  # every check of the user's input before anything is written
    entries = read_labels(labels)
    settings = load_config(config, list(overrides))
    spans = [token_spans(line) for line in lines]
    sentences = [Sentence(f"line-{n}", DOMAIN_NAME, [line[s:e] for s, e in line_spans])
                 for n, (line, line_spans) in enumerate(zip(lines, spans, strict=True), start=1)
                 if line_spans]
    if not sentences:
        raise PredictError(f"{source}: no text to run ({len(lines)} lines, all empty)")

    out = Path(out)
    folder = out / INPUT_DIR
    archetypes = load_archetypes()
    write_text_atomic(folder / "domain.yaml", "# written by eval.predict: your labels as a "
                      "domain (misc, unless you gave one, is the hidden reject label)\n"
                      + yaml.safe_dump(domain_data(entries, archetypes), sort_keys=False,
                                       allow_unicode=True))
    domain = load_domain(folder)
    settings.output_dir, settings.domains = str(out), [str(folder)]
    settings.limit, settings.domain_limits = None, {}
    backend = backend or (make or make_backend)(settings, None)
    fit_calibration_budget(settings, domain, backend.tokenizer)
    too_long = context_problems(settings, domain, archetypes, sentences, backend,
                                out / DOMAIN_NAME)
    runnable = [s for s in sentences if s.id not in too_long]
    if not runnable:
        first = sentences[0].id
        raise PredictError(f"{source}: no line fits the model: line "
                           f"{first.removeprefix('line-')} is {too_long[first]}")
    for sid in list(too_long)[:SHOWN_SKIPS]:
        print(f"warning: {source}:{sid.removeprefix('line-')}: skipped, {too_long[sid]}",
              file=sys.stderr)
    if len(too_long) > SHOWN_SKIPS:
        print(f"warning: {len(too_long) - SHOWN_SKIPS} more lines skipped as too long",
              file=sys.stderr)
    save_sentences(folder / "sentences.jsonl", runnable)
    written = run_pipeline(settings, backend=backend, make=make)

    predicted = {record["id"]: [(e["text"], domain.labels[e["type"]].name)
                                for e in record["entities"]]
                 for _, record in iter_jsonl(written[DOMAIN_NAME])}
    hidden_misc = all(e.name.lower() != MISC for e in entries)
    counts: Counter[str] = Counter()
    records = [line_record(n, line, line_spans, predicted, too_long, hidden_misc, counts)
               for n, (line, line_spans) in enumerate(zip(lines, spans, strict=True), start=1)]
    write_jsonl(out / "predictions.jsonl", records)
    summary = {"input": source, "lines": len(lines), "labels": [e.name for e in entries],
               "hidden_misc": hidden_misc, "config": str(config),
               **{key: counts[key] for key in COUNTS}}
    write_text_atomic(out / "predict.json", json.dumps(summary, indent=2, ensure_ascii=False))
    print(f"predict: {len(lines)} lines, {counts['predicted_lines']} run, "
          f"{counts['skipped_empty']} empty and {counts['skipped_too_long']} over the model's "
          f"context skipped; {counts['entities']} entities -> {out / 'predictions.jsonl'}")
    return records


def line_record(number: int, line: str, spans: Sequence[tuple[int, int]],
                predicted: Mapping[str, list[tuple[str, str]]], too_long: Mapping[str, str],
                hidden_misc: bool, counts: Counter[str]) -> dict[str, Any]:
    """One output record: the line's entities, or why it was skipped (counted either way)."""
    record: dict[str, Any] = {"line": number, "text": line, "entities": []}
    sid = f"line-{number}"
    if not spans:
        record["skipped"] = "empty line"
        counts["skipped_empty"] += 1
    elif sid in too_long:
        record["skipped"] = too_long[sid]
        counts["skipped_too_long"] += 1
    else:
        counts["predicted_lines"] += 1
        for entity in place_mentions(line, spans, predicted.get(sid, []), counts):
            if hidden_misc and entity["type"] == MISC:
                counts["misc_rejected"] += 1  # placed (so it blocks shorter ones), not reported
            else:
                record["entities"].append(entity)
        counts["entities"] += len(record["entities"])
    return record


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--input", required=True, help="UTF-8 text file, one passage per line")
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
