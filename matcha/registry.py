"""One small registry type, used for step types, connector kinds and model providers.

Built-in entries register themselves with a decorator when their module is imported; the
modules are listed in ``builtin_modules`` so they are imported only when a registry is first
read (keeps ``matcha --help`` fast). Third-party packages add entries through the entry-point
group (``matcha.steps``, ``matcha.connectors``, ``matcha.providers``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, what: str, group: str, builtin_modules: Iterable[str]):
        self.what = what  # "step type", "connector kind", "model provider"
        self.group = group
        self._builtin_modules = tuple(builtin_modules)
        self._items: dict[str, T] = {}
        self._broken: dict[str, str] = {}  # entry-point name -> why its plugin could not be loaded
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self._items[name] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        self._items[name] = obj

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for mod in self._builtin_modules:
            importlib.import_module(mod)
        for ep in entry_points(group=self.group):
            if ep.name in self._items:
                continue
            try:
                self._items[ep.name] = ep.load()
            except Exception as exc:
                # One broken plugin must not break every pipeline: it is reported where it is used.
                package = ep.dist.name if ep.dist is not None else "an unknown package"
                self._broken[ep.name] = (f"the {self.what} '{ep.name}' comes from the package '{package}' "
                                         f"({ep.value}), which failed to load: {type(exc).__name__}: {exc}"[:400])
                import structlog

                structlog.get_logger("matcha.plugins").warning("plugin failed to load", group=self.group,
                                                                name=ep.name, package=package,
                                                                error=f"{type(exc).__name__}: {exc}"[:300])

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def get(self, name: str) -> T | None:
        self._load()
        return self._items.get(name)

    def unknown_hint(self, name: str) -> str:
        """A hint for an unknown name: the closest valid one and the full list."""
        import difflib

        names = self.names()
        if name in self._broken:
            return f"{self._broken[name]}. Reinstall or fix that package, or uninstall it"
        close = difflib.get_close_matches(name, names, n=1)
        typo = f"Did you mean '{close[0]}'? " if close else ""
        return f"{typo}Valid {self.what}s are: {', '.join(names)}"
