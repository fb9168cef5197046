"""A train-split gazetteer baseline: a floor every learned system must beat.

Every entity string of the training split(s) is remembered with its most frequent type; a test
sentence is tagged by greedy longest-match over its tokens (non-overlapping, left to right).
It needs no model, so it proves the data → prediction → scorer path end to end on any machine.

    python -m eval.gazetteer --train data/crossner/music/train.jsonl \
        --test data/crossner/music/test.jsonl --out runs/gazetteer/music/predictions.jsonl
"""

from __future__ import annotations

import os
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable

from data_prep import cli
from data_prep.cli import make_parser
from data_prep.io import write_jsonl
from data_prep.records import Sentence, load_sentences


class Gazetteer:
    def __init__(self, train: Iterable[Sentence]) -> None:
        votes: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
        for sentence in train:
            for span in sentence.entities:
                votes[tuple(sentence.tokens[span.start:span.end])][span.type] += 1
        # Ties go to the alphabetically first type so results never depend on file order.
        self.entries = {k: min(c, key=lambda t: (-c[t], t)) for k, c in votes.items()}
        self.max_len = max((len(k) for k in self.entries), default=0)

    def tag(self, tokens: list[str]) -> list[tuple[int, int, str]]:
        spans, i = [], 0
        while i < len(tokens):
            for n in range(min(self.max_len, len(tokens) - i), 0, -1):
                etype = self.entries.get(tuple(tokens[i:i + n]))
                if etype is not None:
                    spans.append((i, i + n, etype))
                    i += n
                    break
            else:
                i += 1
        return spans

    def predict(self, sentence: Sentence) -> dict:
        """A prediction record in the scorer's format (mention strings, as an LLM would write)."""
        spans = self.tag(sentence.tokens)
        entities = [{"text": sentence.span_text(s, e), "type": t} for s, e, t in spans]
        return {"id": sentence.id, "entities": entities}


def run(train_paths: list[str], test_path: str, out_path: str | os.PathLike[str]) -> int:
    gazetteer = Gazetteer(s for path in train_paths for s in load_sentences(path))
    return write_jsonl(out_path, (gazetteer.predict(s) for s in load_sentences(test_path)))


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--train", nargs="+", required=True, help="sentence JSONL(s) to learn from")
    parser.add_argument("--test", required=True, help="sentence JSONL to tag")
    parser.add_argument("--out", required=True, help="prediction JSONL to write")
    args = parser.parse_args(argv)

    def body() -> None:
        count = run(args.train, args.test, args.out)
        print(f"gazetteer: {count} predictions -> {args.out}")

    return cli.run(body)


if __name__ == "__main__":
    sys.exit(main())
