"""MIT Movie and MIT Restaurant BIO files → the project's sentence JSONL, as domains.

The two MIT SLS query corpora (Liu et al. 2013) are the other two test sets of the standard
seven-dataset zero-shot NER suite (CrossNER's five + these). Their original layout is
``TAG<TAB>token`` (tag first, unlike CrossNER), a blank line between sentences, and there is no
dev split: MIT ships train and test only. Parsing is :func:`core.bio.parse_bio` with
the columns swapped, so the same rules hold (located errors, ``--repair`` for orphan ``I-`` tags).

``SRC/movie/<split>.txt`` → ``OUT/mit_movie/<split>.jsonl`` and ``SRC/restaurant/<split>.txt`` →
``OUT/mit_restaurant/<split>.jsonl``; sentence ids are ``mit_movie-test-0`` like CrossNER's.
``OUT`` is the data root (``data``), beside ``data/crossner``, where the domain files'
``sentences:`` point. Raw tags are kept as given (``ACTOR``, ``RATINGS_AVERAGE``,
``Restaurant_Name``); the natural names models see live in ``mappings/domains/mit_*.yaml``.

MIT SLS states no licence for these corpora: research use only; cite the MIT SLS papers.

    python -m data_prep.mit --src ../shared/data/mit --out data
    python -m data_prep.mit --out data   # downloads the pinned files (recipes/data_sources.yaml)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from core.bio import ConversionStats
from core.cli import make_parser, run
from core.io import DataError
from core.sources import of_dataset
from data_prep.convert import print_summary, read_sources, write_parsed
from data_prep.download import download

# The MIT domains and their raw folders and published sizes (sentences, entity spans; PROVENANCE
# section 6, checked against three independent copies) come from their domain YAML's source
# block (core/sources.py): a mismatch means a changed or cut file.
_SOURCES = of_dataset("mit")
DOMAINS = {name: source.folder for name, source in _SOURCES.items()}
SPLITS = ("train", "test")
EXPECTED_COUNTS = {(name, split): n for name, source in _SOURCES.items()
                   for split, n in source.published.items()}


def convert(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    domains: tuple[str, ...] = tuple(DOMAINS),
    splits: tuple[str, ...] = SPLITS,
    repair: bool = False,
) -> dict[tuple[str, str], ConversionStats]:
    """Convert ``SRC/<movie|restaurant>/<split>.txt`` to ``OUT/<domain>/<split>.jsonl``; every
    source file is checked and read before the first is written."""
    unknown = [d for d in domains if d not in DOMAINS]
    if unknown:
        raise DataError(src, None, f"unknown MIT domain(s) {unknown} (have: {', '.join(DOMAINS)})")
    parsed = read_sources([_SOURCES[d] for d in domains], src, splits, repair,
                          hint="file not found (is --src the MIT dir with movie/ and "
                               "restaurant/?)")
    return write_parsed(parsed, lambda domain: Path(out) / domain)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--src", type=Path,
                        help="MIT dir (movie/ and restaurant/ with <split>.txt); omit to download")
    parser.add_argument("--raw", type=Path, default=Path("data/raw/mit"),
                        help="where downloaded BIO files go when --src is omitted")
    parser.add_argument("--out", required=True, help="data root: OUT/<domain>/<split>.jsonl")
    parser.add_argument("--domains", nargs="+", default=list(DOMAINS), choices=list(DOMAINS))
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--repair", action="store_true", help="turn orphan I-x tags into B-x")
    args = parser.parse_args(argv)

    def body() -> None:
        if args.src is None:
            fetched, present = download("mit", args.raw)
            print(f"mit: {fetched} files downloaded, {present} already verified ({args.raw}); "
                  "no licence stated by MIT SLS: research use")
        results = convert(args.src or args.raw, args.out, tuple(args.domains),
                          tuple(args.splits), args.repair)
        print_summary(results, _SOURCES, args.out)

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
