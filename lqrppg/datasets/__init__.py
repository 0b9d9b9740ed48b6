"""Dataset readers and their registry.

A reader module in this package registers its class with
``@register_dataset("name")``. The registry imports every module of the package
(found with :mod:`pkgutil`) the first time it is asked for a name, so adding a
dataset is one new file: no list or if-chain to edit.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from lqrppg.datasets.base import (
    ALIGNMENT_METHODS,
    DatasetReader,
    LabelSeries,
    Session,
    align_label,
    check_label_values,
    natural_key,
)
from lqrppg.errors import ConfigError

__all__ = [
    "ALIGNMENT_METHODS",
    "DatasetReader",
    "LabelSeries",
    "Session",
    "align_label",
    "available_datasets",
    "check_label_values",
    "get_reader",
    "natural_key",
    "register_dataset",
]

_READERS: dict[str, type[DatasetReader]] = {}
_discovered = False


def register_dataset(name: str) -> Callable[[type[DatasetReader]], type[DatasetReader]]:
    """Class decorator: register a reader under ``name`` (and set its ``name``)."""

    def decorate(cls: type[DatasetReader]) -> type[DatasetReader]:
        if name in _READERS and _READERS[name] is not cls:
            raise ValueError(
                f"dataset {name!r} is registered twice ({_READERS[name].__qualname__}, {cls.__qualname__})"
            )
        if cls.alignment not in ALIGNMENT_METHODS:
            raise ValueError(f"{cls.__qualname__}.alignment {cls.alignment!r} is not one of {ALIGNMENT_METHODS}")
        cls.name = name
        _READERS[name] = cls
        return cls

    return decorate


def _discover() -> None:
    """Import every module of this package once, so their decorators run."""
    global _discovered
    if _discovered:
        return
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base" and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    _discovered = True


def available_datasets() -> list[str]:
    """Names of all registered datasets, sorted."""
    _discover()
    return sorted(_READERS)


def get_reader(name: str) -> type[DatasetReader]:
    """The reader class registered as ``name``; ConfigError listing the known ones otherwise."""
    _discover()
    try:
        return _READERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown dataset {name!r}; known datasets: {', '.join(sorted(_READERS)) or '(none)'}"
        ) from None
