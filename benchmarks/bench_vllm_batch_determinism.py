"""How often vLLM's batch composition changes greedy answers (what a resumed run may differ by).

    python -m benchmarks.bench_vllm_batch_determinism [--config recipes/infer/tiny-cpu.yaml]
        [--domain music] [--limit 20] [--out runs/determinism]

Runs the pipeline twice on the same sentences: once with every stage in one batch
(engine.chunk_size large) and once in small chunks with a small max_num_seqs, which is what a
killed-and-resumed run looks like to vLLM. Then it compares every stage's raw answers key by key
and prints how many differ. Greedy decoding is deterministic per batch; across batch shapes,
floating-point reduction order can flip a near-tie. Run with the dev python; it starts
``.venv/infer`` processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("stage1_anchor", "stage1_explorer", "stage2_classifier", "stage3_calibration")


def run(config: str, domain: str, limit: int, out: Path, *overrides: str) -> float:
    python = os.environ.get("SAMNER_INFER_PYTHON", str(REPO / ".venv" / "infer" / "bin" / "python"))
    command = [python, "-m", "eval.infer", "--config", config, "--domains", domain,
               "--limit", str(limit), "--out", str(out), *overrides]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode != 0:
        sys.exit(f"run failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def records(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return {r["key"]: r["raw"] for r in map(json.loads, path.read_text().splitlines())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="recipes/infer/tiny-cpu.yaml")
    parser.add_argument("--domain", default="music")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("runs/determinism"))
    args = parser.parse_args()

    one_batch, chunked = args.out / "one-batch", args.out / "chunked"
    t1 = run(args.config, args.domain, args.limit, one_batch, "engine.chunk_size=100000")
    t2 = run(args.config, args.domain, args.limit, chunked, "engine.chunk_size=3",
             "engine.max_num_seqs=4")
    print(f"{args.domain}, {args.limit} sentences; one batch {t1:.0f} s, chunks of 3 {t2:.0f} s")
    print(f"{'stage':<20} {'compared':>8} {'differ':>7}")
    total = differ = 0
    for stage in STAGES:
        a = records(one_batch / args.domain / f"{stage}.jsonl")
        b = records(chunked / args.domain / f"{stage}.jsonl")
        keys = a.keys() & b.keys()
        n = sum(a[k] != b[k] for k in keys)
        total, differ = total + len(keys), differ + n
        print(f"{stage:<20} {len(keys):>8} {n:>7}")
    same = ((one_batch / args.domain / "predictions.jsonl").read_text()
            == (chunked / args.domain / "predictions.jsonl").read_text())
    print(f"{'all stages':<20} {total:>8} {differ:>7}   final predictions identical: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
