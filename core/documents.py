"""The user's documents, read from a text file, a folder of them, JSON Lines or Python strings.

:func:`read_documents` takes
  * a ``.txt`` file (any suffix but ``.jsonl``/``.json``): one document, id = the file name;
  * a folder: every ``*.txt`` file under it (sub-folders too; names starting with ``.`` are
    skipped, like editor and VCS files), sorted by path, id = the path relative to the folder
    with ``/`` separators; a folder without any is an error;
  * a ``.jsonl`` file: one record ``{"id": str | int, "text": str}`` per line (blank lines
    skipped, other keys ignored, ids kept as strings), at least one record;
  * a list or tuple of strings (ids ``"1"``, ``"2"``, ... by position) or of such records.
A ``str`` is always a path (text itself comes as a list). Ids are unique.

Pre-tokenised input: a record may carry ``"tokens": [str, ...]`` (``null``: none), with or
without ``"text"``, and the document keeps them (:attr:`Document.tokens`) so the model reads,
and the output (CoNLL) holds, exactly those tokens. Without ``"text"`` the text is the tokens
joined by single spaces. With it, the tokens must be the text's, by the rule of
:func:`core.text.align_tokens`: non-empty, no whitespace inside, in order, only whitespace
between and around them. :func:`token_spans_of` gives a document's token spans either way.

The text is kept exactly as read, so offsets index it: no newline normalisation (CRLF stays),
except a UTF-8 byte order mark at the start of a file, which is dropped (Windows editors write
one; it is no text of the document, and kept it would stick to the first token).
Bad input fails with one line naming the file and line (or list index): :class:`DocumentError`.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.io import DataError, iter_jsonl, not_utf8
from core.text import Span, TokenError, align_tokens, check_token, token_spans

Source = str | os.PathLike[str] | Sequence[str | Mapping[str, Any]]
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number",
               float: "a number", bool: "a boolean", type(None): "null"}


class DocumentError(DataError):
    """Unusable input documents; the message starts with ``file:line:`` or ``documents[i]:``."""


@dataclass(frozen=True)
class Document:
    """One document; ``tokens`` only for pre-tokenised input (a tuple: kept hashable)."""

    id: str
    text: str
    tokens: tuple[str, ...] | None = None


def token_spans_of(document: Document) -> list[Span]:
    """Character spans of the document's tokens in its text: the given tokens if any (a
    :class:`~core.text.TokenError` if they are not the text's), else
    :func:`core.text.token_spans`."""
    if document.tokens is None:
        return token_spans(document.text)
    return align_tokens(document.text, document.tokens)


def read_documents(source: Source) -> list[Document]:
    """The documents of ``source``, by the rules in the module doc."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            return _read_folder(path)
        if not path.exists():
            hint = " (to pass text itself, pass a list of strings)" \
                if isinstance(source, str) else ""
            raise DocumentError(path, None, f"no such file or folder{hint}")
        if path.suffix.lower() == ".jsonl":
            return _read_jsonl(path)
        if path.suffix.lower() == ".json":
            raise DocumentError(path, None, 'expected JSON Lines: save the records as .jsonl, '
                                'one {"id": ..., "text": ...} per line')
        return [Document(path.name, read_text(path))]
    if not isinstance(source, list | tuple):
        raise DocumentError("documents", None, "expected a path or a list of strings or of "
                            f'{{"id", "text"}} records, got {type(source).__name__}')
    documents: list[Document] = []
    first_at: dict[str, str] = {}
    for i, item in enumerate(source):
        where = f"documents[{i}]"
        if isinstance(item, str):
            document = Document(str(i + 1), item)
        elif isinstance(item, Mapping):
            document = _record(item, where, None)
        else:
            raise DocumentError(where, None, "expected a string or a {\"id\", \"text\"} record, "
                                f"got {type(item).__name__}")
        if document.id in first_at:
            raise DocumentError(where, None, f"duplicate id {document.id!r} (first at "
                                f"{first_at[document.id]})")
        first_at[document.id] = where
        documents.append(document)
    return documents


def read_text(path: Path) -> str:
    """A UTF-8 file's text as is (a leading BOM dropped); unreadable -> :class:`DocumentError`."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DocumentError(path, None, f"cannot read ({exc.strerror})") from None
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        error = not_utf8(path, raw, exc)
        raise DocumentError(path, error.line, error.message) from None


def _read_folder(folder: Path) -> list[Document]:
    files = sorted((p for p in folder.rglob("*.txt") if p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(folder).parts)),
                   key=lambda p: p.relative_to(folder).as_posix())
    if not files:
        raise DocumentError(folder, None, "no .txt files in this folder")
    return [Document(p.relative_to(folder).as_posix(), read_text(p)) for p in files]


def _read_jsonl(path: Path) -> list[Document]:
    documents: list[Document] = []
    first_line: dict[str, int] = {}
    try:
        for line, record in iter_jsonl(path):
            document = _record(record, path, line)
            if document.id in first_line:
                raise DocumentError(path, line, f"duplicate id {document.id!r} (first at line "
                                    f"{first_line[document.id]})")
            first_line[document.id] = line
            documents.append(document)
    except DocumentError:
        raise
    except DataError as exc:  # invalid JSON, not UTF-8
        raise DocumentError(exc.path, exc.line, exc.message) from None
    except OSError as exc:
        raise DocumentError(path, None, f"cannot read ({exc.strerror})") from None
    if not documents:
        raise DocumentError(path, None, 'no records: write one {"id": ..., "text": ...} per line')
    return documents


def _record(record: Any, where: str | Path, line: int | None) -> Document:
    """A document from an ``{"id", "text"}`` record found at ``where`` (and ``line``)."""
    if not isinstance(record, Mapping):
        kind = _JSON_TYPES.get(type(record), type(record).__name__)
        raise DocumentError(where, line, f'expected an object {{"id": ..., "text": ...}}, '
                            f"got {kind}")
    if "id" not in record:
        raise DocumentError(where, line, 'the record has no "id"')
    key = record["id"]
    if isinstance(key, bool) or not isinstance(key, str | int) or key == "":
        raise DocumentError(where, line, f'"id" must be a non-empty string or an integer, '
                            f"got {key!r}")
    tokens = _tokens(record, where, line)
    if "text" not in record and tokens is None:
        raise DocumentError(where, line, 'the record has no "text"')
    text = record.get("text", " ".join(tokens or ()))
    if not isinstance(text, str):
        kind = _JSON_TYPES.get(type(text), type(text).__name__)
        raise DocumentError(where, line, f'"text" must be a string, got {kind}')
    if tokens is not None:
        try:
            align_tokens(text, tokens)
        except TokenError as exc:
            raise DocumentError(where, line, str(exc)) from None
    return Document(str(key), text, tokens)


def _tokens(record: Mapping[str, Any], where: str | Path, line: int | None
            ) -> tuple[str, ...] | None:
    """A record's ``"tokens"`` (absent or null: None), each checked by itself."""
    tokens = record.get("tokens")
    if tokens is None:
        return None
    if not isinstance(tokens, list | tuple):
        kind = _JSON_TYPES.get(type(tokens), type(tokens).__name__)
        raise DocumentError(where, line, f'"tokens" must be an array of strings, got {kind}')
    for i, token in enumerate(tokens):
        if not isinstance(token, str):
            kind = _JSON_TYPES.get(type(token), type(token).__name__)
            raise DocumentError(where, line, f"tokens[{i}] must be a string, got {kind}")
        try:
            check_token(i, token)
        except TokenError as exc:
            raise DocumentError(where, line, str(exc)) from None
    return tuple(tokens)
