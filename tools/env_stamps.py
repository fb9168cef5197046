"""Requirement files and stamps of the project's environments (standard library only).

An env is up to date when its stamp (``PREFIX/NAME/.samner-stamp``) names the same env, device
and sha256 of its requirement files, ``-r``/``-c`` includes followed and comments ignored, as
``tools.envs`` would write now.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAMP_NAME = ".samner-stamp"
# Bump when the CPU fixes or smoke checks change, so that existing envs are redone.
STAMP_VERSION = 1


class EnvError(Exception):
    """An expected failure: reported as one clear message, never as a traceback."""


def requirements_file(name: str, device: str) -> Path:
    """The top-level requirements file for env `name` on `device` (cpu or cuda)."""
    if name == "dev":
        return REPO / "requirements-dev.txt"
    if name == "train":
        return REPO / "requirements" / "train.txt"
    return REPO / "requirements" / f"infer-{device}.txt"


def _logical_lines(text: str) -> list[str]:
    """Lines as pip reads them: backslash continuations joined, comments and blanks dropped."""
    joined = re.sub(r"\\\r?\n", "", text)
    lines = (re.sub(r"(^|\s)#.*$", "", line).strip() for line in joined.splitlines())
    return [" ".join(line.split()) for line in lines if line]


_INCLUDE = re.compile(r"^(?:-[rc]\s*|--(?:requirement|constraint)(?:\s+|=))(\S+)$")


def requirement_files(path: Path) -> list[Path]:
    """`path` and every local file it pulls in with -r/-c (recursively), each once, in order."""
    found: list[Path] = []

    def visit(p: Path, parent: Path | None) -> None:
        p = p.resolve()
        if p in found:
            return
        if not p.is_file():
            where = f" (included from {parent})" if parent else ""
            raise EnvError(f"requirements file not found: {p}{where}")
        found.append(p)
        for line in _logical_lines(p.read_text(encoding="utf-8")):
            m = _INCLUDE.match(line)
            if m and "://" not in m.group(1):
                visit(p.parent / m.group(1), p)

    visit(path, None)
    return found


def requirements_digest(path: Path) -> str:
    """sha256 over the normalised requirement lines of `path` and its includes.

    Comments and whitespace are ignored so that editing a comment does not cost a reinstall.
    """
    h = hashlib.sha256()
    for f in requirement_files(path):
        h.update(os.path.relpath(f, path.resolve().parent).encode() + b"\0")
        h.update("\n".join(_logical_lines(f.read_text(encoding="utf-8"))).encode() + b"\0")
    return h.hexdigest()


def stamp_text(name: str, device: str, req: Path) -> str:
    """What `.samner-stamp` holds for an up-to-date env."""
    return (
        f"samner-stamp {STAMP_VERSION}\nenv {name}\ndevice {device}\n"
        f"requirements {os.path.relpath(req, REPO)}\nsha256 {requirements_digest(req)}\n"
    )


def read_stamp(venv: Path) -> dict[str, str]:
    """The stamp of `venv` as a dict (empty when missing): tests read its device from here."""
    try:
        text = (venv / STAMP_NAME).read_text(encoding="utf-8")
    except OSError:
        return {}
    return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
