"""Time CrossNER conversion and scoring, check that scoring scales linearly, and time the whole
seven-dataset suite (CrossNER's five + MIT Movie + MIT Restaurant test sets, 6,470 sentences):
convert, load and score in both modes, against a 3 s budget on 2 cores.

    python -m benchmarks.bench_data_and_scoring [--src ../shared/data/crossner]
                                                [--mit-src ../shared/data/mit] [--repeat 5]

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

from core.mappings import CROSSNER_DOMAINS
from core.records import Sentence, load_sentences
from data_prep import crossner, mit
from eval import gazetteer
from eval.score import Prediction, load_predictions, score

DEFAULT_SRC = Path(__file__).resolve().parents[2] / "shared" / "data" / "crossner"
DEFAULT_MIT_SRC = DEFAULT_SRC.parent / "mit"
SUITE_BUDGET_S = 3.0


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def convert_and_score_suite(src: Path, mit_src: Path, data: Path,
                            preds: dict[str, list[Prediction]],
                            laps: dict[str, list[float]] | None = None) -> int:
    """What the 3 s budget covers: convert the seven test splits, load them, score both modes
    (each step's seconds appended to ``laps`` when given)."""
    laps = {} if laps is None else laps
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        laps.setdefault(name, []).append(now - clock)
        clock = now

    crossner.convert(src, data / "crossner", splits=("test",))
    mit.convert(mit_src, data, splits=("test",))
    lap("convert")
    files = [data / "crossner" / d / "test.jsonl" for d in CROSSNER_DOMAINS]
    files += [data / d / "test.jsonl" for d in mit.DOMAINS]
    gold = [s for f in files for s in load_sentences(f)]
    lap("load")
    for mode in ("span", "string"):
        score(gold, preds, mode)
        lap(f"score {mode}")
    return len(gold)


def suite_predictions(src: Path, mit_src: Path, tmp: Path) -> dict[str, list[Prediction]]:
    """Gazetteer predictions for the seven test sets (train, plus dev where there is one)."""
    data = tmp / "suite-train"
    crossner.convert(src, data / "crossner")
    mit.convert(mit_src, data)
    dirs = {d: data / "crossner" / d for d in CROSSNER_DOMAINS}
    dirs.update({d: data / d for d in mit.DOMAINS})
    preds: dict[str, list[Prediction]] = {}
    for folder in dirs.values():
        train: list[Sentence] = [s for split in ("train", "dev")
                                 if (folder / f"{split}.jsonl").is_file()
                                 for s in load_sentences(folder / f"{split}.jsonl")]
        tagger = gazetteer.Gazetteer(train)
        for sentence in load_sentences(folder / "test.jsonl"):
            record = tagger.predict(sentence)
            preds[record["id"]] = [(e["text"], e["type"]) for e in record["entities"]]
    return preds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC)
    parser.add_argument("--mit-src", type=Path, default=DEFAULT_MIT_SRC,
                        help="MIT dir (movie/, restaurant/); the suite timing needs it")
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
        load_and_score = t_load + median_seconds(lambda: score(gold, preds, "span"), args.repeat)
        verdict = "OK" if load_and_score < 2.0 else "TOO SLOW"
        print(f"  load + score, span mode, 5 domains {load_and_score:7.3f} s  (target < 2 s: "
              f"{verdict})")

        if not args.mit_src.is_dir():
            print(f"seven-dataset suite: skipped (no MIT dir at {args.mit_src}; --mit-src)")
            return 0
        suite_preds = suite_predictions(args.src, args.mit_src, Path(tmp))
        sentences = convert_and_score_suite(args.src, args.mit_src, Path(tmp) / "s", suite_preds)
        laps: dict[str, list[float]] = {}
        t_suite = median_seconds(lambda: convert_and_score_suite(
            args.src, args.mit_src, Path(tmp) / "s", suite_preds, laps), args.repeat)
        verdict = "OK" if t_suite < SUITE_BUDGET_S else "TOO SLOW"
        print(f"seven test sets (CrossNER 5 + MIT Movie + MIT Restaurant): {sentences} sentences")
        for name, seconds in laps.items():
            print(f"  {name:<40} {statistics.median(seconds):7.3f} s")
        print(f"  convert + load + score (span and string) {t_suite:7.3f} s  "
              f"(target < {SUITE_BUDGET_S:.0f} s on 2 cores: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
