"""One registry type for every pluggable kind: datasets, models, unsupervised methods, face detectors.

An entry registers itself with ``@REGISTRY.register("name")`` in its own module. The first
time a name is looked up, the registry imports every module of its package (found with
:mod:`pkgutil`) so their decorators run: adding an entry is one new file, with no list or
if-chain to edit. Unknown names raise :class:`~lqrppg.errors.ConfigError` listing the known
ones, which is what the config validation shows the user.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

from lqrppg.errors import ConfigError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind, discovered lazily from the modules of ``package``.

    ``kind``       what an entry is, for messages ("dataset", "model", ...)
    ``package``    dotted package whose modules register entries
    ``prefix``     import only modules whose name starts with this ("" = all but ``_private``)
    ``on_register``  called as ``on_register(name, entry)`` when an entry registers: raises
                     ValueError on a bad entry, and may set attributes on it (its ``name``)
    """

    def __init__(self, kind: str, package: str, *, prefix: str = "", skip: tuple[str, ...] = (),
                 on_register: Callable[[str, T], None] | None = None) -> None:
        self.kind, self.package, self.prefix, self.skip = kind, package, prefix, skip
        self.on_register = on_register
        self._entries: dict[str, T] = {}
        self._discovered = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``entry`` under ``name``; a second, different entry is an error."""

        def decorate(entry: T) -> T:
            if name in self._entries and self._entries[name] is not entry:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if self.on_register is not None:
                self.on_register(name, entry)
            self._entries[name] = entry
            return entry

        return decorate

    def _discover(self) -> None:
        if self._discovered:
            return
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            name = module.name
            if name.startswith("_") or name in self.skip or not name.startswith(self.prefix):
                continue
            importlib.import_module(f"{self.package}.{name}")
        self._discovered = True

    def names(self) -> list[str]:
        """All registered names, sorted."""
        self._discover()
        return sorted(self._entries)

    def get(self, name: str) -> T:
        """The entry registered as ``name``; ConfigError naming the known ones otherwise."""
        self._discover()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise ConfigError(f"unknown {self.kind} {name!r}; known {self.kind}s: {known}") from None

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._entries
