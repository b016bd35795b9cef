"""Records that note which fields a step set or removed, so the driver need not copy and compare them.

The store hands steps :class:`Tracked` records: ordinary dicts (reads, iteration, JSON, equality
are a dict's) whose writes — ``rec[k] = v``, ``del``, ``pop``, ``update``, ``setdefault``,
``clear``, ``|=`` — note the value each field had before its first change. What a step changed is
then read from those notes (a few fields per record) instead of from a copy of every record taken
before the step and compared field by field after it. A step that changes nested values in place
(``mutates_nested``), or returns new dicts, is compared against a copy as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: the value a field "had" before it was added
MISSING: Any = object()


class Tracked(dict):  # type: ignore[type-arg]
    """A record noting, in :attr:`was`, each field's value before the first change since the last
    :meth:`forget` (:data:`MISSING` for a field that was added)."""

    was: dict[str, Any] | None = None

    def __setitem__(self, key: str, value: Any) -> None:
        was = self.was
        if was is None:
            was = self.was = {}
        if key not in was:
            was[key] = dict.get(self, key, MISSING)
        dict.__setitem__(self, key, value)

    def _note(self, keys: Iterable[str]) -> None:
        was = self.was
        if was is None:
            was = self.was = {}
        for key in keys:
            if key not in was:
                was[key] = dict.get(self, key, MISSING)

    def __delitem__(self, key: str) -> None:
        if key in self:
            self._note((key,))
        dict.__delitem__(self, key)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            self._note((key,))
        return dict.pop(self, key, *default)

    def popitem(self) -> tuple[str, Any]:
        if self:
            self._note((next(reversed(self.keys())),))
        return dict.popitem(self)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self._note((key,))
        return dict.setdefault(self, key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other: Any) -> Tracked:  # type: ignore[override,misc]
        self.update(other)
        return self

    def clear(self) -> None:
        self._note(list(self))
        dict.clear(self)

    def forget(self) -> None:
        """Start noting afresh (after the driver read what the last step changed)."""
        self.was = None

    def original(self) -> dict[str, Any]:
        """The record as it was before the changes noted."""
        out = dict(self)
        for key, value in (self.was or {}).items():
            if value is MISSING:
                out.pop(key, None)
            else:
                out[key] = value
        return out

    def __reduce__(self) -> tuple[Any, ...]:  # pickled (or deep-copied) as the plain dict it reads as
        return (dict, (dict(self),))


def tracked(rec: Mapping[str, Any]) -> Tracked:
    return rec if type(rec) is Tracked else Tracked(rec)
