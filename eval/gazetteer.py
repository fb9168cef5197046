"""A train-split gazetteer baseline: a floor every learned system must beat.

Every entity string of the training split(s) is remembered with its most frequent type; a test
sentence is tagged by greedy longest-match over its tokens (non-overlapping, left to right).
It needs no model, so it proves the data → prediction → scorer path end to end on any machine.

    python -m eval.gazetteer --data data/crossner --out runs/gazetteer [--domains music ai]

learns from ``DATA/<domain>/{train,dev}.jsonl`` and writes ``OUT/<domain>/predictions.jsonl``
for ``DATA/<domain>/test.jsonl``.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from core import cli
from core.cli import make_parser
from core.io import write_jsonl
from core.mappings import CROSSNER_DOMAINS
from core.records import Sentence, load_sentences


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


def run(data: Path, out: Path, domains: list[str]) -> dict[str, int]:
    """Tag every domain's test split; returns the number of prediction records per domain."""
    written = {}
    for domain in domains:
        split_dir = data / domain
        gazetteer = Gazetteer(s for split in ("train", "dev")
                              for s in load_sentences(split_dir / f"{split}.jsonl"))
        test = load_sentences(split_dir / "test.jsonl")
        predictions = map(gazetteer.predict, test)
        written[domain] = write_jsonl(out / domain / "predictions.jsonl", predictions)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--data", required=True, type=Path, help="converted CrossNER dir")
    parser.add_argument("--out", required=True, type=Path, help="run dir for predictions")
    parser.add_argument("--domains", nargs="+", default=list(CROSSNER_DOMAINS))
    args = parser.parse_args(argv)

    def body() -> None:
        for domain, count in run(args.data, args.out, args.domains).items():
            print(f"gazetteer: {domain}: {count} predictions -> {args.out / domain}")

    return cli.run(body)


if __name__ == "__main__":
    sys.exit(main())
