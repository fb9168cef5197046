"""The three SAM-NER stages for one domain, on one backend, with artifacts and resume.

Files written under ``OUT/<domain>/`` (LLM stages are resumable, see :mod:`eval.store`)::

    stage1_<extractor>.jsonl LLM records of each extractor: prompt, raw, parsed, status
    stage1_discovery.jsonl   per sentence: each extractor's mentions, consensus drops, the rest
    stage2_classifier.jsonl  LLM records
    stage2_archetypes.jsonl  per sentence: tagged text, (mention, archetype) pairs
    stage3_calibration.jsonl LLM records (absent when calibration is off)
    predictions.jsonl        the scorer's format: {"id", "entities": [{"text", "type"}]}
    stats.json               per-stage counts of every failure, tokens and calls, and of
                             saved answers reused / regenerated (see :mod:`eval.store`)

With ``typing: direct`` (the paper's w/o-calibration ablation) stage 2 asks the direct-typing
classifier for the target labels and there is no stage 3: ``stage2_direct.jsonl`` (LLM records)
and ``stage2_direct_labels.jsonl`` (per sentence: tagged text, (mention, raw tag or null =
dropped) pairs) take the place of the ``stage2_classifier``, ``stage2_archetypes`` and
``stage3_calibration`` files; stats.json counts them under ``stage2_direct``.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter, defaultdict
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

from core.io import write_jsonl, write_text_atomic
from core.mappings import Archetypes, Domain
from core.messages import Backend, Request
from core.records import Sentence
from eval import calibration, discovery, mediation
from eval.config import InferenceConfig
from eval.identity import dir_digest
from eval.store import StageCall, StageStore, run_stages


def record_counts(records: dict[str, dict[str, Any]]) -> Counter[str]:
    """Parse statuses, truncations and token totals of one LLM stage."""
    counts: Counter[str] = Counter()
    for record in records.values():
        counts["requests"] += 1
        counts[f"status_{record['status']}"] += 1
        counts["truncated"] += record["finish_reason"] == "length"
        counts["prompt_tokens"] += record["prompt_tokens"]
        counts["output_tokens"] += record["output_tokens"]
        parsed = record["parsed"]
        if isinstance(parsed, dict) and "unknown_types" in parsed:  # extractor answers
            counts["off_schema_types"] += len(parsed["unknown_types"])
            counts["off_schema_mentions"] += parsed.get("off_schema_mentions", 0)
    return counts


def adapter_digests(config: InferenceConfig) -> dict[str, str | None]:
    """Each enabled adapter by content (weights ``.safetensors`` or ``.bin`` and its config), so
    an adapter retrained in place never reuses its old answers; None where there is no dir."""
    return {role: dir_digest(adapter.path) if adapter.path and Path(adapter.path).is_dir()
            else None for role, adapter in config.adapters_by_role().items()}


def request_context(config: InferenceConfig, backend: Backend) -> dict[str, Any]:
    """Everything besides the request itself that decides an answer: the backend's weights
    (by content) and the decoding and engine settings that change outputs. Batch size, TP and
    block size are left out: they change greedy answers only at the numerical-noise level
    (benchmarks/bench_vllm_batch_determinism.py), like vLLM's own batching does."""
    sampling, engine = config.sampling, config.engine
    return {"model": backend.identity(), "adapters": adapter_digests(config),
            "decoding": {"temperature": sampling.temperature, "top_p": sampling.top_p,
                         "repetition_penalty": sampling.repetition_penalty,
                         "seed": engine.seed},
            "engine": {"dtype": engine.dtype, "max_model_len": engine.max_model_len,
                       "extra": engine.extra}}


# What a domain's step asks for: (stage name, requests, parser); answered, per stage, with its
# records by request key and its counts (parse statuses, tokens, resume).
StageAsk = tuple[str, Sequence[Request], Any]
Answers = dict[str, tuple[dict[str, dict[str, Any]], Counter[str]]]
Steps = Generator[list[StageAsk], Answers, list[dict[str, Any]] | None]


class DomainRun:
    """One domain's three stages as a generator of LLM steps (:meth:`steps`), so that
    :func:`run_domains` can send the same step of every domain to the engine as one stream."""

    def __init__(self, config: InferenceConfig, domain: Domain, archetypes: Archetypes,
                 backend: Backend, out: Path) -> None:
        self.config, self.domain, self.archetypes = config, domain, archetypes
        self.backend, self.out = backend, out
        self.stats: dict[str, Counter[str]] = {}
        # where each mention came from, for callers that report it (eval.recognizer): the
        # discovery record and the (mention, archetype) pairs of each sentence
        self.discovered: dict[str, discovery.Discovery] = {}
        self.archetypes_of: dict[str, list[tuple[str, str]]] = {}

    def call(self, name: str, requests: Sequence[Request], parse) -> StageCall:
        tokenizer = self.backend.tokenizer
        return StageCall(StageStore(self.out / f"{name}.jsonl"), requests, parse,
                         lambda r: tokenizer.decode(r.prompt_ids))

    def take(self, answers: Answers, stage: str) -> dict[str, dict[str, Any]]:
        """A stage's records by request key; its counts go to this domain's stats."""
        records, self.stats[stage] = answers[stage]
        return records

    def steps(self, sentences: Sequence[Sentence], only: str | None = None) -> Steps:
        config, domain, tokenizer = self.config, self.domain, self.backend.tokenizer
        types = discovery.extractor_types(domain, config)

        # Stage 1: every extractor in one step (their requests share the engine's batches),
        # then the consensus rule. ``only`` = one extractor on a foreign engine, then stop.
        extractors = [name for name in config.active_extractors() if only in (None, name)]
        answers = yield [(f"stage1_{name}", discovery.extractor_requests(
            name, sentences, types, config, tokenizer), discovery.parse_extraction(types))
            for name in extractors]
        found_by = {name: discovery.collect(self.take(answers, f"stage1_{name}"), sentences)
                    for name in extractors}
        if only:
            return None
        found = [discovery.discover(s, {name: found_by[name][s.id] for name in extractors},
                                    config.consensus) for s in sentences]
        self.stats["stage1_discovery"] = discovery.discovery_counts(found)
        self.discovered = {r.id: r for r in found}
        write_jsonl(self.out / "stage1_discovery.jsonl", map(dataclasses.asdict, found))

        # Stage 2: archetypes of the tagged mentions (typing: direct = the target labels, and
        # no stage 3).
        tagged = {s.id: mediation.tag_sentence(s.text, r.mentions)
                  for s, r in zip(sentences, found, strict=True) if r.mentions}
        untagged = sum(len(r.mentions) - len(tagged.get(r.id, ("", []))[1]) for r in found)
        if config.typing == "direct":
            return (yield from self.direct_typing(sentences, tagged, untagged))
        answers = yield [("stage2_classifier", mediation.classifier_requests(
            [(sid, text) for sid, (text, _) in tagged.items()], self.archetypes.names, config,
            tokenizer), mediation.parse_classification)]
        records = self.take(answers, "stage2_classifier")
        counts = self.stats["stage2_classifier"]
        counts["overlapping_mentions_not_tagged"] += untagged
        assigned = mediation.collect(records, tagged, self.archetypes.names, counts)
        self.archetypes_of = assigned
        write_jsonl(self.out / "stage2_archetypes.jsonl", (
            {"id": sid, "tagged": tagged[sid][0], "archetypes": pairs}
            for sid, pairs in assigned.items()))

        # Stage 3: target labels (without calibration: each archetype's fallback label).
        records = None
        if config.calibration.enabled:
            answers = yield [("stage3_calibration", calibration.calibration_requests(
                [(s.id, s.text, assigned[s.id]) for s in sentences if s.id in assigned],
                domain, self.archetypes.definitions, config, tokenizer),
                calibration.label_parser(domain))]
            records = self.take(answers, "stage3_calibration")
        counts = self.stats.setdefault(
            "stage3_calibration" if records is not None else "stage3_fallback", Counter())
        labels = calibration.collect(records, assigned, domain, counts)
        return self.finish(sentences, {
            sid: [(mention, tag) for (mention, _), tag in zip(pairs, labels[sid], strict=True)]
            for sid, pairs in assigned.items()})

    def direct_typing(self, sentences: Sequence[Sentence],
                      tagged: Mapping[str, tuple[str, list[str]]], untagged: int) -> Steps:
        """Stage 2 without archetypes: the direct-typing classifier names each tagged mention's
        target label (:mod:`eval.mediation`); no stage 3."""
        answers = yield [("stage2_direct", mediation.direct_requests(
            [(sid, text) for sid, (text, _) in tagged.items()], self.domain, self.config,
            self.backend.tokenizer), mediation.parse_classification)]
        records = self.take(answers, "stage2_direct")
        counts = self.stats["stage2_direct"]
        counts["overlapping_mentions_not_tagged"] += untagged
        labelled = mediation.collect_direct(records, tagged, self.domain, counts)
        write_jsonl(self.out / "stage2_direct_labels.jsonl", (
            {"id": sid, "tagged": tagged[sid][0], "labels": pairs}
            for sid, pairs in labelled.items()))
        return self.finish(sentences, labelled)

    def finish(self, sentences: Sequence[Sentence],
               labelled: Mapping[str, Sequence[tuple[str, str | None]]]
               ) -> list[dict[str, Any]]:
        """Write predictions (None = dropped) and stats; returns the predictions."""
        predictions = [
            {"id": s.id, "entities": [{"text": mention, "type": tag}
                                      for mention, tag in labelled.get(s.id, [])
                                      if tag is not None]}
            for s in sentences
        ]
        write_jsonl(self.out / "predictions.jsonl", predictions)
        write_text_atomic(self.out / "stats.json", json.dumps(
            {"sentences": len(sentences), "stages": {k: dict(v) for k, v in self.stats.items()}},
            indent=2))
        return predictions


def run_domains(work: Sequence[tuple[DomainRun, Sequence[Sentence]]], only: str | None = None
                ) -> list[list[dict[str, Any]] | None]:
    """Run domains in lockstep: each step's requests of EVERY domain (all extractors together
    in stage 1) go to the engine as one stream, so it batches across domains and adapters and a
    run makes three generate streams, not several per domain. Records, resume and stats stay
    per domain. All runs share one backend; returns each domain's predictions. This function
    only sequences: each stage module builds its requests and reads its own records."""
    if not work:
        return []
    backend, config = work[0][0].backend, work[0][0].config
    context = request_context(config, backend)
    steps = [run.steps(sentences, only) for run, sentences in work]
    results: list[list[dict[str, Any]] | None] = [None] * len(work)
    asking: dict[int, list[StageAsk]] = {}

    def advance(i: int, answers: Answers | None) -> None:
        try:
            asking[i] = steps[i].send(answers)  # type: ignore[arg-type]
        except StopIteration as done:
            results[i] = done.value
            asking.pop(i, None)

    for i in range(len(work)):
        advance(i, None)
    while asking:
        calls = [(i, name, work[i][0].call(name, requests, parse))
                 for i, asks in asking.items() for name, requests, parse in asks]
        names = sorted({name for _, name, _ in calls})
        domains = ", ".join(work[i][0].domain.name for i in asking)
        label = f"{' + '.join(names)} [{domains}]"
        records, resumed = run_stages([call for _, _, call in calls], backend, context,
                                      config.engine.chunk_size, label)
        answers: dict[int, Answers] = defaultdict(dict)
        for (i, name, _), stage_records, counts in zip(calls, records, resumed, strict=True):
            answers[i][name] = (stage_records, record_counts(stage_records) + counts)
        total = sum(resumed, Counter())
        print(f"{label}: {sum(len(r) for r in records)} requests - {total['reused']} saved "
              f"answers reused, {total['regenerated']} regenerated (request changed), "
              f"{total['new']} new" + (f"; {total['bad_lines']} bad saved lines dropped"
                                       if total["bad_lines"] else ""))
        for i in list(asking):
            advance(i, answers[i])
    return results


def context_problems(config: InferenceConfig, domain: Domain, archetypes: Archetypes,
                     sentences: Sequence[Sentence], backend: Any, out: Path) -> dict[str, str]:
    """Sentence id -> why it does not fit ``engine.max_model_len``: the stage-1 requests exactly
    as the pipeline builds them, stage 2 and 3 bounded with the whole line as one mention (the
    longest archetype definition); each needs its prompt plus its answer budget. Nothing is
    generated or written: the requests are built and measured."""
    steps = DomainRun(config, domain, archetypes, backend, out).steps(sentences)
    asks = [(name, requests) for name, requests, _ in next(steps)]
    steps.close()  # nothing was generated or written
    tokenizer = backend.tokenizer
    longest = max(archetypes.names, key=lambda a: len(archetypes.definitions[a]))
    asks.append(("stage2_classifier", mediation.classifier_requests(
        [(s.id, mediation.tag_sentence(s.text, [s.text])[0]) for s in sentences],
        archetypes.names, config, tokenizer)))
    if config.calibration.enabled:
        asks.append(("stage3_calibration", calibration.calibration_requests(
            [(s.id, s.text, [(s.text, longest)]) for s in sentences], domain,
            archetypes.definitions, config, tokenizer)))
    limit = config.engine.max_model_len
    worst: dict[str, tuple[int, str]] = {}
    for stage, requests in asks:
        for r in requests:
            need = len(r.prompt_ids) + r.max_tokens
            if need > limit and need > worst.get(r.sentence, (0, ""))[0]:
                worst[r.sentence] = (need, f"over the model's context: {stage} needs "
                                           f"{len(r.prompt_ids)} prompt + {r.max_tokens} answer "
                                           f"tokens > engine.max_model_len {limit}")
    return {sid: reason for sid, (_, reason) in worst.items()}
