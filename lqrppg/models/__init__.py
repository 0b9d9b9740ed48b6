"""Video models and their registry.

A model module in this package registers its class with ``@register_model("name")``.
The registry imports every module of the package (found with :mod:`pkgutil`) the first
time it is asked for a name, so adding a model is one new file: no list or if-chain to
edit. Nothing heavy is imported at package import: optional compiled extras (mamba-ssm)
are looked up lazily, inside the functions that can use them.

Every registered class is an ``nn.Module`` built as ``cls(frames, height, width)`` and
describes its input contract with class attributes, so data loading can be configured
(and checked) before any model is built:

    input_norm   "standardized" | "diff_normalized"   how the frames are normalised;
                 | "diff_and_standardized"            6 channels: DiffNormalized (0-2), then
                                                      Standardized (3-5), as DeepPhys/TS-CAN take them
    label_norm   "standardized" | "diff_normalized"   how the training label is normalised
                 | "bandpassed"                       (a diff_normalized model predicts differences;
                                                      prediction integrates them back; bandpassed =
                                                      y_bpf of method.md §1, the LQ module's input)
    label_type   "quantized" | "continuous"           LQ pseudo labels, or the label itself
    loss         optional objective name (lqrppg.objectives; default by label_type)
    published_input  (frames, height, width) of the model's paper: the cost benchmark's setting
    Options      optional pydantic model of the constructor's keyword options (config
                 ``models.<entry>.options``); the class is then built as cls(frames, height, width, **options)
    check_input(frames, height, width)                classmethod, ValueError naming the rule
"""

from __future__ import annotations

from torch import nn

from lqrppg.registry import Registry

__all__ = ["INPUT_NORMS", "LABEL_NORMS", "LABEL_TYPES", "MODELS", "available_models", "count_parameters", "get_model", "register_model"]

INPUT_NORMS = ("standardized", "diff_normalized", "diff_and_standardized")
LABEL_NORMS = ("standardized", "diff_normalized", "bandpassed")
LABEL_TYPES = ("quantized", "continuous")


def _check_model(name: str, cls: type[nn.Module]) -> None:
    """A model class states its input contract (module docstring) before it can be registered."""
    for attr, allowed in (("input_norm", INPUT_NORMS), ("label_norm", LABEL_NORMS), ("label_type", LABEL_TYPES)):
        if getattr(cls, attr, None) not in allowed:
            raise ValueError(f"{cls.__qualname__}.{attr} must be one of {allowed}, got {getattr(cls, attr, None)!r}")
    published = getattr(cls, "published_input", None)
    if not (isinstance(published, tuple) and len(published) == 3 and all(isinstance(v, int) for v in published)):
        raise ValueError(f"{cls.__qualname__}.published_input must be a (frames, height, width) tuple of ints")
    if not callable(getattr(cls, "check_input", None)):
        raise ValueError(f"{cls.__qualname__} must define a check_input(frames, height, width) classmethod")
    cls.name = name


MODELS: Registry[type[nn.Module]] = Registry("model", __name__, on_register=_check_model)
register_model = MODELS.register
available_models = MODELS.names
get_model = MODELS.get


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameter scalars (buffers such as codebooks and BN statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
