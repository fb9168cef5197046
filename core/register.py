"""LlamaFactory's side of the SFT data: write alpaca files and register them in dataset_info.json.

LlamaFactory finds a dataset by the name a training YAML gives (``dataset: samner_explorer``) in
``<dataset_dir>/dataset_info.json``; each entry names a file relative to that directory and maps
the alpaca columns (``prompt``/``query``/``response`` → ``instruction``/``input``/``output``).
Registering merges into an existing file, keeping entries other datasets put there, and replaces
an entry of the same name (re-running a conversion is idempotent).

    python -m core.register --dataset-dir data/train \\
        samner_explorer=data/train/explorer.json samner_classifier=data/train/classifier.jsonl

A FILE is a path as usual (relative to the current directory); a FILE that only exists relative
to the dataset dir is accepted too. Files must exist and hold a record: registering a missing or
empty file would only fail later, inside a training job.

Provenance travels with the data and then with the adapter: a converter writes a sidecar
``<data file>.meta.json`` beside its output (:func:`write_data_meta`: source file and revision,
excluded sources, per-source record counts, converter stats, prompt version), and
``tools.train``, after a successful training, copies the sidecars of the recipe's datasets into
the adapter's ``output_dir`` as ``samner_train_data.json`` (:func:`write_adapter_training_data`),
which a run records in its ``run.json`` (:func:`read_adapter_training_data`).
"""

from __future__ import annotations

import codecs
import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from core.cli import make_parser, run
from core.io import (
    ConfigError,
    DataError,
    ProjectError,
    atomic_writer,
    dumps_line,
    read_json_mapping,
)

DATASET_INFO = "dataset_info.json"
ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output"}
META_SUFFIX = ".meta.json"  # a data file's provenance sidecar: <file>.meta.json
ADAPTER_TRAINING_DATA = "samner_train_data.json"  # the same, copied into a trained adapter


def write_alpaca(path: str | os.PathLike[str], records: Iterable[Mapping[str, Any]]) -> int:
    """Write alpaca records atomically, streaming: ``.json`` → one JSON array, ``.jsonl`` → lines.

    Streaming keeps memory flat for converters that produce records from a multi-GB input.
    Returns the number of records written.
    """
    suffix = Path(path).suffix
    if suffix not in (".json", ".jsonl"):
        raise ProjectError(f"{path}: output must end in .json (array) or .jsonl (lines)")
    count = 0
    with atomic_writer(path) as handle:
        if suffix == ".jsonl":
            for record in records:
                handle.write(dumps_line(record))
                count += 1
        else:
            handle.write("[")
            for record in records:
                handle.write(",\n" if count else "\n")
                handle.write(json.dumps(record, ensure_ascii=False))
                count += 1
            handle.write("\n]\n" if count else "]\n")
    return count


def alpaca_entry(file_name: str) -> dict[str, Any]:
    return {"file_name": file_name, "formatting": "alpaca", "columns": dict(ALPACA_COLUMNS)}


def _resolve(dataset_dir: Path, file: str | os.PathLike[str]) -> str:
    """``file`` relative to ``dataset_dir``, in POSIX form (what LlamaFactory joins onto it)."""
    path = Path(file)
    if not path.is_file() and not path.is_absolute() and (dataset_dir / path).is_file():
        path = dataset_dir / path
    if not path.is_file():
        raise ProjectError(f"{file}: no such dataset file")
    if not _has_records(path):
        raise DataError(file, None, "the dataset file holds no record (an empty training set)")
    return Path(os.path.relpath(path.resolve(), dataset_dir.resolve())).as_posix()


def _has_records(path: Path) -> bool:
    """Whether an alpaca file is more than blank or ``[]``; reads only its head (files are GBs)."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16).removeprefix(codecs.BOM_UTF8).lstrip()
    if head.startswith(b"["):
        rest = head[1:].lstrip()
        return bool(rest) and not rest.startswith(b"]")
    return bool(head)


def read_info(dataset_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``dataset_dir/dataset_info.json`` as a mapping ({} when there is none yet)."""
    info_path = Path(dataset_dir) / DATASET_INFO
    if not info_path.exists():
        return {}
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(info_path, exc.lineno, f"invalid JSON ({exc.msg})") from None
    if not isinstance(info, dict):
        raise DataError(info_path, None, "expected a JSON object of dataset entries")
    return info


def register(
    dataset_dir: str | os.PathLike[str], datasets: Mapping[str, str | os.PathLike[str]]
) -> dict[str, Any]:
    """Add or replace alpaca entries in ``dataset_dir/dataset_info.json``; returns the full info."""
    directory = Path(dataset_dir)
    info_path = directory / DATASET_INFO
    info = read_info(directory)
    for name, file in datasets.items():
        if not name:
            raise ProjectError("empty dataset name")
        info[name] = alpaca_entry(_resolve(directory, file))
    _write_json(info_path, info)
    return info


def meta_path(data_file: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(data_file)}{META_SUFFIX}")


def _write_json(path: Path, data: Mapping[str, Any]) -> Path:
    with atomic_writer(path) as handle:
        json.dump(data, handle, ensure_ascii=False, indent=2)
        handle.write("\n")
    return path


def write_data_meta(data_file: str | os.PathLike[str], meta: Mapping[str, Any]) -> Path:
    """Write ``<data_file>.meta.json`` (atomically; call it after the data file is complete)."""
    return _write_json(meta_path(data_file), meta)


def _read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None when there is none; a malformed one fails naming the file
    (a provenance record silently read as "none" would misreport what an adapter saw)."""
    return read_json_mapping(path, ProjectError) if path.is_file() else None


def read_data_meta(data_file: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The converter's sidecar of a data file; None when the file has none."""
    return _read_json_object(meta_path(data_file))


def training_data_record(dataset_dir: str | os.PathLike[str], names: Iterable[str]
                         ) -> dict[str, Any]:
    """What a training run read: each dataset name's registered file and that file's sidecar
    (None when the converter wrote none, or the name is not registered)."""
    directory = Path(dataset_dir)
    info = read_info(directory)
    datasets: dict[str, Any] = {}
    for name in names:
        entry = info.get(name)
        file_name = entry.get("file_name") if isinstance(entry, dict) else None
        datasets[name] = {"file": file_name,
                          "data": read_data_meta(directory / file_name) if file_name else None}
    return {"dataset_dir": str(directory.resolve()), "datasets": datasets}


def write_adapter_training_data(output_dir: str | os.PathLike[str],
                                record: Mapping[str, Any]) -> Path:
    """Keep :func:`training_data_record` (plus what the caller adds) with a trained adapter."""
    return _write_json(Path(output_dir) / ADAPTER_TRAINING_DATA, record)


def read_adapter_training_data(adapter_dir: str | os.PathLike[str] | None
                               ) -> dict[str, Any] | None:
    """The training-data record ``tools.train`` left in an adapter dir; None for an adapter
    trained elsewhere (the public IEPile LoRA) or before this record existed."""
    if not adapter_dir:
        return None
    return _read_json_object(Path(adapter_dir) / ADAPTER_TRAINING_DATA)


def _parse_pairs(pairs: list[str]) -> dict[str, str]:
    datasets: dict[str, str] = {}
    for pair in pairs:
        name, sep, file = pair.partition("=")
        if not sep or not name or not file:
            raise ProjectError(f"expected NAME=FILE, got {pair!r}")
        if name in datasets:
            raise ProjectError(f"dataset {name!r} given twice")
        datasets[name] = file
    return datasets


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--dataset-dir", required=True, type=Path,
                        help="LlamaFactory dataset_dir (holds dataset_info.json)")
    parser.add_argument("datasets", nargs="+", metavar="NAME=FILE")
    args = parser.parse_args(argv)

    def body() -> None:
        datasets = _parse_pairs(args.datasets)
        info = register(args.dataset_dir, datasets)
        for name in datasets:
            print(f"registered {name} -> {info[name]['file_name']} in "
                  f"{args.dataset_dir / DATASET_INFO}")

    return run(body)


if __name__ == "__main__":
    sys.exit(main())


def adapter_rank(path: str | os.PathLike[str]) -> int:
    """LoRA rank from ``adapter_config.json`` (vLLM's ``max_lora_rank`` must cover it)."""
    config_file = Path(path) / "adapter_config.json"
    try:
        return int(json.loads(config_file.read_text())["r"])
    except FileNotFoundError:
        message = f"adapter {path}: no adapter_config.json (train or download it)"
        raise ConfigError(message) from None
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{config_file}: cannot read the LoRA rank ({exc})") from None
