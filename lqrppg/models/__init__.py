"""Video models and their registry.

A model module in this package registers its class with ``@register_model("name")``.
The registry imports every module of the package (found with :mod:`pkgutil`) the first
time it is asked for a name, so adding a model is one new file: no list or if-chain to
edit. Nothing heavy is imported at package import: optional compiled extras (mamba-ssm)
are looked up lazily, inside the functions that can use them.

Every registered class is an ``nn.Module`` built as ``cls(frames, height, width)`` and
describes its input contract with class attributes, so data loading can be configured
(and checked) before any model is built:

    input_norm   "standardized" | "diff_normalized"   how the frames are normalised
    label_norm   "standardized" | "diff_normalized"   how the training label is normalised
    label_type   "quantized" | "continuous"           LQ pseudo labels, or the label itself
    check_input(frames, height, width)                classmethod, ValueError naming the rule
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import TypeVar

from torch import nn

from lqrppg.errors import ConfigError

__all__ = ["INPUT_NORMS", "LABEL_TYPES", "available_models", "count_parameters", "get_model", "register_model"]

INPUT_NORMS = ("standardized", "diff_normalized")
LABEL_TYPES = ("quantized", "continuous")

M = TypeVar("M", bound=type[nn.Module])

_MODELS: dict[str, type[nn.Module]] = {}
_discovered = False


def register_model(name: str) -> Callable[[M], M]:
    """Class decorator: register a model class under ``name`` (and set its ``name``)."""

    def decorate(cls: M) -> M:
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(f"model {name!r} is registered twice ({_MODELS[name].__qualname__}, {cls.__qualname__})")
        for attr, allowed in (("input_norm", INPUT_NORMS), ("label_norm", INPUT_NORMS), ("label_type", LABEL_TYPES)):
            if getattr(cls, attr, None) not in allowed:
                value = getattr(cls, attr, None)
                raise ValueError(f"{cls.__qualname__}.{attr} must be one of {allowed}, got {value!r}")
        if not callable(getattr(cls, "check_input", None)):
            raise ValueError(f"{cls.__qualname__} must define a check_input(frames, height, width) classmethod")
        cls.name = name
        _MODELS[name] = cls
        return cls

    return decorate


def _discover() -> None:
    """Import every module of this package once, so their decorators run."""
    global _discovered
    if _discovered:
        return
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    _discovered = True


def available_models() -> list[str]:
    """Names of all registered models, sorted."""
    _discover()
    return sorted(_MODELS)


def get_model(name: str) -> type[nn.Module]:
    """The model class registered as ``name``; ConfigError listing the known ones otherwise."""
    _discover()
    try:
        return _MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(sorted(_MODELS)) or '(none)'}") from None


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameter scalars (buffers such as codebooks and BN statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
