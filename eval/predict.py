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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.cli import make_parser, run
from core.io import (
    DataError,
    ProjectError,
    iter_jsonl,
    iter_lines,
    not_utf8,
    write_jsonl,
    write_text_atomic,
)
from core.mappings import Archetypes, Domain, load_archetypes, load_domain
from core.records import Sentence, save_sentences
from core.text import place_mentions, token_spans
from eval.config import InferenceConfig, load_config

DEFAULT_CONFIG = "recipes/infer/llama3-8b.yaml"  # the Makefile's CONFIG
DEFAULT_OUT = "runs/predict"
DOMAIN_NAME = "text"  # run files go to OUT/text/ (the pipeline names them after the domain)
INPUT_DIR = "input"  # OUT/input/: the generated domain.yaml and sentences.jsonl
MISC = "misc"
MISC_DEFINITION = "An entity that fits none of the other types."
SHOWN_SKIPS = 5  # too-long lines named one by one on stderr; the rest are counted
COUNTS = ("predicted_lines", "skipped_empty", "skipped_too_long", "entities", "misc_rejected",
          "mentions_not_token_aligned", "mentions_inside_longer")  # OUT/predict.json

Texts = str | os.PathLike[str] | Sequence[str]
Labels = str | os.PathLike[str] | Sequence[str] | Mapping[str, str | None]


class PredictError(ProjectError):
    """Unusable input or labels; the message names the file and line, or the argument."""


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


@dataclass(frozen=True)
class LabelEntry:
    where: str  # "labels.yaml:3" or "labels[2]": where the user wrote it
    name: str
    definition: str | None


def _yaml_entries(path: Path) -> list[tuple[str, Any, Any]]:
    """(``file:line``, name, definition) of a YAML list of names or mapping name -> definition."""
    raw = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise not_utf8(path, raw, exc) from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if isinstance(root, yaml.SequenceNode):
            return [(f"{path}:{node.start_mark.line + 1}", loader.construct_object(node, True),
                     None) for node in root.value]
        if isinstance(root, yaml.MappingNode):
            return [(f"{path}:{key.start_mark.line + 1}", loader.construct_object(key, True),
                     loader.construct_object(value, True)) for key, value in root.value]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise DataError(path, mark.line + 1 if mark else None,
                        f"invalid YAML ({exc.problem or exc.context})") from None
    finally:
        loader.dispose()
    if root is None:
        return []
    raise DataError(path, root.start_mark.line + 1, "expected a list of label names or a "
                    "mapping name: definition")


def read_labels(labels: Labels) -> list[LabelEntry]:
    """Checked label entries: names are non-empty one-line strings, unique case-insensitively
    (the calibrator's answer is read back case-insensitively), definitions text or empty."""
    if isinstance(labels, str | os.PathLike):
        if not Path(labels).is_file():
            hint = "" if isinstance(labels, os.PathLike) else " (to give names, pass a list)"
            raise PredictError(f"{labels}: labels file not found{hint}")
        where, raw = str(labels), _yaml_entries(Path(labels))
    elif isinstance(labels, Mapping):
        where, raw = "labels", [(f"labels[{k!r}]", k, v) for k, v in labels.items()]
    elif isinstance(labels, Sequence):
        where, raw = "labels", [(f"labels[{i}]", k, None) for i, k in enumerate(labels)]
    else:
        raise PredictError(f"labels: expected a path, a list or a mapping, got "
                           f"{type(labels).__name__}")
    if not raw:
        raise PredictError(f"{where}: no labels (write a list of names, or a mapping "
                           "name: definition)")
    entries: list[LabelEntry] = []
    seen: dict[str, LabelEntry] = {}
    for at, name, definition in raw:
        if not isinstance(name, str):
            shown = "an empty entry" if name is None else f"{name!r} ({type(name).__name__})"
            raise PredictError(f"{at}: a label name must be text, got {shown}; quote it in YAML")
        name = name.strip()
        if not name or len(name.splitlines()) != 1:
            raise PredictError(f"{at}: label name {name!r} is empty or spans several lines")
        if definition is not None and not isinstance(definition, str):
            raise PredictError(f"{at}: the definition of {name!r} must be text, got "
                               f"{type(definition).__name__}")
        first = seen.get(name.lower())
        if first:
            raise PredictError(f"{at}: duplicate label {name!r}: same as {first.name!r} at "
                               f"{first.where} (names compare case-insensitively)")
        entry = LabelEntry(at, name, (definition or "").strip() or None)
        seen[name.lower()] = entry
        entries.append(entry)
    if all(e.name.lower() == MISC for e in entries):
        raise PredictError(f"{where}: only {MISC!r}: give at least one label to look for")
    return entries


def domain_data(entries: Sequence[LabelEntry], archetypes: Archetypes) -> dict[str, Any]:
    """The on-the-fly domain: one label per entry (its name is also its tag; a label spelled
    misc in any case takes the tag ``misc``), the hidden ``misc`` when none was given, and the
    no-calibration fallback for labels named like an archetype."""
    labels = {(MISC if e.name.lower() == MISC else e.name):
              {"name": e.name, "definition": e.definition or e.name} for e in entries}
    labels.setdefault(MISC, {"name": MISC, "definition": MISC_DEFINITION})
    by_name = {body["name"].lower(): tag for tag, body in labels.items()}
    fallback = {a: by_name[a.lower()] for a in archetypes.names if a.lower() in by_name}
    return {"name": DOMAIN_NAME, "sentences": "sentences.jsonl", "labels": labels,
            "archetype_fallback": fallback}


# --- the model's context ------------------------------------------------------------------------


def fit_calibration_budget(config: InferenceConfig, domain: Domain, tokenizer: Any) -> None:
    """Raise ``sampling.max_tokens_calibrate`` to the longest label name (+1 for the end of the
    answer): a name the calibrator cannot finish writing would be cut and never chosen."""
    longest = max(len(tokenizer.encode(label.name, add_special_tokens=False)) + 1
                  for label in domain.labels.values())
    if longest > config.sampling.max_tokens_calibrate:
        print(f"note: sampling.max_tokens_calibrate raised from "
              f"{config.sampling.max_tokens_calibrate} to {longest}: the longest label name "
              "must fit the calibrator's answer", file=sys.stderr)
        config.sampling.max_tokens_calibrate = longest


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
