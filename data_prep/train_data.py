"""The SFT data of both LoRA adapters in one step (``make data-train``): fetch, convert, register.

    python -m data_prep.train_data --out data/train [--pile-ner FILE] [--iepile FILE] [--limit N]

* explorer: Pile-NER (``Universal-NER/Pile-NER-type``, ``train.json``: ShareGPT rows) →
  ``OUT/explorer.json`` via :mod:`data_prep.pile_ner`, and the same passages in the authors'
  explorer layout (``--prompt-format authors``) → ``OUT/explorer_authors.json``;
* archetype classifier: IEPile (``zjunlp/iepile``, ``train.json``: the instruction-format
  records of every task and both languages; :mod:`data_prep.iepile` keeps ``task == "NER"``) →
  ``OUT/classifier.jsonl``;
* direct-typing classifier (the paper's w/o-calibration ablation): the same IEPile records,
  answered with their own fine types instead of archetypes (``--target direct`` of
  :mod:`data_prep.iepile`) → ``OUT/direct_classifier.jsonl``;
* registered in ``OUT/dataset_info.json`` as ``samner_explorer`` / ``samner_explorer_authors`` /
  ``samner_classifier`` / ``samner_direct_classifier``, the names the training recipes in
  ``recipes/train/`` use.

A source given as a local file is used as is. Otherwise it is downloaded from the Hugging Face Hub
with ``huggingface_hub.hf_hub_download`` (repo, file and pinned revision from the ``pile_ner`` /
``iepile`` entries of ``recipes/data_sources.yaml``) into the Hugging Face cache (``HF_HOME``),
so a second run does not download again. Downloading needs ``huggingface_hub``, which the train
environment has (run with ``.venv/train/bin/python``); the dev environment can still convert
local files.

Both datasets are licensed for NON-COMMERCIAL use only (Pile-NER CC BY-NC 4.0, IEPile
CC BY-NC-SA 4.0). This project never ships them: they are downloaded for the user, from their
publishers, under those terms, and so are the adapters trained on them.

IEPile types missing from ``mappings/archetypes.yaml`` make the run fail after the pass, listing
them (never guessed); ``--skip-unmapped`` drops their mentions instead and reports them.

The classifier data keeps every IEPile NER source, MIT Movie and MIT Restaurant included, as the
paper did; MIT scores are not zero-shot for SAM-NER anyway (the public IEPile anchor was trained
on their train splits). ``--exclude-sources mit-movie mit-restaurant`` leaves them out of both
classifiers' data for a stricter experiment (see :mod:`data_prep.iepile`). Each IEPile output
gets its provenance sidecar (``<file>.meta.json``: Hub repo and revision, exclusions, per-source
counts), which ``tools.train`` keeps with the adapter.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.cli import make_parser, run
from core.io import ProjectError
from core.register import register
from data_prep import iepile, pile_ner
from data_prep.download import SOURCES, load_source

EXPLORER_DATASET = "samner_explorer"
CLASSIFIER_DATASET = "samner_classifier"
DIRECT_CLASSIFIER_DATASET = "samner_direct_classifier"
EXPLORER_FILE = "explorer.json"
EXPLORER_AUTHORS_DATASET = "samner_explorer_authors"
EXPLORER_AUTHORS_FILE = "explorer_authors.json"
CLASSIFIER_FILE = "classifier.jsonl"
DIRECT_CLASSIFIER_FILE = "direct_classifier.jsonl"
ROLES = ("explorer", "explorer_authors", "classifier", "direct_classifier")
# Pile-NER roles: (data_prep.pile_ner's prompt format, output file); both read the same file
PILE_NER_ROLES = {"explorer": ("explorer", EXPLORER_FILE),
                  "explorer_authors": ("authors", EXPLORER_AUTHORS_FILE)}
# IEPile roles: (the converter's target, output file); both read the same IEPile file
IEPILE_ROLES = {"classifier": ("archetypes", CLASSIFIER_FILE),
                "direct_classifier": ("direct", DIRECT_CLASSIFIER_FILE)}


@dataclass(frozen=True)
class HubSource:
    """One training dataset on the Hugging Face Hub, as pinned in ``data_sources.yaml``."""

    key: str  # entry in data_sources.yaml
    flag: str  # the CLI option that gives a local copy instead
    title: str
    repo_id: str
    filename: str
    revision: str | None
    license: str

    def notice(self) -> str:
        return (f"licence: {self.title} ({self.repo_id}) is {self.license}: non-commercial use "
                f"only. It is downloaded for you from its publisher and never shipped with this "
                f"project; the adapters trained on it inherit its terms.")


SOURCE_FLAGS = {"pile_ner": ("--pile-ner", "Pile-NER"), "iepile": ("--iepile", "IEPile")}


def hub_source(key: str, sources: Path = SOURCES) -> HubSource:
    """The pinned Hub coordinates of ``pile_ner`` or ``iepile`` from ``data_sources.yaml``."""
    entry: dict[str, Any] = load_source(key, sources)
    missing = [k for k in ("repo_id", "filename", "license") if not entry.get(k)]
    if missing:
        raise ProjectError(f"{sources}: entry {key!r} lacks {', '.join(missing)}")
    if entry.get("repo_type", "dataset") != "dataset":
        raise ProjectError(f"{sources}: entry {key!r} must be a dataset repo")
    flag, title = SOURCE_FLAGS[key]
    return HubSource(key=key, flag=flag, title=title, repo_id=entry["repo_id"],
                     filename=entry["filename"], revision=entry.get("revision"),
                     license=entry["license"])


def hub_download(source: HubSource, cache_dir: str | Path | None = None) -> Path:
    """Download ``source`` into the Hugging Face cache (or ``cache_dir``); returns its path.

    ``huggingface_hub`` is imported here, not at module level: the dev environment lacks it
    and can still convert local files.
    """
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ProjectError(
            f"downloading {source.repo_id} needs huggingface_hub: run in .venv/train "
            f"(`make data-train`), or pass {source.flag} FILE") from None
    where = f"{source.repo_id}/{source.filename}"
    print(f"downloading {where} (revision {source.revision or 'main'}) from the Hugging Face Hub",
          flush=True)
    try:
        path = hf_hub_download(repo_id=source.repo_id, filename=source.filename,
                               repo_type="dataset", revision=source.revision,
                               cache_dir=str(cache_dir) if cache_dir else None)
    except Exception as exc:  # offline, 404, auth, disk: huggingface_hub raises many types
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ProjectError(
            f"cannot download {where} from the Hugging Face Hub ({type(exc).__name__}: "
            f"{reason}); download it yourself and pass {source.flag} FILE") from None
    return Path(path)


def resolve(source: HubSource, local: str | Path | None,
            cache_dir: str | Path | None = None) -> Path:
    """``local`` when given (it must exist), else the downloaded file."""
    if local is None:
        return hub_download(source, cache_dir)
    path = Path(local)
    if not path.is_file():
        raise ProjectError(
            f"{source.flag} {local}: no such file (pass the path of {source.title}'s "
            f"{source.filename} from https://huggingface.co/datasets/{source.repo_id}, or leave "
            f"{source.flag} out to download it)")
    return path


def build(out: str | Path, *, pile_ner_file: str | Path | None = None,
          iepile_file: str | Path | None = None, roles: tuple[str, ...] = ROLES,
          limit: int | None = None, pile_ner_format: str = "sharegpt",
          skip_unmapped: bool = False, skip_bad: bool = False,
          cache_dir: str | Path | None = None,
          exclude_sources: tuple[str, ...] = iepile.DEFAULT_EXCLUDED_SOURCES) -> dict[str, Path]:
    """Fetch, convert and register the data of ``roles``; returns ``{role: written file}``.

    Every source is resolved (checked or downloaded) before any conversion starts, so a missing
    second file fails in seconds, not after converting the first.
    """
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise ProjectError(f"roles must be among {ROLES}, got {list(roles)}")
    out = Path(out)
    keys = {"explorer": ("pile_ner", pile_ner_file), "classifier": ("iepile", iepile_file),
            "explorer_authors": ("pile_ner", pile_ner_file),
            "direct_classifier": ("iepile", iepile_file)}
    needed = dict.fromkeys(keys[role] for role in roles)  # each source once, in role order
    sources = {key: hub_source(key) for key, _ in needed}
    for source in sources.values():
        print(source.notice(), flush=True)
    paths = {key: resolve(sources[key], local, cache_dir) for key, local in needed}
    files = {role: paths[keys[role][0]] for role in roles}
    hub = sources.get("iepile")  # where the IEPile file came from, for the sidecars
    iepile_info = {"origin": "local file (--iepile)"} if iepile_file or not hub else {
        "origin": "hub", "repo_id": hub.repo_id, "filename": hub.filename,
        "revision": hub.revision, "license": hub.license}

    written: dict[str, Path] = {}
    for role in (r for r in PILE_NER_ROLES if r in files):
        prompt_format, file_name = PILE_NER_ROLES[role]
        target = out / file_name
        stats = pile_ner.convert(files[role], target, fmt=pile_ner_format, limit=limit,
                                 skip_bad=skip_bad, prompt_format=prompt_format)
        print(f"{files[role]} -> {target} ({role})\n{stats.summary()}", flush=True)
        written[role] = target
    for role in (r for r in IEPILE_ROLES if r in files):
        mode, file_name = IEPILE_ROLES[role]
        target = out / file_name
        try:
            istats = iepile.convert(files[role], target, skip_unmapped=skip_unmapped,
                                    skip_bad=skip_bad, limit=limit,
                                    exclude_sources=exclude_sources, target=mode,
                                    source_info=iepile_info)
        except iepile.UnmappedTypesError as exc:
            print(f"{files[role]}: stats of the pass (nothing written)\n"
                  f"{exc.stats.summary()}", flush=True)
            raise
        print(f"{files[role]} -> {target} ({role})\n{istats.summary()}", flush=True)
        written[role] = target

    names = {"explorer": EXPLORER_DATASET, "explorer_authors": EXPLORER_AUTHORS_DATASET,
             "classifier": CLASSIFIER_DATASET,
             "direct_classifier": DIRECT_CLASSIFIER_DATASET}
    register(out, {names[role]: path for role, path in written.items()})
    for role, path in written.items():
        print(f"registered {names[role]} -> {path.name} in {out / 'dataset_info.json'}")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--out", required=True, type=Path,
                        help="LlamaFactory dataset_dir to write (recipes use data/train)")
    parser.add_argument("--pile-ner", default=None, metavar="FILE",
                        help="local Pile-NER-type train.json (default: download it)")
    parser.add_argument("--iepile", default=None, metavar="FILE",
                        help="local IEPile train.json (default: download it)")
    parser.add_argument("--only", choices=ROLES, default=None,
                        help="build the data of one adapter only")
    parser.add_argument("--limit", type=int, default=None,
                        help="write at most N records per dataset (quick runs)")
    parser.add_argument("--pile-ner-format", choices=pile_ner.FORMATS, default="sharegpt",
                        help="layout of --pile-ner (slimer: SLIMER's per-type JSONL)")
    parser.add_argument("--skip-unmapped", action="store_true",
                        help="drop IEPile types missing from the archetype table, report them")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip and count malformed records instead of failing")
    parser.add_argument("--cache-dir", default=None,
                        help="download cache (default: the Hugging Face cache, HF_HOME)")
    iepile.add_exclude_sources(parser)
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")

    def body() -> None:
        build(args.out, pile_ner_file=args.pile_ner, iepile_file=args.iepile,
              roles=(args.only,) if args.only else ROLES, limit=args.limit,
              pile_ner_format=args.pile_ner_format, skip_unmapped=args.skip_unmapped,
              skip_bad=args.skip_bad, cache_dir=args.cache_dir,
              exclude_sources=tuple(args.exclude_sources))

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
