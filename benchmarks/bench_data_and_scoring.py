"""Time CrossNER conversion and scoring, and check that scoring scales linearly.

    python -m benchmarks.bench_data_and_scoring [--src ../shared/data/crossner] [--repeat 5]

Prints medians over ``--repeat`` runs (this machine's speed swings with its neighbours, so read
ratios measured in the same run, not absolute figures from different runs). Predictions come from
the gazetteer baseline, so the scorer sees realistic hits, misses and false positives.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from data_prep import crossner
from data_prep.mappings import CROSSNER_DOMAINS
from data_prep.records import load_sentences
from eval import gazetteer
from eval.score import load_predictions, score

DEFAULT_SRC = Path(__file__).resolve().parents[2] / "shared" / "data" / "crossner"


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scale", type=int, default=10, help="replication factor for scaling")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data, run = Path(tmp) / "crossner", Path(tmp) / "run"
        t_convert = median_seconds(lambda: crossner.convert(args.src, data), args.repeat)
        gazetteer.run(data, run, list(CROSSNER_DOMAINS))
        files = [data / d / "test.jsonl" for d in CROSSNER_DOMAINS]
        t_load = median_seconds(lambda: [load_sentences(f) for f in files], args.repeat)
        gold = [s for f in files for s in load_sentences(f)]
        preds = load_predictions(run / d / "predictions.jsonl" for d in CROSSNER_DOMAINS)

        # Replicate: copy k of every sentence under a new id; predictions follow their sentence.
        big_gold = [replace(s, id=f"{s.id}#{k}") for k in range(args.scale) for s in gold]
        big_preds = {f"{pid}#{k}": p for k in range(args.scale) for pid, p in preds.items()}

        print(f"CrossNER: {len(gold)} test sentences, {sum(len(s.entities) for s in gold)} spans; "
              f"median of {args.repeat} runs")
        print(f"  convert all 15 BIO files          {t_convert:7.3f} s")
        print(f"  load 5 test JSONL files            {t_load:7.3f} s")
        for mode in ("span", "string"):
            t1 = median_seconds(lambda m=mode: score(gold, preds, m), args.repeat)
            tk = median_seconds(lambda m=mode: score(big_gold, big_preds, m), args.repeat)
            print(f"  score {mode:<6} x1  ({len(gold):6d} sentences) {t1:7.3f} s")
            print(f"  score {mode:<6} x{args.scale:<2} ({len(big_gold):6d} sentences) {tk:7.3f} s"
                  f"   ratio {tk / t1:5.2f} (linear = {args.scale})")
        load_and_score = t_load + median_seconds(lambda: score(gold, preds), args.repeat)
        verdict = "OK" if load_and_score < 2.0 else "TOO SLOW"
        print(f"  load + score, span mode, 5 domains {load_and_score:7.3f} s  (target < 2 s: "
              f"{verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
