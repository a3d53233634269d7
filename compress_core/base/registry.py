"""The one registry: a read-only mapping from key to entry, filled by a class decorator.

Every pluggable choice of PruneScope (importance criteria, prune kinds, recovery levels, runtimes,
executors) is one ``Registry``, and every entry is one class that carries its vocabulary as class
attributes:

- ``key``: the word recipes, the command line and the results store use (unique in its registry);
- ``label``: what a person sees, e.g. the dashboard's option text;
- ``description``: what it does, in a sentence or two (help text);
- ``needs``: what it needs beyond the model: None, ``"images"`` (calibration images), ``"labels"``
  (labelled batches), or the import name of an optional package (a runtime's, an executor's).

``@REGISTRY.register`` on the class adds it in definition order: one instance of it, or the class
itself in a registry made with ``instances=False`` (entries that take arguments, like executors). A key
already taken, or an empty key, label or description, is refused with a ``ValueError`` naming the class.
The registry reads like a dict (``key in R``, ``R[key]``, ``list(R)``, ``R.items()``) and cannot be
written to except by ``register`` (and ``unregister``, which withdraws an entry again).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

T = TypeVar("T")
C = TypeVar("C", bound=type)

VOCABULARY = ("key", "label", "description", "needs")  # the class attributes every entry carries


class Registry(Mapping[str, T]):
    """Key -> entry, in registration order. ``what`` names an entry in messages ("criterion")."""

    def __init__(self, what: str, *, instances: bool = True) -> None:
        self.what = what
        self.instances = instances
        self._entries: dict[str, T] = {}

    def register(self, cls: C) -> C:
        """Class decorator: add ``cls`` (an instance of it, or the class) under ``cls.key``."""
        key = getattr(cls, "key", "")
        if not isinstance(key, str) or not key:
            raise ValueError(f"{self.what} {cls.__qualname__} has no key: set the class attribute key")
        if key in self._entries:
            taken = self._entries[key]
            owner = taken if isinstance(taken, type) else type(taken)
            raise ValueError(
                f"{self.what} key {key!r} is already registered (by {owner.__qualname__}); "
                f"{cls.__qualname__} needs a key of its own"
            )
        for name in ("label", "description"):
            text = getattr(cls, name, "")
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{self.what} {key!r} ({cls.__qualname__}) needs a non-empty {name}")
        needs = getattr(cls, "needs", None)
        if needs is not None and (not isinstance(needs, str) or not needs):
            raise ValueError(f"{self.what} {key!r} ({cls.__qualname__}): needs is None or a non-empty string")
        entry: Any = cls() if self.instances else cls
        self._entries[key] = entry
        return cls

    def unregister(self, key: str) -> None:
        """Withdraw the entry ``key`` (a test's throw-away entry); a KeyError if there is none."""
        del self._entries[key]

    def labels(self) -> dict[str, str]:
        """Key -> label, in registration order (a widget's ``format_func``)."""
        return {key: _attr(entry, "label") for key, entry in self._entries.items()}

    def descriptions(self) -> dict[str, str]:
        """Key -> description, in registration order (help text)."""
        return {key: _attr(entry, "description") for key, entry in self._entries.items()}

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._entries

    def __getitem__(self, key: str) -> T:
        return self._entries[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._entries)})"


def _attr(entry: Any, name: str) -> str:
    return str(getattr(entry, name))
