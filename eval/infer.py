"""Run the SAM-NER pipeline: ``make infer`` calls this.

    python -m eval.infer --config recipes/infer/llama3-8b.yaml [--domains music ai] [--limit 20]
        [--out runs/x] [--dp 2] [key=value ...]

One engine serves every domain and stage. The run directory keeps the resolved config and what
the run covered (``run.json``: domains, gold files, sentences, the definitions shown, the stage-2
``typing`` and, under ``adapters``, each adapter's path and ``training_data``). Running again
into the same directory resumes: a saved answer is reused only for the identical request (same
prompt ids, weights, decoding; see :mod:`eval.store`), anything that changed is generated again,
and the run says how many answers it reused and regenerated. One run at a time holds a
directory (a lock the OS releases when the process dies). ``--dp N`` starts N engine processes
on disjoint shards of the sentences and merges their outputs. Every file of a run lives under
its directory.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from core.cli import make_parser, run
from core.definitions import (
    SETTINGS,
    Definitions,
    apply_definitions,
    definitions_origin,
    load_definitions,
)
from core.io import iter_jsonl, write_jsonl, write_text_atomic
from core.leakage import find_leaks, gold_mentions
from core.mappings import Domain, load_archetypes, load_domain
from core.prompts import PROMPT_VERSION
from core.records import Sentence, load_sentences
from core.register import read_adapter_training_data
from eval.config import (
    ConfigError,
    InferenceConfig,
    ablation_output_dir,
    load_config,
    read_config_data,
)


def ablations(extractors: list[str]) -> dict[str, list[str]]:
    """The paper's ablations (Table 6) as config switches, generated from the config's
    extractors: ``no-<extractor>`` for each, ``no-ccr`` (union) and ``no-calibration`` (the
    paper's: no stage 3, the direct-typing classifier asked with the target label names);
    ``archetype-lookup`` keeps the archetype classifier and maps archetypes to labels by each
    domain's ``archetype_fallback`` table instead of calibrating."""
    generated = {f"no-{name}": [f"extractors.{name}.enabled=false"] for name in extractors}
    return generated | {"no-ccr": ["consensus.rule=union"],
                        "no-calibration": ["typing=direct", "calibration.enabled=false"],
                        "archetype-lookup": ["calibration.enabled=false"]}


def ablation_overrides(config_path: str, overrides: list[str], ablation: str) -> list[str]:
    """The overrides of ``--ablation`` for this config; an unknown one lists the valid ones."""
    extractors = read_config_data(config_path, overrides).get("extractors") or {}
    known = ablations(list(extractors))
    if ablation not in known:
        raise ConfigError(f"--ablation {ablation}: not an ablation of {config_path} "
                          f"(known: {', '.join(known)})")
    return known[ablation]


def lock_run_dir(out: Path):
    """Hold ``OUT/.lock`` for this process's lifetime; a second live run into OUT is refused.
    ``flock`` dies with its process, so a crashed run never leaves the directory stuck."""
    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / ".lock", "a+")  # noqa: SIM115 - kept open: the lock lives with it
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ConfigError(f"{out} is in use by a live run ({holder}); wait for it or use "
                          "another OUT") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle


def prepare_run_dir(config: InferenceConfig, work: dict[str, tuple[Domain, list[Sentence]]]
                    ) -> tuple[Path, Any]:
    """Lock OUT and record what this run covers. Called only after every check that can fail
    before a model loads, so a refused start leaves OUT as it was."""
    out = Path(config.output_dir)
    lock = lock_run_dir(out)
    covered = {
        domain.name: {"ref": ref, "gold": str(domain_gold(config, domain).resolve()),
                      "sentences": len(sentences), **domain_file_record(domain)}
        for ref, (domain, sentences) in work.items()}
    record = {"prompt_version": PROMPT_VERSION, "domains": covered,
              "limit": config.limit, "domain_limits": config.domain_limits,
              "definitions": definitions_record(config, work),
              "typing": config.typing, "adapters": adapters_record(config)}
    write_text_atomic(out / "run.json", json.dumps(record, indent=2))
    write_text_atomic(out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    return out, lock


def domain_file_record(domain: Domain) -> dict[str, Any]:
    """The domain file a run read and, for one written by ``make refine``, its ``refined:``
    block (which refine run, round and pilot its definitions came from)."""
    if domain.source is None:
        return {}
    return {"file": str(domain.source),
            **({"refined": domain.refined} if domain.refined else {})}


def adapters_record(config: InferenceConfig) -> dict[str, dict[str, Any]]:
    """Each adapter the run asks, by role: its path and what it was trained on (the
    ``samner_train_data.json`` that ``tools.train`` left in it; None for an adapter trained
    elsewhere, e.g. the public IEPile LoRA)."""
    return {role: {"path": adapter.path,
                   "training_data": read_adapter_training_data(adapter.path)}
            for role, adapter in config.adapters_by_role().items()}


def domain_gold(config: InferenceConfig, domain: Domain) -> Path:
    return domain.sentences_path(config.data_dir)


def run_definitions(config: InferenceConfig) -> Definitions | None:
    """The run's definitions file (``definitions``/``DEFINITIONS=``); None = domain defaults."""
    return load_definitions(config.definitions) if config.definitions else None


def definitions_record(config: InferenceConfig,
                       work: dict[str, tuple[Domain, list[Sentence]]]) -> dict[str, Any]:
    """Which label definitions the calibrator is shown, and, per domain, every gold mention of
    the domain's whole gold file that they (or the archetype definitions) quote
    (:mod:`core.leakage`); the report's first lines say when this is not the paper's
    setting. Defaults are checked in CI already; a file of the user's is checked here."""
    definitions = run_definitions(config)
    record = definitions.record() if definitions else {
        "source": "mappings/domains (each domain file's own definitions)", "sha256": None,
        "layout": "samner", "setting": "guidelines", "setting_means": SETTINGS["guidelines"],
        "paper_setting": True, "description": ""}
    archetypes = load_archetypes().definitions
    record["domains"] = {}
    for domain, _ in work.values():  # each already carries the run's definitions
        shown = {"labels": {tag: {"name": label.name, "definition": label.definition}
                            for tag, label in domain.labels.items()}, "archetypes": archetypes}
        gold = gold_mentions(load_sentences(domain_gold(config, domain)))
        record["domains"][domain.name] = {"from": definitions_origin(definitions, domain.name),
                                          "gold_strings_quoted": find_leaks(shown, gold)}
    return record


def domain_work(config: InferenceConfig, ref: str, shard: tuple[int, int] | None = None,
                definitions: Definitions | None = None) -> tuple[Domain, list[Sentence]]:
    """A domain (by name or path, with ``definitions``: the run's, see :func:`run_definitions`)
    and its sentences: the limit's first N, this shard's share."""
    domain, _ = apply_definitions(load_domain(ref), definitions)
    sentences = load_sentences(domain_gold(config, domain))
    limit = config.domain_limits.get(ref, config.domain_limits.get(domain.name, config.limit))
    sentences = sentences[:limit] if limit is not None else sentences
    if shard:
        index, count = shard
        sentences = sentences[index::count]
    return domain, sentences


def run_pipeline(config: InferenceConfig, shard: tuple[int, int] | None = None,
                 backend=None, make=None) -> dict[str, Path]:
    """Run every configured domain; returns the predictions file per domain.

    ``backend`` (the main model's) and ``make(config, model)`` (a backend for another base
    model) default to vLLM; tests pass fakes.
    """
    from eval.engine import make_backend
    from eval.pipeline import DomainRun, run_domains

    make = make or make_backend
    archetypes = load_archetypes()
    work = load_work(config, shard)  # fail early
    out, lock = prepare_run_dir(config, work)

    def runs(backend) -> list:
        return [(DomainRun(config, domain, archetypes, backend, out / domain.name), sentences)
                for domain, sentences in work.values()]

    try:
        for role, base in config.foreign_bases().items():
            # An extractor on another base (the Llama3 IEPile anchor in the Qwen setup): its
            # stage runs first on an engine of its own, which is then shut down; the main run
            # below finds every one of its answers saved and generates nothing for it.
            foreign = make(config, base)
            run_domains(runs(foreign), only=role)
            foreign.close()
            del foreign
        backend = backend or make(config, None)
        run_domains(runs(backend))
        written = {}
        for domain, sentences in work.values():
            written[domain.name] = out / domain.name / "predictions.jsonl"
            print(f"{domain.name}: {len(sentences)} sentences -> {written[domain.name]}")
        record_engine_stats(out, backend.stats())
    finally:
        lock.close()
    return written


def record_engine_stats(out: Path, stats: dict[str, Any]) -> None:
    """``engine_stats.json`` = this invocation's engine; ``engine_stats_history.jsonl`` keeps
    every invocation's, so a resumed or no-op re-run does not erase the first run's figures."""
    stamped = {"finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **stats}
    history = out / "engine_stats_history.jsonl"
    previous = [r for _, r in iter_jsonl(history)] if history.exists() else []
    write_jsonl(history, [*previous, stamped])
    write_text_atomic(out / "engine_stats.json", json.dumps(stats, indent=2))


def load_work(config: InferenceConfig, shard: tuple[int, int] | None = None
              ) -> dict[str, tuple[Domain, list[Sentence]]]:
    """Every configured domain and its sentences (this shard's), read before any model loads.
    A domain's run files go to ``OUT/<its name>``, whatever path it was given by (so none land
    beside a definition outside ``mappings/``): two domains may not share a name."""
    work: dict[str, tuple[Domain, list[Sentence]]] = {}
    definitions = run_definitions(config)  # read once for every domain
    for ref in config.domains:
        domain, sentences = domain_work(config, ref, shard, definitions)
        clash = next((r for r, (d, _) in work.items() if d.name == domain.name), None)
        if clash is not None:
            raise ConfigError(f"domains {clash!r} and {ref!r} share the name "
                              f"{domain.name!r}; give one of them another name")
        work[ref] = (domain, sentences)
    return work


def merge_shards(config: InferenceConfig, shard_dirs: list[Path]) -> None:
    """Concatenate the shards' per-stage files in the original sentence order (an answer saved
    by several shards once)."""
    out = Path(config.output_dir)
    for domain, sentences in load_work(config).values():
        name = domain.name
        order = {s.id: i for i, s in enumerate(sentences)}
        stats: list[dict[str, Any]] = []
        stages = sorted({f.stem for d in shard_dirs for f in (d / name).glob("*.jsonl")})
        for stage in stages:
            files = [d / name / f"{stage}.jsonl" for d in shard_dirs]
            records = [r for f in files if f.exists() for _, r in iter_jsonl(f)]
            if records and "hash" in records[0]:
                records = list({r["hash"]: r for r in records}.values())
            records.sort(key=lambda r: (order.get(r["id"], len(order)), r.get("key", "")))
            write_jsonl(out / name / f"{stage}.jsonl", records)
        for d in shard_dirs:
            stats.append(json.loads((d / name / "stats.json").read_text()))
        merged: dict[str, Any] = {"sentences": sum(s["sentences"] for s in stats), "stages": {}}
        for s in stats:
            for stage, counts in s["stages"].items():
                bucket = merged["stages"].setdefault(stage, {})
                for key, value in counts.items():
                    bucket[key] = bucket.get(key, 0) + value
        write_text_atomic(out / name / "stats.json", json.dumps(merged, indent=2))


def run_data_parallel(config: InferenceConfig, config_path: str, overrides: list[str],
                      dp: int) -> None:
    """Start ``dp`` shard processes, each on its TP GPUs taken in order from the visible set
    (a mask already set is split, never overwritten; eval/placement.py), wait, then merge."""
    from eval.placement import check_placement

    shards = check_placement(config)  # refused before anything is written or started
    _, lock = prepare_run_dir(config, load_work(config))
    shard_root = Path(config.output_dir) / "shards"
    processes = []
    for index, gpus in enumerate(shards):
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        command = [sys.executable, "-m", "eval.infer", "--config", config_path, *overrides,
                   "engine.data_parallel_size=1", f"output_dir={shard_root / str(index)}",
                   "--shard", f"{index}/{dp}"]
        processes.append(subprocess.Popen(command, env=env))
    try:
        failed = [i for i, p in enumerate(processes) if p.wait() != 0]
        if failed:
            raise ConfigError(f"data-parallel shard(s) {failed} failed; re-run to resume them")
        merge_shards(config, [shard_root / str(i) for i in range(dp)])
    finally:
        lock.close()


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--domains", nargs="+", help="override the config's domains")
    parser.add_argument("--limit", type=int, help="first N sentences per domain")
    parser.add_argument("--out", help="run directory (config: output_dir)")
    parser.add_argument("--dp", type=int, default=None, help="data-parallel engine processes")
    parser.add_argument("--ablation", metavar="NAME",
                        help="switch one component off: no-<extractor>, no-ccr, no-calibration "
                             "(direct typing, no stage 3), archetype-lookup (output dir gets "
                             "a -<ablation> suffix)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (shards, GPUs, what is missing); start nothing")
    parser.add_argument("--shard", help=argparse.SUPPRESS)  # set by --dp for its children
    parser.add_argument("overrides", nargs="*", help="key=value config overrides (dotted keys)")
    args = parser.parse_intermixed_args(argv)

    def body() -> None:
        overrides = list(args.overrides)
        if args.domains:
            overrides.append(f"domains={json.dumps(args.domains)}")
        if args.limit is not None:  # LIMIT=0 is an error, never "everything"
            overrides.append(f"limit={args.limit}")
        if args.out:
            overrides.append(f"output_dir={args.out}")
        if args.dp is not None:  # DP=0 is an error, never ignored
            overrides.append(f"engine.data_parallel_size={args.dp}")
        if args.ablation:
            overrides.extend(ablation_overrides(args.config, overrides, args.ablation))
        if args.dry_run:  # eval/plan.py: checks and prints, writes nothing
            from eval.plan import dry_run

            dry_run(args.config, overrides, None if args.out else args.ablation)
            return
        config = load_config(args.config, overrides)
        if args.ablation and not args.out:
            config.output_dir = ablation_output_dir(config.output_dir, args.ablation)
            overrides.append(f"output_dir={config.output_dir}")
        dp = config.engine.data_parallel_size
        if args.shard:
            index, count = (int(x) for x in args.shard.split("/"))
            run_pipeline(config, shard=(index, count))
        elif dp > 1:
            run_data_parallel(config, args.config, overrides, dp)
        else:
            run_pipeline(config)

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
