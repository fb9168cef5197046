"""``make data``: every benchmark domain with a ``source`` block → ``DATA/<its dir>/<split>.jsonl``.

The domains' YAML (``core/sources.py``) says everything: the download entry, the converter, the
raw folder and columns, and the published sizes. Each dataset's files come from ``--src
NAME=DIR`` (a local copy) or are downloaded into ``--raw/NAME`` (pinned and verified,
``recipes/data_sources.yaml``). A dataset converts wholly or not at all: every split of every
domain is read and checked before the first file is written, so a broken test file leaves the
previous conversion as it was.

    python -m data_prep.convert --out data --src crossner=DIR mit=DIR   # local copies
    python -m data_prep.convert --out data --raw data/raw          # downloads what it needs
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from core.bio import ConversionStats, parse_bio
from core.cli import make_parser, run
from core.io import DataError, ProjectError
from core.records import Sentence, save_sentences
from core.registry import Registry
from core.sources import DatasetSource, dataset_sources, load_sources
from data_prep.download import download, load_source

Parsed = dict[tuple[str, str], tuple[list[Sentence], ConversionStats]]
Reader = Callable[[DatasetSource, Path, str, bool], tuple[list[Sentence], ConversionStats]]

# How a source's raw files are read, by the name its YAML gives as `converter`. A dataset in
# another format = one function here, registered under a new name.
CONVERTERS: Registry[Reader] = Registry("converter")


@CONVERTERS.register("bio")
def read_bio(source: DatasetSource, dataset_dir: Path, split: str, repair: bool
             ) -> tuple[list[Sentence], ConversionStats]:
    """``<dataset_dir>/<folder>/<split>.txt``, columns as the source's ``layout`` says."""
    return parse_bio(source.raw_file(dataset_dir, split), source.domain, split, repair=repair,
                     tag_first=source.tag_first)


def read_sources(sources: Iterable[DatasetSource], dataset_dir: str | os.PathLike[str],
                 splits: Iterable[str] | None = None, repair: bool = False,
                 hint: str = "file not found") -> Parsed:
    """Every (domain, split) of ``sources`` parsed, none written: the files are checked to exist
    first (naming the first missing one), then read; ``splits`` limits each source's own."""
    wanted = None if splits is None else set(splits)
    jobs = [(source, split) for source in sources for split in source.splits
            if wanted is None or split in wanted]
    for source, split in jobs:
        if source.converter not in CONVERTERS:
            raise ProjectError(f"{source.path}: source.converter: "
                               f"{CONVERTERS.unknown(source.converter)}")
        path = source.raw_file(dataset_dir, split)
        if not path.is_file():
            raise DataError(path, None, hint)
    return {(source.domain, split): CONVERTERS[source.converter](source, Path(dataset_dir),
                                                                  split, repair)
            for source, split in jobs}


def write_parsed(parsed: Parsed, out_dir: Callable[[str], Path]
                 ) -> dict[tuple[str, str], ConversionStats]:
    """Write every parsed split to ``out_dir(domain)/<split>.jsonl`` (each atomically)."""
    for (domain, split), (sentences, _) in parsed.items():
        save_sentences(out_dir(domain) / f"{split}.jsonl", sentences)
    return {key: stats for key, (_, stats) in parsed.items()}


def off_size(results: Mapping[tuple[str, str], ConversionStats],
             sources: Mapping[str, DatasetSource]) -> list[str]:
    """Every converted split whose size differs from its published one."""
    problems = []
    for (domain, split), stats in results.items():
        expected = sources[domain].published.get(split) if domain in sources else None
        if expected and (stats.sentences, stats.entities) != expected:
            problems.append(f"{domain}/{split}: {stats.sentences} sentences / {stats.entities} "
                            f"entities, published {expected[0]} / {expected[1]}")
    return problems


def print_summary(results: Mapping[tuple[str, str], ConversionStats],
                  sources: Mapping[str, DatasetSource], out: str | os.PathLike[str]) -> None:
    """Counts per file, then a warning per split whose size is not the published one."""
    for (domain, split), stats in results.items():
        fixed = stats.repaired_orphan_i
        repaired = f", {fixed} orphan I- tags repaired" if fixed else ""
        print(f"{domain:>14}/{split:<5} {stats.sentences:5d} sentences "
              f"{stats.entities:5d} entities{repaired}")
    for problem in off_size(results, sources):
        print(f"warning: {problem}", file=sys.stderr)
    print(f"wrote {len(results)} files under {out}")


def convert_all(out: Path, local: Mapping[str, Path], raw: Path,
                sources: Mapping[str, DatasetSource] | None = None,
                domains: Iterable[str] | None = None, repair: bool = False
                ) -> dict[tuple[str, str], ConversionStats]:
    """Every source (or those of ``domains``), dataset by dataset: a local copy from ``local``
    or a download into ``raw/<dataset>``, read wholly, then written under ``out``."""
    sources = dict((sources or dataset_sources()).items())
    if domains is not None:
        domains = list(domains)
        unknown = [d for d in domains if d not in sources]
        if unknown:
            raise ProjectError(f"no dataset source for {', '.join(unknown)} (have: "
                               f"{', '.join(sources)})")
        sources = {d: sources[d] for d in domains}
    results: dict[tuple[str, str], ConversionStats] = {}
    for dataset in dict.fromkeys(s.dataset for s in sources.values()):
        group = {d: s for d, s in sources.items() if s.dataset == dataset}
        folder = local.get(dataset)
        if folder is None:
            folder = raw / dataset
            fetched, present = download(dataset, folder)
            licence = load_source(dataset).get("license", "see recipes/data_sources.yaml")
            print(f"{dataset}: {fetched} files downloaded, {present} already verified "
                  f"({folder}); licence: {licence}")
        parsed = read_sources(group.values(), folder, repair=repair,
                              hint=f"file not found (is {folder} the {dataset} folder?)")
        results.update(write_parsed(parsed, lambda d, g=group: out / g[d].out_dir))
    return results


def _local_copies(items: list[str]) -> dict[str, Path]:
    local = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise ProjectError(f"--src {item!r}: expected DATASET=DIR (e.g. crossner=DIR)")
        local[name] = Path(folder)
    return local


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="data root, e.g. data")
    parser.add_argument("--src", nargs="*", default=[], metavar="DATASET=DIR",
                        help="local copies (crossner=DIR mit=DIR); other datasets are downloaded")
    parser.add_argument("--raw", type=Path, default=Path("data/raw"),
                        help="where downloads go: RAW/<dataset>/")
    parser.add_argument("--domains", nargs="+", help="only these domains (default: every source)")
    parser.add_argument("--domains-dir", type=Path,
                        help="read sources from this folder of domain YAMLs (default: mappings)")
    parser.add_argument("--repair", action="store_true", help="turn orphan I-x tags into B-x")
    args = parser.parse_args(argv)

    def body() -> None:
        local = _local_copies(args.src)
        sources = load_sources(args.domains_dir) if args.domains_dir else dataset_sources()
        results = convert_all(args.out, local, args.raw, sources, args.domains, args.repair)
        print_summary(results, dict(sources.items()), args.out)

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
