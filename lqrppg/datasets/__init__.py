"""Dataset readers and their registry.

A reader module in this package registers its class with
``@register_dataset("name")``. The registry imports every module of the package
(found with :mod:`pkgutil`) the first time it is asked for a name, so adding a
dataset is one new file: no list or if-chain to edit.
"""

from __future__ import annotations

from lqrppg.datasets.base import (
    ALIGNMENT_METHODS,
    DatasetReader,
    LabelSeries,
    Session,
    align_label,
    check_label_values,
    natural_key,
)
from lqrppg.registry import Registry

__all__ = [
    "ALIGNMENT_METHODS",
    "DATASETS",
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

def _check_reader(name: str, cls: type[DatasetReader]) -> None:
    if cls.alignment not in ALIGNMENT_METHODS:
        raise ValueError(f"{cls.__qualname__}.alignment {cls.alignment!r} is not one of {ALIGNMENT_METHODS}")
    cls.name = name


DATASETS: Registry[type[DatasetReader]] = Registry("dataset", __name__, skip=("base",), on_register=_check_reader)
register_dataset = DATASETS.register
available_datasets = DATASETS.names
get_reader = DATASETS.get
