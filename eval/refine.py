"""``make refine``: disagreement-guided refinement of a domain's label definitions.

    python -m eval.refine --config recipes/refine/tiny-cpu.yaml --domain music \\
        [--limit 5] [--rounds 2] [--input my_texts/] [--out runs/refine/x] [key=value ...]

Beyond the paper (after DiZiNER, Kim & Yoon 2026): K annotators (SAM-NER pipelines that differ
in base model, extractors or calibrator, :mod:`eval.refine_config`) label the same unlabelled
pilot sentences; where they disagree a supervisor model rewrites the definitions of the labels
involved, and the annotators label again with them.

Round 0 labels the pilot with the domain's definitions as given. Each round r = 1..R then
  1. takes round r-1's disagreements (a mention typed differently, or found by some annotators
     only; :mod:`eval.agreement`) and shows a bounded sample of them, with the current
     definitions of the labels involved, to the supervisor, which answers one JSON object
     label -> new definition (constrained by the engine's JSON schema support);
  2. keeps what is usable of the answer (:mod:`eval.revisions`: not JSON, unknown labels, a
     dropped label or an empty definition keep the old definition and are counted) and rejects
     any revision that quotes a gold mention of a benchmark's test split, or copies what it
     was shown (a mention, a name or a run of words of a shown sentence: a definition made of
     the pilot's own text makes annotators agree without defining anything); both counted,
     with the strings;
  3. labels the pilot again with the revised definitions and measures pairwise agreement
     (entity F1 in string mode, per label, and Cohen's kappa over the mentions both found).
It stops after R rounds, when a round changed no definition, or (``stop_when_flat``) when
agreement did not rise. The definitions kept are those of the round with the highest mean
pairwise F1 (the earliest on a tie): chosen by agreement alone, never by F1 against gold.

Zero-shot stays zero: the pilot is the domain's train or dev split (``pilot.split``; never
test), read for its tokens only, or the user's own text (``--input``); no gold label is read.

Output (OUT): ``refined/<domain>.yaml`` (load it with ``DOMAIN=<path>``; a ``refined:`` block
says where it came from, and ``run.json`` of a later ``make infer`` records it), per round
``round-<r>/`` (``domain.yaml`` as used, ``predictions/<annotator>.jsonl``, ``agreement.json``,
``disagreements.jsonl``, ``supervisor.json``: the raw answer, what was kept, rejected and why,
``revisions.md``: each revised definition as a diff), ``rounds.json``, ``refine.md`` and
``agreement.png`` (agreement per round). Every LLM answer is saved by content (annotators under
``annotators/<name>/``, the supervisor in ``supervisor.jsonl``), so a re-run after a crash
repeats nothing, and a round whose definitions did not change costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.cli import make_parser, run
from core.documents import read_documents
from core.io import ConfigError, DataError, iter_jsonl, write_jsonl, write_text_atomic
from core.leakage import gold_mentions
from core.mappings import Archetypes, Domain, list_domains, load_archetypes, load_domain
from core.messages import Completion, Request
from core.prompts import supervisor_prompt
from core.records import Sentence, load_sentences
from core.templates import prompt_text, prompt_token_ids
from core.text import sentence_spans, token_spans
from eval.agreement import (
    Annotations,
    agreement,
    agreement_plot,
    disagreement_counts,
    disagreements,
    sample_disagreements,
)
from eval.config import InferenceConfig
from eval.infer import lock_run_dir
from eval.pipeline import DomainRun, request_context, run_domains
from eval.refine_config import Refine, load_refine_config, settings_dict
from eval.revisions import (
    apply_revisions,
    definition_diff,
    describe_disagreement,
    read_revisions,
    reject_copies,
    reject_leaks,
    supervisor_schema,
)
from eval.store import StageCall, StageStore, run_stages

REFINE_VERSION = 1  # bump when the loop's rules change what a run produces


class EnginePool:
    """Engines shared wherever they can be: a request for (base model, adapters, engine and
    sampling settings) is served by a started engine of the same model and settings whose
    adapters include the asked ones (each role at the same path), so an annotator with fewer
    extractors, and a supervisor on an annotator's base model, need no engine of their own.
    ``keep=False`` closes every engine at the end of each round (one GPU, several models)."""

    def __init__(self, make: Any, keep: bool) -> None:
        self.make, self.keep = make, keep
        self.backends: list[tuple[str, dict[str, str], Any]] = []  # (settings, adapters, engine)

    def get(self, config: InferenceConfig, model: str | None = None) -> Any:
        model = model or config.model
        data = config.to_dict()
        settings = json.dumps({"model": model, "engine": data["engine"],
                               "sampling": data["sampling"]}, sort_keys=True)
        adapters = {role: a.path for role, a in config.adapters(model).items()}
        for known, served, backend in self.backends:
            if known == settings and adapters.items() <= served.items():
                return backend
        backend = self.make(config, model if model != config.model else None)
        self.backends.append((settings, adapters, backend))
        return backend

    def end_round(self) -> None:
        if not self.keep:
            self.close()

    def close(self) -> None:
        for _, _, backend in self.backends:
            close = getattr(backend, "close", None)
            if close is not None:
                close()
        self.backends.clear()


@dataclass
class Round:
    number: int
    domain: Domain
    annotations: Annotations
    record: dict[str, Any]  # what rounds.json keeps of it


# --- the pilot ----------------------------------------------------------------------------------


def pilot_sentences(refine: Refine, domain: Domain, input_source: str | None
                    ) -> tuple[list[Sentence], str]:
    """The unlabelled pilot sentences and where they came from. A split file is read for ids and
    tokens only (its gold is never looked at); the test split is refused."""
    limit = refine.settings.pilot.limit
    source = input_source or refine.settings.pilot.input
    if source:
        sentences = []
        for doc in read_documents(source):
            for n, (start, end) in enumerate(sentence_spans(doc.text)):
                tokens = [doc.text[start + s:start + e]
                          for s, e in token_spans(doc.text[start:end])]
                if tokens:
                    sentences.append(Sentence(f"{doc.id}:{n}", domain.name, tokens))
        return sentences[:limit], f"{source} (first {limit} sentences)"
    split = refine.settings.pilot.split
    test = domain.sentences_path(refine.settings.data_dir)
    path = test.with_name(f"{split}.jsonl")
    if path.resolve() == test.resolve():
        raise ConfigError(f"{path}: is the domain's evaluation file; the pilot must be another "
                          "split (zero-shot means zero)")
    if not path.is_file():
        raise DataError(f"{path}: no {split} split of domain {domain.name!r} (make data writes "
                        "it; or give your own text with INPUT=)")
    sentences: list[Sentence] = []
    for line, record in iter_jsonl(path):
        if len(sentences) == limit:
            break
        tokens = record.get("tokens") if isinstance(record, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise DataError(f"{path}:{line}: a sentence record needs 'tokens', a list of strings")
        sentences.append(Sentence(str(record.get("id", f"{split}-{line}")), domain.name, tokens))
    return sentences, f"{path} (first {len(sentences)} sentences)"


def test_split_gold(refine: Refine, refined: Domain) -> tuple[set[str], list[str]]:
    """Every gold mention of the domain's own evaluation file and of every benchmark test split
    found under the data dir (the refined definitions must quote none), and the files read."""
    gold: set[str] = set()
    covered: list[str] = []
    for domain in [refined, *(load_domain(name) for name in list_domains())]:
        if not domain.sentences:
            continue
        path = domain.sentences_path(refine.settings.data_dir).resolve()
        if path.is_file() and str(path) not in covered:
            gold |= gold_mentions(load_sentences(path))
            covered.append(str(path))
    return gold, covered


# --- one round ----------------------------------------------------------------------------------


def annotate(refine: Refine, domain: Domain, archetypes: Archetypes, pilot: Sequence[Sentence],
             pool: EnginePool, out: Path) -> Annotations:
    """Every annotator labels the pilot; annotators on one engine go as one request stream per
    stage. Answers are saved by content under ``out/annotators/<name>/``."""
    groups: dict[int, list[tuple[str, DomainRun]]] = {}
    # the annotators with the most adapters first: their engines can then serve the others
    by_adapters = sorted(refine.annotators.items(), key=lambda item: -len(item[1].adapters(
        item[1].model)))
    for name, config in by_adapters:
        where = out / "annotators" / name
        for role, base in config.foreign_bases().items():  # e.g. a Llama anchor of a Qwen run
            foreign = pool.get(config, base)
            run_domains([(DomainRun(config, domain, archetypes, foreign, where), pilot)],
                        only=role)
        backend = pool.get(config)
        groups.setdefault(id(backend), []).append(
            (name, DomainRun(config, domain, archetypes, backend, where)))
    annotations: Annotations = {}
    for members in groups.values():
        results = run_domains([(run, pilot) for _, run in members])
        for (name, _), predictions in zip(members, results, strict=True):
            annotations[name] = {p["id"]: [(e["text"], e["type"]) for e in p["entities"]]
                                 for p in predictions or []}
    return {name: annotations[name] for name in refine.annotators}  # the config's order


def supervise(refine: Refine, domain: Domain, items: Sequence[Any], number: int,
              pool: EnginePool, out: Path) -> dict[str, Any]:
    """Ask the supervisor to revise the labels of a bounded sample of disagreements; returns its
    raw answer and what is usable of it (:func:`read_revisions`)."""
    sup = refine.settings.supervisor
    sample = sample_disagreements(items, sup.disagreements_shown)
    asked = [tag for tag in domain.labels if any(tag in d.tags for d in sample)]
    names = {tag: label.name for tag, label in domain.labels.items()}
    content = supervisor_prompt(
        domain.name, {names[t]: domain.labels[t].definition for t in asked},
        [names[t] for t in domain.labels if t not in asked],
        [(d.text, d.mention, describe_disagreement(d, names)) for d in sample])
    backend = pool.get(refine.supervisor, refine.supervisor_model)
    schema = supervisor_schema([names[t] for t in asked], sup.max_definition_chars)
    request = Request(f"round-{number}", prompt_token_ids(backend.tokenizer,
                                                          refine.supervisor_template, content),
                      None, sup.max_tokens, json_schema=json.dumps(schema, sort_keys=True),
                      sentence=f"round-{number}")

    def parse(_: Request, completion: Completion) -> tuple[dict[str, Any], str]:
        revisions = read_revisions(completion.text, asked, domain)
        return revisions.to_json(), "ok" if not revisions.problems else "problems"

    call = StageCall(StageStore(out / "supervisor.jsonl"), [request], parse,
                     lambda _: prompt_text(refine.supervisor_template, content))
    [records], _ = run_stages([call], backend, request_context(refine.supervisor, backend), 1,
                              f"supervisor, round {number}")
    record = records[request.key]
    return {"asked": asked, "shown": [d.to_json() for d in sample], "prompt": content,
            "finish_reason": record["finish_reason"], **record["parsed"]}


def revise(domain: Domain, data: dict[str, Any], answer: dict[str, Any], test_gold: set[str],
           folder: Path) -> tuple[Domain, dict[str, Any], dict[str, Any]]:
    """Apply the usable revisions that quote no test gold; write the round's domain file and
    its diffs. Returns the new domain, its YAML data and the round's account."""
    accepted, rejected = reject_leaks(answer["revised"], test_gold)
    # read_revisions already left out what equals the current definition (counted unchanged)
    changed, copies = reject_copies(accepted, [d["mention"] for d in answer["shown"]],
                                    [d["text"] for d in answer["shown"]])
    new_data = apply_revisions(data, changed)
    write_text_atomic(folder / "domain.yaml", "# written by eval.refine: the definitions this "
                      "round's annotators used\n" + yaml.safe_dump(new_data, sort_keys=False,
                                                                    allow_unicode=True))
    diffs = [definition_diff(tag, domain.labels[tag].definition, text)
             for tag, text in changed.items()]
    lines = [f"# Round {folder.name}: revised definitions", ""]
    lines += [f"```diff\n{diff}```\n" for diff in diffs] or ["No definition changed.", ""]
    lines += [f"- rejected `{tag}`: quotes test-split gold {leaks}" for tag, leaks
              in rejected.items()]
    lines += [f"- rejected `{tag}`: copies mentions it was shown {shown}" for tag, shown
              in copies.items()]
    lines += [f"- {note}" for note in answer["notes"]]
    write_text_atomic(folder / "revisions.md", "\n".join(lines) + "\n")
    account = {"changed": sorted(changed), "rejected_leaks": rejected, "rejected_copies": copies,
               "problems": answer["problems"], "unchanged": answer["unchanged"]}
    return load_domain(folder / "domain.yaml"), new_data, account


def measure(number: int, domain: Domain, annotations: Annotations, pilot: Sequence[Sentence],
            folder: Path) -> Round:
    """Agreement and disagreements of one round, written to its folder."""
    matrix = agreement(annotations, [s.id for s in pilot])
    items = disagreements(annotations, pilot)
    for name, by_id in annotations.items():
        write_jsonl(folder / "predictions" / f"{name}.jsonl",
                    [{"id": s.id, "entities": [{"text": m, "type": t}
                                               for m, t in by_id.get(s.id, [])]} for s in pilot])
    write_text_atomic(folder / "agreement.json", json.dumps(matrix.to_json(), indent=2))
    write_jsonl(folder / "disagreements.jsonl", [d.to_json() for d in items])
    record = {"round": number, "mean_f1": matrix.mean_f1, "mean_kappa": matrix.mean_kappa,
              "disagreements": len(items), "by_label": disagreement_counts(items),
              "agreement": matrix.to_json()}
    return Round(number, domain, annotations, {**record, "_items": items})


# --- the loop -----------------------------------------------------------------------------------


def refine_domain(config: str | os.PathLike[str], domain_ref: str, overrides: Sequence[str] = (),
                  out: str | None = None, limit: int | None = None, rounds: int | None = None,
                  input_source: str | None = None, make: Any = None) -> Path:
    """Run the loop (module doc); returns the refined domain file. ``make(config, model)``
    builds a backend (default: vLLM; tests pass fakes)."""
    from eval.engine import make_backend

    words = list(overrides)
    words += [f"output_dir={out}"] if out else []
    words += [f"pilot.limit={limit}"] if limit is not None else []
    words += [f"rounds={rounds}"] if rounds is not None else []
    refine = load_refine_config(config, words)
    domain = load_domain(domain_ref)
    pilot, pilot_source = pilot_sentences(refine, domain, input_source)
    if not pilot:
        raise DataError(f"{pilot_source}: no pilot sentence to label")
    test_gold, gold_files = test_split_gold(refine, domain)
    data = yaml.safe_load(Path(domain.source).read_text(encoding="utf-8"))
    archetypes = load_archetypes()
    folder = Path(refine.settings.output_dir)
    lock = lock_run_dir(folder)
    pool = EnginePool(make or make_backend, refine.settings.keep_engines)
    try:
        write_text_atomic(folder / "refine.yaml", yaml.safe_dump(settings_dict(refine),
                                                                 sort_keys=False))
        write_text_atomic(folder / "run.json", json.dumps(
            {"refine_version": REFINE_VERSION, "domain": str(domain.source),
             "pilot": pilot_source, "pilot_sentences": len(pilot),
             "leak_check_files": gold_files}, indent=2))
        history = loop(refine, domain, data, archetypes, pilot, test_gold, pool, folder)
    finally:
        pool.close()
        lock.close()
    return finish(refine, domain, history, folder, pilot_source)


def loop(refine: Refine, domain: Domain, data: dict[str, Any], archetypes: Archetypes,
         pilot: Sequence[Sentence], test_gold: set[str], pool: EnginePool, folder: Path
         ) -> list[tuple[Round, dict[str, Any]]]:
    """Round 0, then up to R revisions; each round's (measurements, definitions data)."""
    round_dir = folder / "round-0"
    write_text_atomic(round_dir / "domain.yaml", yaml.safe_dump(data, sort_keys=False,
                                                                allow_unicode=True))
    current = measure(0, domain, annotate(refine, domain, archetypes, pilot, pool, folder),
                      pilot, round_dir)
    pool.end_round()
    history = [(current, data)]
    report(history, folder, stopped="")
    for number in range(1, refine.settings.rounds + 1):
        round_dir = folder / f"round-{number}"
        items = current.record["_items"]
        if not items:
            return stop(history, folder, f"round {number - 1}: the annotators agree everywhere")
        answer = supervise(refine, current.domain, items, number, pool, folder)
        new_domain, new_data, account = revise(current.domain, history[-1][1], answer,
                                               test_gold, round_dir)
        write_text_atomic(round_dir / "supervisor.json", json.dumps(
            {**answer, **account}, indent=2, ensure_ascii=False))
        if not account["changed"]:
            pool.end_round()
            return stop(history, folder, f"round {number}: the supervisor changed no "
                        "definition")
        annotations = annotate(refine, new_domain, archetypes, pilot, pool, folder)
        pool.end_round()
        previous, current = current, measure(number, new_domain, annotations, pilot, round_dir)
        current.record.update(revised=account["changed"], problems=account["problems"],
                              rejected_leaks=sorted(account["rejected_leaks"]),
                              rejected_copies=sorted(account["rejected_copies"]))
        history.append((current, new_data))
        report(history, folder, stopped="")
        if refine.settings.stop_when_flat and current.record["mean_f1"] <= \
                previous.record["mean_f1"]:
            return stop(history, folder, f"round {number}: agreement did not rise "
                        f"({previous.record['mean_f1']:.4f} -> {current.record['mean_f1']:.4f})")
    return stop(history, folder, f"all {refine.settings.rounds} rounds done")


def stop(history: list[tuple[Round, dict[str, Any]]], folder: Path, why: str
         ) -> list[tuple[Round, dict[str, Any]]]:
    print(f"refine: stopped: {why}", file=sys.stderr)
    report(history, folder, stopped=why)
    return history


def best_round(history: Sequence[tuple[Round, dict[str, Any]]]) -> int:
    """The index of the round with the highest mean pairwise F1; the earliest on a tie (fewer
    changes for the same agreement). Agreement alone: no gold is read."""
    scores = [r.record["mean_f1"] for r, _ in history]
    return scores.index(max(scores))


def report(history: Sequence[tuple[Round, dict[str, Any]]], folder: Path, stopped: str) -> None:
    """rounds.json, agreement.png and refine.md, rewritten after every round."""
    rounds = [{k: v for k, v in r.record.items() if not k.startswith("_")} for r, _ in history]
    best = best_round(history)
    write_text_atomic(folder / "rounds.json", json.dumps(
        {"rounds": rounds, "kept_round": history[best][0].number, "stopped": stopped},
        indent=2))
    agreement_plot(rounds, folder / "agreement.png")
    lines = ["# Definition refinement", "",
             "Agreement of the annotators on the unlabelled pilot (no gold read): mean pairwise "
             "entity F1 (string mode) and mean Cohen's kappa over the mentions both found.", "",
             "| round | mean F1 | mean kappa | disagreements | revised labels |",
             "|---|---|---|---|---|"]
    for r in rounds:
        kappa = "n/a" if r["mean_kappa"] is None else f"{r['mean_kappa']:.3f}"
        lines.append(f"| {r['round']} | {r['mean_f1']:.3f} | {kappa} | {r['disagreements']} | "
                     f"{', '.join(r.get('revised', [])) or '-'} |")
    lines += ["", f"Kept: round {history[best][0].number} (highest agreement).",
              f"Stopped: {stopped or 'running'}.", "", "![agreement per round](agreement.png)",
              ""]
    write_text_atomic(folder / "refine.md", "\n".join(lines))


def finish(refine: Refine, domain: Domain, history: Sequence[tuple[Round, dict[str, Any]]],
           folder: Path, pilot_source: str) -> Path:
    """Write the kept round's definitions as a domain file loadable with ``DOMAIN=<path>``."""
    best = best_round(history)
    kept, data = history[best]
    refined = dict(data)
    refined["refined"] = {
        "from": str(domain.source), "run": str(folder), "round": kept.number,
        "mean_f1": kept.record["mean_f1"], "pilot": pilot_source,
        "annotators": list(refine.annotators), "supervisor": refine.supervisor_model,
        "refine_version": REFINE_VERSION}
    original = Path(domain.source).parent
    sentences = data.get("sentences")
    if isinstance(sentences, str) and (original / sentences).exists():
        refined["sentences"] = str((original / sentences).resolve())  # still found from here
    text = yaml.safe_dump(refined, sort_keys=False, allow_unicode=True)
    path = folder / "refined" / f"{domain.name}.yaml"
    write_text_atomic(path, f"# written by eval.refine from {domain.source}: the definitions "
                      f"of round {kept.number} (sha256 of the source file: "
                      f"{hashlib.sha256(Path(domain.source).read_bytes()).hexdigest()[:16]})\n"
                      + text)
    print(f"refine: kept round {kept.number} (mean pairwise F1 {kept.record['mean_f1']:.4f}) "
          f"-> {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--config", required=True, help="a refine config (recipes/refine/)")
    parser.add_argument("--domain", required=True, help="a domain name or its YAML file")
    parser.add_argument("--limit", type=int, help="pilot sentences (pilot.limit)")
    parser.add_argument("--rounds", type=int, help="supervisor revisions (rounds)")
    parser.add_argument("--input", help="your own pilot text instead of a train/dev split")
    parser.add_argument("--out", help="run directory (output_dir)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the refine config")
    args = parser.parse_intermixed_args(argv)

    def body() -> None:
        refine_domain(args.config, args.domain, args.overrides, args.out, args.limit,
                      args.rounds, args.input)

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
