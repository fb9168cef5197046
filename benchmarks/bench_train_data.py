"""Time the SFT data converters on Pile-NER-sized inputs and show their peak memory.

    python -m benchmarks.bench_train_data [--data ../shared/data] [--passages 45889] [--scale 4]

Inputs are synthetic but shaped like the real ones, built in a temporary directory:

* Pile-NER (ShareGPT JSON array, ``--passages`` rows like Pile-NER-type's 45,889): SLIMER's 882
  real passages cycled, each with its own questions plus six more types from the sample's type
  list (three answered with words of the passage, three negative), and a copy number appended so
  every passage text is distinct.
* IEPile (JSON Lines, as many records): the five UniNER CrossNER eval files regrouped into
  sentences with their entities, types renamed to IEPile-style names (a part of them unknown to
  ``archetypes.yaml``, so ``--skip-unmapped`` is used), plus a dropped ``date`` type; cycled.
  It is converted once at 1x and once at ``--scale``x to show that memory stays flat.

Each conversion runs in a fresh child process, so ``ru_maxrss`` is that conversion's own peak.
Target: the Pile-NER-sized conversion in under 60 s on the 2-core dev machine.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SLIMER_NAME = "slimer_pileNER_5pos_5neg_top391NEs_FalseDef_validation.jsonl"
PILE_NER_PASSAGES = 45_889
# UniNER question names → IEPile-style fine types (unknown ones exercise --skip-unmapped).
IEPILE_TYPES = {
    "person": "person", "researcher": "person", "scientist": "person", "writer": "person",
    "politician": "person", "musical artist": "person", "organization": "organization",
    "band": "organization", "university": "organization", "political party": "organization",
    "location": "location", "country": "location", "event": "event", "election": "event",
    "product": "product", "song": "song", "album": "title", "book": "title", "poem": "title",
    "music genre": "genre", "literary genre": "genre", "program language": "language",
    "astronomical object": "astronomical object", "chemical compound": "Chemical",
    "musical instrument": "instrument", "protein": "protein", "enzyme": "protein",
}


def build_pile_ner(data: Path, out: Path, passages: int) -> dict[str, int]:
    lines = [json.loads(x) for x in (data / "pile_ner" / SLIMER_NAME).open(encoding="utf-8")]
    by_row: dict[str, list[dict[str, str]]] = defaultdict(list)
    for line in lines:
        by_row[line["doc_question_pairID"].split(":")[0]].append(line)
    rows = list(by_row.values())
    all_types = sorted({line["tagName"] for line in lines})
    rng = random.Random(0)
    questions = mentions = 0
    with out.open("w", encoding="utf-8") as handle:
        handle.write("[")
        for k in range(passages):
            qs = rows[k % len(rows)]
            text = f"{qs[0]['input']} (copy {k})"
            words = [w for w in text.split() if w.isalpha()] or ["copy"]
            qa = [(q["tagName"], q["output"]) for q in qs]
            for i, type_name in enumerate(rng.sample(all_types, 6)):
                picked = rng.sample(words, min(len(words), rng.randint(1, 3))) if i < 3 else []
                qa.append((type_name, json.dumps(picked, ensure_ascii=False)))
            turns = [{"from": "human", "value": "Text: " + text},
                     {"from": "gpt", "value": "I've read this text."}]
            for type_name, answer in qa:
                turns += [{"from": "human", "value": f"What describes {type_name} in the text?"},
                          {"from": "gpt", "value": answer}]
                mentions += len(json.loads(answer))
            questions += len(qa)
            handle.write(("," if k else "") + "\n" + json.dumps({"conversations": turns}))
        handle.write("\n]\n")
    return {"passages": passages, "questions": questions, "mentions": mentions}


def build_iepile(data: Path, out: Path, records: int) -> dict[str, int]:
    sentences: dict[str, dict[str, list[str]]] = {}
    for path in sorted((data / "uniner_eval").glob("CrossNER_*.json")):
        for row in json.loads(path.read_text(encoding="utf-8")):
            turns = row["conversations"]
            text = turns[0]["value"].removeprefix("Text: ")
            question = turns[2]["value"].removeprefix("What describes ").removesuffix(
                " in the text?")
            fine = IEPILE_TYPES.get(question, question)
            bucket = sentences.setdefault(text, {}).setdefault(fine, [])
            bucket += [m for m in json.loads(turns[3]["value"]) if m not in bucket]
    items = list(sentences.items())
    mentions = 0
    with out.open("w", encoding="utf-8") as handle:
        for k in range(records):
            text, output = items[k % len(items)]
            output = {**output, "date": []}
            mentions += sum(len(v) for v in output.values())
            instruction = {"instruction": "(benchmark)", "schema": list(output), "input": text}
            handle.write(json.dumps({
                "task": "NER", "source": "CrossNER",
                "instruction": json.dumps(instruction, ensure_ascii=False),
                "output": json.dumps(output, ensure_ascii=False)}, ensure_ascii=False) + "\n")
    return {"records": records, "mentions": mentions}


def child(kind: str, src: str, out: str) -> None:
    """Run one conversion in this (fresh) process and print its time and peak memory as JSON."""
    start = time.perf_counter()
    if kind == "pile_ner":
        from data_prep import pile_ner

        written = pile_ner.convert(src, out).passages_written
    else:
        from data_prep import iepile

        written = iepile.convert(src, out, skip_unmapped=True).records_written
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"seconds": seconds, "peak_mib": peak_mib, "written": written}))


def timed(kind: str, src: Path, out: Path) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_train_data", "--child", kind, str(src), str(out)],
        check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--passages", type=int, default=PILE_NER_PASSAGES)
    parser.add_argument("--scale", type=int, default=4,
                        help="IEPile size factor for the memory check")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "SRC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        pile_src, iepile_src = tmp_dir / "pile_ner.json", tmp_dir / "iepile.jsonl"
        iepile_big = tmp_dir / "iepile_big.jsonl"
        shape = build_pile_ner(args.data, pile_src, args.passages)
        ie_shape = build_iepile(args.data, iepile_src, args.passages)
        build_iepile(args.data, iepile_big, args.passages * args.scale)
        mib = {p: p.stat().st_size / 2**20 for p in (pile_src, iepile_src, iepile_big)}

        pile = timed("pile_ner", pile_src, tmp_dir / "explorer.json")
        ie = timed("iepile", iepile_src, tmp_dir / "classifier.jsonl")
        ie_big = timed("iepile", iepile_big, tmp_dir / "classifier_big.jsonl")

    print(f"Pile-NER input: {shape['passages']:,} passages, {shape['questions']:,} questions, "
          f"{shape['mentions']:,} answer strings, {mib[pile_src]:.0f} MiB")
    print(f"  pile_ner convert          {pile['seconds']:7.2f} s   peak {pile['peak_mib']:6.0f} MiB"
          f"   {pile['written']:,} records")
    print(f"IEPile input: {ie_shape['records']:,} records, {ie_shape['mentions']:,} mentions, "
          f"{mib[iepile_src]:.0f} MiB; x{args.scale}: {mib[iepile_big]:.0f} MiB")
    print(f"  iepile convert x1         {ie['seconds']:7.2f} s   peak {ie['peak_mib']:6.0f} MiB"
          f"   {ie['written']:,} records")
    print(f"  iepile convert x{args.scale:<2}        {ie_big['seconds']:7.2f} s   peak "
          f"{ie_big['peak_mib']:6.0f} MiB   {ie_big['written']:,} records")
    verdict = "OK" if pile["seconds"] < 60 else "TOO SLOW"
    print(f"Pile-NER-sized conversion {pile['seconds']:.1f} s (target < 60 s: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
