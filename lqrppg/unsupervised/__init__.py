"""Registry of unsupervised rPPG methods (GREEN, POS, CHROM, ...).

Each method lives in its own submodule and registers itself with :func:`register_method`.
The registry imports every submodule of this package on first use, so adding a method is
one new file: no list, no if-chain to edit.

A method maps the spatial-mean RGB trace of the face, ``(T, 3)`` float64 in R, G, B order
with values in 0-255, and the frame rate to a 1-D pulse signal.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lqrppg.registry import Registry

__all__ = ["METHODS", "Method", "available_methods", "check_rgb_trace", "get_method", "register_method"]

Method = Callable[[np.ndarray, float], np.ndarray]

def _check_method(name: str, method: Method) -> None:
    if name != name.upper() or not name:
        raise ValueError(f"unsupervised method names are upper-case, got {name!r}")


METHODS: Registry[Method] = Registry("unsupervised method", __name__, on_register=_check_method)
register_method = METHODS.register
available_methods = METHODS.names
get_method = METHODS.get


def check_rgb_trace(rgb: np.ndarray, min_frames: int = 2) -> np.ndarray:
    """Validate a spatial-mean RGB trace and return it as float64 ``(T, 3)``.

    The methods normalise by channel means, so values must be finite and positive.
    """
    arr = np.asarray(rgb, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"RGB trace must have shape (T, 3), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("RGB trace contains NaN or inf")
    if np.any(arr <= 0):
        raise ValueError("RGB trace must be positive (methods divide by channel means)")
    if arr.shape[0] < min_frames:
        raise ValueError(f"RGB trace has {arr.shape[0]} frames; this method needs at least {min_frames}")
    return arr
