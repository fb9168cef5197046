"""File I/O shared by every converter and stage: atomic writes and JSON Lines with located errors.

Two rules hold everywhere in the project: a bad input file fails fast naming file and line, and
an output file is either complete or absent (written to a temporary file, then renamed), so an
interrupted run never leaves a half-written file that a resumed run would trust.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any


class ProjectError(ValueError):
    """An expected failure caused by input or config: CLIs print it in one line, no traceback."""


class ConfigError(ProjectError):
    """A setting that cannot work (inference config, placement); raised before a model loads."""


class DataError(ProjectError):
    """A malformed input file; the message starts with ``path:line:`` like a compiler error."""

    def __init__(self, path: str | os.PathLike[str], line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


def current_umask() -> int:
    """The process umask, for chmod after mkstemp (reading it sets it: restored at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = current_umask()


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success fsync it and rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` keeps its old content.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.replace(tmp, target)
        except OSError as exc:  # name the file the user knows, not our temporary one
            raise OSError(exc.errno, exc.strerror, str(target)) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_yaml_mapping(path: str | os.PathLike[str], error: type[ProjectError] = ProjectError,
                      loader: type | None = None) -> dict[str, Any]:
    """A YAML file whose top level is a mapping; anything else raises ``error`` naming the file.

    ``loader`` defaults to PyYAML's SafeLoader (never a loader that builds arbitrary objects).
    """
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=loader or yaml.SafeLoader)
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level")
    return data


def read_json_mapping(path: str | os.PathLike[str], error: type[ProjectError] = ProjectError
                      ) -> dict[str, Any]:
    """A JSON file whose top level is an object; anything else raises ``error`` naming the file
    (and the line, for invalid JSON)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object at the top level")
    return data


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    with atomic_writer(path) as handle:
        handle.write(text)


# str.splitlines() also ends a line at these, which json.dumps(ensure_ascii=False) leaves raw
# (the other ones, \x0b \x0c \x1c-\x1e, are control characters: json escapes them already)
_LINE_BREAKS = ("\x85", "\u2028", "\u2029")
_ESCAPE_LINE_BREAKS = str.maketrans({ch: f"\\u{ord(ch):04x}" for ch in _LINE_BREAKS})


def dumps_line(record: Any) -> str:
    """One JSONL line: UTF-8 kept readable (CrossNER and IEPile hold non-ASCII text), except
    U+0085, U+2028 and U+2029, written as ``\\u`` escapes (they occur only inside JSON strings,
    so the value is the same): raw, they would split the line for ``str.splitlines()`` readers."""
    line = json.dumps(record, ensure_ascii=False)
    if any(ch in line for ch in _LINE_BREAKS):
        line = line.translate(_ESCAPE_LINE_BREAKS)
    return line + "\n"


def write_jsonl(path: str | os.PathLike[str], records: Iterable[Any]) -> int:
    """Write records atomically as JSON Lines; returns how many were written."""
    count = 0
    with atomic_writer(path) as handle:
        for record in records:
            handle.write(dumps_line(record))
            count += 1
    return count


def not_utf8(path: str | os.PathLike[str], data: bytes, error: UnicodeDecodeError,
             line: int | None = None) -> DataError:
    """The located error for a byte that is not UTF-8 (``line`` counted in ``data`` if None)."""
    column = error.start - data.rfind(b"\n", 0, error.start)  # 1-based, in bytes
    if line is None:
        line = data.count(b"\n", 0, error.start) + 1
    return DataError(path, line, f"not UTF-8: byte 0x{data[error.start]:02x} at column {column} "
                                 f"({error.reason}); save the file as UTF-8")


def iter_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """``(line_number, line)`` of a UTF-8 text file, line ends kept, a leading BOM dropped.

    Lines are decoded one by one, so a byte that is not UTF-8 fails naming its file and line
    instead of as a ``UnicodeDecodeError`` traceback; a BOM (Windows editors write one) would
    otherwise stick to the first token or break the first JSON line.
    """
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise not_utf8(path, raw, exc, number) from None


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, value)`` per non-blank line; bad JSON raises :class:`DataError`."""
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            message = f"invalid JSON ({exc.msg} at column {exc.colno})"
            raise DataError(path, number, message) from None


def read_json_or_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int | None, Any]]:
    """Records from a JSON array file or a JSON Lines file (sniffed from the first character).

    Datasets in the wild come both ways (Pile-NER is one JSON array, IEPile is JSONL); array
    elements carry no line number, so ``None`` is yielded in its place.
    """
    if is_json_array(path):
        raw = Path(path).read_bytes().removeprefix(codecs.BOM_UTF8)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise not_utf8(path, raw, exc) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(path, exc.lineno, f"invalid JSON ({exc.msg})") from None
        for record in data:
            yield None, record
    else:
        yield from iter_jsonl(path)


def is_json_array(path: str | os.PathLike[str]) -> bool:
    """Whether the file's first non-blank character (after a BOM) is ``[``; read as bytes, so a
    bad byte is left for the reader, which names its line."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    return head.removeprefix(codecs.BOM_UTF8).lstrip().startswith(b"[")


def sha256_of(path: str | os.PathLike[str], block: int = 1 << 20) -> str:
    """The sha256 hex digest of a file, read in blocks (model weights can be GBs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()
