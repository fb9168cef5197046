"""A recognizer that stays loaded: NER on documents of any length, with document offsets.

    from eval.recognizer import Recognizer

    with Recognizer.from_config("recipes/infer/llama3-8b.yaml", out="runs/mine") as ner:
        docs = ner.predict(["Ada Lovelace wrote to Charles Babbage from London."],
                           ["person", "city"])
        more = ner.predict("notes/", {"drug": "a medicine, by brand or generic name",
                                      "disease": None})

The engine starts once, at the first call that has something to generate, and serves every
later call, whatever its labels; ``close()`` (or leaving the ``with`` block) shuts it down.
Answers are saved by content under ``OUT/text/`` as in ``make infer``, so text asked again, in
this process or a later one, generates nothing. ``OUT`` is locked while the recognizer lives.

Documents (:mod:`core.documents`: a text file, a folder of ``.txt``, JSON Lines, strings) are
split into sentences and packed into windows (:mod:`core.text`) of at most
``documents.window_tokens`` model tokens; a window whose prompt and answer budget would not fit
``engine.max_model_len`` in some stage is re-cut with half the budget, and a sentence longer
than a window is cut at token boundaries (counted). The windows of all documents go through
each stage as one request stream (the pipeline's lockstep). Each entity comes back with its
document offsets (``text == document[start:end]``), its label, the extractors that found it
and the archetype stage 2 gave it. An extractor on another base model (the Qwen config's Llama3
anchor) runs on an engine of its own that is started and shut down within each call.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from core.documents import Document, Source, read_documents, token_spans_of
from core.io import write_jsonl, write_text_atomic
from core.mappings import Domain, load_archetypes, load_domain
from core.prompts import PROMPT_VERSION
from core.records import Sentence
from core.text import Window, place_mentions, sentence_spans, windows
from eval.config import InferenceConfig, load_config
from eval.html_view import predictions_page
from eval.infer import adapters_record, lock_run_dir, record_engine_stats
from eval.labels import (
    DOMAIN_NAME,
    MISC,
    LabelEntry,
    Labels,
    PredictError,
    domain_data,
    read_labels,
)
from eval.pipeline import DomainRun, context_problems, run_domains

INPUT_DIR = "input"  # OUT/input/domain.yaml: the labels of the latest call, as a domain
MIN_WINDOW = 8  # model tokens: below this a window is not worth re-cutting again
COUNTS = ("documents", "windows", "split_windows", "recut_documents", "skipped_empty",
          "entities", "misc_rejected", "mentions_not_token_aligned", "mentions_inside_longer")


class Recognizer:
    """The three SAM-NER stages on one engine that serves many :meth:`predict` calls."""

    def __init__(self, config: InferenceConfig, out: str | os.PathLike[str],
                 backend: Any = None, make: Any = None) -> None:
        from eval.engine import make_backend

        self.config, self.out = config, Path(out)
        self.make = make or make_backend
        self._lock = lock_run_dir(self.out)  # before anything is written into OUT
        config.output_dir = str(self.out)
        self._write_config()
        write_text_atomic(self.out / "run.json", json.dumps(
            {"prompt_version": PROMPT_VERSION, "typing": config.typing,
             "adapters": adapters_record(config)}, indent=2))
        self.archetypes = load_archetypes()
        self.backend = backend or self.make(config, None)
        self.counts: Counter[str] = Counter()  # of the latest call

    @classmethod
    def from_config(cls, path: str | os.PathLike[str], overrides: Sequence[str] = (),
                    out: str | os.PathLike[str] = "runs/predict", backend: Any = None,
                    make: Any = None) -> Recognizer:
        """A recognizer for an inference config (``recipes/infer/*.yaml``) with ``key=value``
        overrides; every setting is checked before a model loads."""
        return cls(load_config(path, list(overrides)), out, backend, make)

    def __enter__(self) -> Recognizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Shut the engine down and release OUT."""
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()
        self._lock.close()

    # --- one call ------------------------------------------------------------------------------

    def predict(self, texts: Source | Sequence[Document],
                labels: Labels | Sequence[LabelEntry]) -> list[dict[str, Any]]:
        """One record per document: ``{"id", "text", "entities": [{"start", "end", "text",
        "type", "found_by", "archetype"}]}``; also written to ``OUT/predictions.jsonl`` (and
        highlighted in ``OUT/predictions.html``) with the counts in ``OUT/predict.json``. Input
        and labels are checked before anything runs; documents and labels already read
        (:func:`read_documents`, :func:`read_labels`) are taken as they are."""
        documents = texts if _all(texts, Document) else read_documents(texts)
        entries = labels if _all(labels, LabelEntry) else read_labels(labels)
        check_some_text(texts, documents)
        domain = self._domain(entries)
        self.counts = Counter(documents=len(documents))
        cut = self._windows(documents, domain)
        sentences = [window_sentence(documents[d], f"{d}:{w}", window)
                     for d, doc_windows in enumerate(cut) for w, window in enumerate(doc_windows)]
        run, predicted = self._run(domain, sentences)
        hidden_misc = all(e.name.lower() != MISC for e in entries)
        records = [self._record(doc, d, doc_windows, run, predicted, domain, hidden_misc)
                   for d, (doc, doc_windows) in enumerate(tqdm(
                       list(zip(documents, cut, strict=True)), desc="documents", unit="doc",
                       disable=None))]
        write_jsonl(self.out / "predictions.jsonl", records)
        write_text_atomic(self.out / "predictions.html", predictions_page(
            records, title=f"predictions: {self.out.name}"))
        write_text_atomic(self.out / "predict.json", json.dumps(
            {"labels": [e.name for e in entries], "hidden_misc": hidden_misc,
             **{key: self.counts[key] for key in COUNTS}}, indent=2, ensure_ascii=False))
        record_engine_stats(self.out, self.backend.stats())
        return records

    def _domain(self, entries: Sequence[LabelEntry]) -> Domain:
        folder = self.out / INPUT_DIR
        write_text_atomic(folder / "domain.yaml", "# written by eval.recognizer: the labels of "
                          "the latest call as a domain (misc, unless given, is the hidden "
                          "reject label)\n" + yaml.safe_dump(
                              domain_data(entries, self.archetypes), sort_keys=False,
                              allow_unicode=True))
        domain = load_domain(folder)
        budget = self.config.sampling.max_tokens_calibrate
        fit_calibration_budget(self.config, domain, self.backend.tokenizer)
        if self.config.sampling.max_tokens_calibrate != budget:
            self._write_config()  # config.yaml says what the run used
        return domain

    def _write_config(self) -> None:
        write_text_atomic(self.out / "config.yaml",
                          yaml.safe_dump(self.config.to_dict(), sort_keys=False))

    def _windows(self, documents: Sequence[Document], domain: Domain) -> list[list[Window]]:
        """Each document's windows, every one fitting the model in every stage."""
        tokenizer = self.backend.tokenizer

        def count(text: str) -> int:
            return len(tokenizer.encode(text, add_special_tokens=False))

        budgets = [self.config.documents.window_tokens] * len(documents)
        cut: list[list[Window]] = [[] for _ in documents]
        todo = list(range(len(documents)))
        recut: set[int] = set()
        spans = [token_spans_of(doc) for doc in documents]  # given tokens are kept as given
        first = True
        while todo:
            for d in tqdm(todo, desc="documents: windows" if first else "documents: re-cut",
                          unit="doc", disable=None):
                text = documents[d].text
                cut[d] = windows(text, sentence_spans(text, spans[d]), budgets[d], count,
                                 spans=spans[d])
            probe = [window_sentence(documents[d], f"{d}:{w}", window)
                     for d in todo for w, window in enumerate(cut[d])]
            too_long = context_problems(self.config, domain, self.archetypes, probe,
                                        self.backend, self.out / DOMAIN_NAME)
            failed = sorted({int(sid.split(":")[0]) for sid in too_long})
            for d in failed:
                if budgets[d] // 2 < MIN_WINDOW:
                    sid = next(s for s in too_long if s.startswith(f"{d}:"))
                    raise PredictError(f"document {documents[d].id!r}: even a window of "
                                       f"{budgets[d]} model tokens does not fit: "
                                       f"{too_long[sid]}")
                budgets[d] //= 2
            recut.update(failed)
            todo, first = failed, False
        self.counts["recut_documents"] = len(recut)
        for doc_windows in cut:
            self.counts["windows"] += len(doc_windows)
            self.counts["split_windows"] += sum(w.split for w in doc_windows)
        return cut

    def _run(self, domain: Domain, sentences: Sequence[Sentence]
             ) -> tuple[DomainRun, dict[str, list[dict[str, Any]]]]:
        """The three stages over every window as one stream: the run (where each mention came
        from) and the labelled mentions by window id."""
        out = self.out / DOMAIN_NAME
        for role, base in self.config.foreign_bases().items():
            foreign = self.make(self.config, base)  # its answers are saved, then reused below
            run_domains([(DomainRun(self.config, domain, self.archetypes, foreign, out),
                          sentences)], only=role)
            foreign.close()
        run = DomainRun(self.config, domain, self.archetypes, self.backend, out)
        if not sentences:
            return run, {}
        [predictions] = run_domains([(run, sentences)])
        return run, {p["id"]: p["entities"] for p in predictions or []}

    def _record(self, doc: Document, d: int, doc_windows: Sequence[Window], run: DomainRun,
                predicted: dict[str, list[dict[str, Any]]], domain: Domain, hidden_misc: bool
                ) -> dict[str, Any]:
        """A document's entities in document offsets, with where each came from."""
        record: dict[str, Any] = {"id": doc.id, "text": doc.text, "entities": []}
        if doc.tokens is not None:  # pre-tokenised input: kept for CoNLL export
            record["tokens"] = list(doc.tokens)
        if not doc_windows:
            record["skipped"] = "empty document"
            self.counts["skipped_empty"] += 1
            return record
        for w, window in enumerate(doc_windows):
            sid = f"{d}:{w}"
            pairs = [(e["text"], domain.labels[e["type"]].name) for e in predicted.get(sid, [])]
            found = run.discovered.get(sid)
            archetype = dict(run.archetypes_of.get(sid, []))
            for entity in place_mentions(doc.text, window.spans, pairs, self.counts):
                if hidden_misc and entity["type"] == MISC:
                    self.counts["misc_rejected"] += 1  # placed (it blocks shorter ones), not kept
                    continue
                mention = next((m for m, _ in pairs
                                if m.split() == entity["text"].split()), entity["text"])
                entity["found_by"] = sorted(name for name, mentions in
                                            (found.found.items() if found else ())
                                            if mention in mentions)
                entity["archetype"] = archetype.get(mention)
                record["entities"].append(entity)
        record["entities"].sort(key=lambda e: (e["start"], e["end"]))
        self.counts["entities"] += len(record["entities"])
        return record


def check_some_text(source: object, documents: Sequence[Document]) -> None:
    """An input of only empty documents is an error (a typo'd folder, a wrong JSONL field)."""
    if not any(doc.text.strip() for doc in documents):
        where = source if isinstance(source, str | os.PathLike) else "texts"
        raise PredictError(f"{where}: no text to run ({len(documents)} documents, all empty)")


def _all(items: object, kind: type) -> bool:
    """A non-empty list or tuple of ``kind``: input a caller has already read and checked."""
    return isinstance(items, list | tuple) and bool(items) and \
        all(isinstance(item, kind) for item in items)


def window_sentence(doc: Document, sid: str, window: Window) -> Sentence:
    """What the stages read of a window: its tokens (joined by single spaces, as trained)."""
    return Sentence(sid, DOMAIN_NAME, [doc.text[s:e] for s, e in window.spans])


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
