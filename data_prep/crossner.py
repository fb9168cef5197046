"""CrossNER BIO files → one JSONL sentence record per line (``core.records`` layout).

CrossNER (Liu et al. 2021, MIT) ships ``<domain>/<split>.txt`` with one ``token<TAB>tag`` per line
and a blank line between sentences. Tokens are kept exactly as given (pre-split, e.g. "Clash ' s"),
so ``text`` is the space-joined tokens and every gold span is token-aligned. Unlike UniNER's
converted files, an entity that ends on a sentence's last token is kept.

Malformed input fails with ``file:line``: a byte that is not UTF-8, a line without a tab, an
empty token or one containing whitespace (``text`` joins tokens with spaces, so such a token's
spans could never be found again), a tag that is not ``O``/``B-x``/``I-x``. An ``I-x`` that does
not continue an ``x`` entity fails too, unless ``--repair`` is given: then it starts a new ``x``
entity (the IOB1 reading of such a tag) and is counted. A file without a sentence fails naming
the file; a UTF-8 byte-order mark is dropped.

    python -m data_prep.crossner --src ../shared/data/crossner --out data/crossner
    python -m data_prep.crossner --out data/crossner   # downloads the pinned files first
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from core.bio import ConversionStats
from core.cli import make_parser, run
from core.io import DataError
from core.mappings import CROSSNER_DOMAINS
from core.sources import of_dataset
from data_prep.convert import off_size, print_summary, read_sources, write_parsed
from data_prep.download import download

SPLITS = ("train", "dev", "test")

# The five domains' raw folders and published sizes (sentences, entity spans): their domain
# YAML's source block (core/sources.py); a mismatch means a changed or cut file.
SOURCES = of_dataset("crossner")


def convert(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    domains: tuple[str, ...] = CROSSNER_DOMAINS,
    splits: tuple[str, ...] = SPLITS,
    repair: bool = False,
) -> dict[tuple[str, str], ConversionStats]:
    """Convert ``SRC/<domain>/<split>.txt`` to ``OUT/<domain>/<split>.jsonl``: every file is
    read and checked before the first is written (atomic writes)."""
    unknown = [d for d in domains if d not in SOURCES]
    if unknown:
        raise DataError(src, None, f"unknown CrossNER domain(s) {unknown} (have: "
                                   f"{', '.join(SOURCES)})")
    parsed = read_sources([SOURCES[d] for d in domains], src, splits, repair,
                          hint="file not found (is --src the CrossNER ner_data dir?)")
    return write_parsed(parsed, lambda domain: Path(out) / domain)


def check_published_counts(results: dict[tuple[str, str], ConversionStats]) -> list[str]:
    """Describe every converted split whose size differs from the published one."""
    return off_size(results, SOURCES)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--src", type=Path,
                        help="CrossNER ner_data dir (<domain>/<split>.txt); omit to download")
    parser.add_argument("--raw", type=Path, default=Path("data/raw/crossner"),
                        help="where downloaded BIO files go when --src is omitted")
    parser.add_argument("--out", required=True, help="output dir: OUT/<domain>/<split>.jsonl")
    parser.add_argument("--domains", nargs="+", default=list(CROSSNER_DOMAINS))
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--repair", action="store_true", help="turn orphan I-x tags into B-x")
    args = parser.parse_args(argv)

    def body() -> None:
        if args.src is None:
            fetched, present = download("crossner", args.raw)
            print(f"crossner: {fetched} files downloaded, {present} already verified ({args.raw})")
        src = args.src or args.raw
        results = convert(src, args.out, tuple(args.domains), tuple(args.splits), args.repair)
        print_summary(results, SOURCES, args.out)

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
