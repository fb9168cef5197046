"""Download pinned public datasets named in ``recipes/data_sources.yaml``, verifying sha256.

    python -m data_prep.download crossner --out data/raw/crossner
    python -m data_prep.download mit --out data/raw/mit

Files already present with the right checksum are skipped, so re-running is cheap. Each file is
written atomically after its checksum matched; a mismatch is an error naming file and both hashes.
``--url`` overrides the source URL template (``{commit}`` and ``{path}`` are filled in), e.g. a
mirror or a ``file://`` copy.
"""

from __future__ import annotations

import hashlib
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.cli import make_parser, run
from core.io import DataError, ProjectError, atomic_writer, read_yaml_mapping, sha256_of

SOURCES = Path(__file__).resolve().parent.parent / "recipes" / "data_sources.yaml"
CHUNK = 1 << 16


def load_source(name: str, sources: Path = SOURCES) -> dict[str, Any]:
    data = read_yaml_mapping(sources)
    if name not in data:
        raise ProjectError(f"{sources}: no source named {name!r} (have: {', '.join(data)})")
    return data[name]


def local_name(path: str, prefix: str = "ner_data/") -> str:
    """``ner_data/ai/test.txt`` → ``ai/test.txt``: the layout the converter reads (a source's
    ``local_prefix`` names what to drop, e.g. ``data/MIT/`` for MIT; CrossNER's by default)."""
    return path.removeprefix(prefix)


def fetch(url: str, target: Path, expected_sha256: str) -> None:
    """Stream ``url`` into ``target`` atomically; the file appears only if its sha256 matches."""
    digest = hashlib.sha256()
    try:
        with (
            urllib.request.urlopen(url, timeout=60) as response,
            atomic_writer(target, "wb") as out,
        ):
            while block := response.read(CHUNK):
                digest.update(block)
                out.write(block)
            got = digest.hexdigest()
            if got != expected_sha256:
                raise DataError(url, None, f"sha256 {got} != pinned {expected_sha256}")
    except (urllib.error.URLError, OSError) as exc:
        raise ProjectError(f"cannot download {url}: {exc}") from None


def download(name: str, out: Path, url: str | None = None) -> tuple[int, int]:
    """Fetch every pinned file of source ``name`` into ``out``; returns (fetched, already_there)."""
    source = load_source(name)
    if "files" not in source:
        raise ProjectError(f"{name!r} is a Hugging Face Hub dataset: fetch it with "
                           "`make data-train` (python -m data_prep.train_data)")
    template = url or source["url"]
    fetched = present = 0
    files = source["files"].items()
    for path, sha in tqdm(files, desc=f"download {name}", unit="file", disable=None):
        target = out / local_name(path, source.get("local_prefix", "ner_data/"))
        if target.is_file() and sha256_of(target) == sha:
            present += 1
            continue
        fetch(template.format(commit=source["commit"], path=path), target, sha)
        fetched += 1
    return fetched, present


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("source", help="a name in recipes/data_sources.yaml, e.g. crossner")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--url", help="URL template overriding the pinned one")
    args = parser.parse_args(argv)

    def body() -> None:
        fetched, present = download(args.source, args.out, args.url)
        license_ = load_source(args.source).get("license", "see upstream")
        print(f"{args.source}: {fetched} downloaded, {present} already verified, in {args.out} "
              f"(license: {license_})")

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
