"""Run the SAM-NER pipeline: ``make infer`` calls this.

    python -m eval.infer --config recipes/infer/llama3-8b.yaml [--domains music ai] [--limit 20]
        [--out runs/x] [--dp 2] [key=value ...]

One engine serves every domain and stage. The run directory keeps the resolved config; running
again into the same directory resumes (saved requests are never generated again), and a changed
config that would make saved outputs stale is refused. ``--dp N`` starts N engine processes on
disjoint shards of the sentences (one GPU each when GPUs are present) and merges their outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from data_prep.cli import make_parser, run
from data_prep.io import iter_jsonl, sha256_of, write_jsonl, write_text_atomic
from data_prep.mappings import load_archetypes, load_domain
from data_prep.records import Sentence, load_sentences
from eval.config import ConfigError, InferenceConfig, load_config

STAGE_FILES = ("stage1_anchor", "stage1_explorer", "stage1_discovery", "stage2_classifier",
               "stage2_archetypes", "stage3_calibration", "predictions")
# Settings that change what the model outputs: a saved run with other values would be stale.
# The paper's ablations (Table 6), as config switches.
ABLATIONS = {
    "no-anchor": ["anchor_adapter.enabled=false"],
    "no-explorer": ["explorer_adapter.enabled=false"],
    "no-ccr": ["ccr.rule=none"],
    "no-calibration": ["calibration.enabled=false"],
}
OUTPUT_KEYS = ("model", "calibrator_template", "anchor_adapter", "explorer_adapter",
               "classifier_adapter", "anchor", "extraction", "ccr", "calibration", "sampling")


def adapter_weights_sha256(config: InferenceConfig) -> dict[str, str | None]:
    """The adapters' weights by content: an adapter retrained in place makes saved answers
    stale even though its path is the same. (Hub adapters not yet fetched: None.)"""
    digests: dict[str, str | None] = {}
    for role in ("anchor", "explorer", "classifier"):
        adapter = getattr(config, f"{role}_adapter")
        weights = Path(adapter.path) / "adapter_model.safetensors" if adapter.path else None
        enabled = adapter.enabled and weights is not None and weights.is_file()
        digests[role] = sha256_of(weights) if enabled else None
    return digests


def fingerprint(config: InferenceConfig) -> dict[str, Any]:
    data = config.to_dict()
    return {k: data[k] for k in OUTPUT_KEYS} | {
        "seed": config.engine.seed, "dtype": config.engine.dtype,
        "adapter_weights_sha256": adapter_weights_sha256(config)}


def prepare_run_dir(config: InferenceConfig) -> Path:
    """Create the run dir or check that its saved config matches (resume safety)."""
    out = Path(config.output_dir)
    saved = out / "run.json"
    current = fingerprint(config)
    if saved.exists():
        previous = json.loads(saved.read_text())
        changed = sorted(k for k in current.keys() | previous.keys()
                         if current.get(k) != previous.get(k))
        if changed:
            raise ConfigError(f"{out} holds a run made with other settings ({', '.join(changed)}); "
                              "use a new output dir or delete it")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(saved, json.dumps(current, indent=2))
    write_text_atomic(out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    return out


def domain_sentences(config: InferenceConfig, name: str, shard: tuple[int, int] | None = None
                     ) -> list[Sentence]:
    sentences = load_sentences(load_domain(name).sentences_path(config.data_dir))
    limit = config.domain_limits.get(name, config.limit)
    sentences = sentences[:limit] if limit else sentences
    if shard:
        index, count = shard
        sentences = sentences[index::count]
    return sentences


def run_pipeline(config: InferenceConfig, shard: tuple[int, int] | None = None,
                 backend=None, make=None) -> dict[str, Path]:
    """Run every configured domain; returns the predictions file per domain.

    ``backend`` (the main model's) and ``make(config, model)`` (a backend for another base
    model) default to vLLM; tests pass fakes.
    """
    from eval.engine import make_backend
    from eval.pipeline import DomainRun, run_domains

    make = make or make_backend
    out = prepare_run_dir(config)
    archetypes = load_archetypes()
    work = {name: domain_sentences(config, name, shard) for name in config.domains}  # fail early
    for role, base in config.foreign_bases().items():
        # An extractor on another base (the Llama3 IEPile anchor in the Qwen setup): its stage
        # runs first on an engine of its own, which is then shut down; the main run below finds
        # every one of its answers saved and generates nothing for it.
        foreign = make(config, base)
        run_domains([(DomainRun(config, load_domain(name), archetypes, foreign, out / name),
                      sentences) for name, sentences in work.items()], only=role)
        foreign.close()
        del foreign
    backend = backend or make(config, None)
    run_domains([(DomainRun(config, load_domain(name), archetypes, backend, out / name),
                  sentences) for name, sentences in work.items()])
    written = {}
    for name, sentences in work.items():
        written[name] = out / name / "predictions.jsonl"
        print(f"{name}: {len(sentences)} sentences -> {written[name]}")
    record_engine_stats(out, backend.stats())
    return written


def record_engine_stats(out: Path, stats: dict[str, Any]) -> None:
    """``engine_stats.json`` = this invocation's engine; ``engine_stats_history.jsonl`` keeps
    every invocation's, so a resumed or no-op re-run does not erase the first run's figures."""
    stamped = {"finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **stats}
    history = out / "engine_stats_history.jsonl"
    previous = [r for _, r in iter_jsonl(history)] if history.exists() else []
    write_jsonl(history, [*previous, stamped])
    write_text_atomic(out / "engine_stats.json", json.dumps(stats, indent=2))


def merge_shards(config: InferenceConfig, shard_dirs: list[Path]) -> None:
    """Concatenate the shards' per-stage files in the original sentence order."""
    out = Path(config.output_dir)
    for name in config.domains:
        order = {s.id: i for i, s in enumerate(domain_sentences(config, name))}
        stats: list[dict[str, Any]] = []
        for stage in STAGE_FILES:
            files = [d / name / f"{stage}.jsonl" for d in shard_dirs]
            if not any(f.exists() for f in files):
                continue
            records = [r for f in files if f.exists() for _, r in iter_jsonl(f)]
            records.sort(key=lambda r: (order[r["id"]], r.get("key", "")))
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
    """Start ``dp`` shard processes (one GPU each if any), wait, then merge their outputs."""
    from eval.engine import on_gpu

    prepare_run_dir(config)
    shard_root = Path(config.output_dir) / "shards"
    gpu = on_gpu()
    processes = []
    for index in range(dp):
        env = dict(os.environ)
        if gpu:
            env["CUDA_VISIBLE_DEVICES"] = str(index)
        command = [sys.executable, "-m", "eval.infer", "--config", config_path, *overrides,
                   "engine.data_parallel_size=1", f"output_dir={shard_root / str(index)}",
                   "--shard", f"{index}/{dp}"]
        processes.append(subprocess.Popen(command, env=env))
    failed = [i for i, p in enumerate(processes) if p.wait() != 0]
    if failed:
        raise ConfigError(f"data-parallel shard(s) {failed} failed; re-run to resume them")
    merge_shards(config, [shard_root / str(i) for i in range(dp)])


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--domains", nargs="+", help="override the config's domains")
    parser.add_argument("--limit", type=int, help="first N sentences per domain")
    parser.add_argument("--out", help="run directory (config: output_dir)")
    parser.add_argument("--dp", type=int, default=None, help="data-parallel engine processes")
    parser.add_argument("--ablation", choices=sorted(ABLATIONS),
                        help="switch one component off (output dir gets a -<ablation> suffix)")
    parser.add_argument("--shard", help=argparse.SUPPRESS)  # set by --dp for its children
    parser.add_argument("overrides", nargs="*", help="key=value config overrides (dotted keys)")
    args = parser.parse_intermixed_args(argv)

    def body() -> None:
        overrides = list(args.overrides)
        if args.domains:
            overrides.append(f"domains={json.dumps(args.domains)}")
        if args.limit:
            overrides.append(f"limit={args.limit}")
        if args.out:
            overrides.append(f"output_dir={args.out}")
        if args.dp:
            overrides.append(f"engine.data_parallel_size={args.dp}")
        if args.ablation:
            overrides.extend(ABLATIONS[args.ablation])
        config = load_config(args.config, overrides)
        if args.ablation and not args.out:
            config.output_dir = f"{config.output_dir.rstrip('/')}-{args.ablation}"
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
