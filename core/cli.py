"""What every command-line entry point of the project shares: its parser and its error exit."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from core.io import ProjectError


def make_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser whose help is the module docstring, layout kept."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)


def run(body: Callable[[], int | None]) -> int:
    """Run a CLI body; an expected failure (bad input, bad config) prints one line and exits 2."""
    try:
        return body() or 0
    except (ProjectError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # read-only OUT, a file where a folder should be, a full disk...
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
