"""Named extension points: one :class:`Registry` per kind, filled where each entry is written.

Prompt formats, chat templates, consensus rules, score modes, dataset sources and backbones are
each a registry. An entry registers itself beside its code (a decorator, or one ``add`` line),
and everything else - config validation, the report, the CLIs - asks the registry for names
instead of keeping its own list, so adding an entry is one file and one registered name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(KeyError):
    """A name no entry of the registry has; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class Registry(Generic[T]):
    """An ordered name -> entry map that refuses duplicates and explains unknown names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "score mode", "prompt format": said in every error
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`: ``@MODES.register("span")``."""
        return lambda entry: self.add(name, entry)

    def remove(self, name: str) -> T:
        """Take an entry out again (a test's toy entry, a plugin unloaded)."""
        return self._entries.pop(name)

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownName(self.unknown(name)) from None

    def unknown(self, name: object) -> str:
        """The message for a name that is not registered."""
        return f"unknown {self.kind} {name!r} (known: {', '.join(self._entries) or 'none'})"

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def items(self):
        return self._entries.items()

    def values(self):
        return self._entries.values()
