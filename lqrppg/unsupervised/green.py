"""GREEN (Verkruysse, Svaasand & Nelson, Optics Express 2008): the green channel is the pulse."""

from __future__ import annotations

import numpy as np

from lqrppg.unsupervised import check_rgb_trace, register_method


@register_method("GREEN")
def green(rgb: np.ndarray, fs: float) -> np.ndarray:
    """Green-channel mean; haemoglobin absorbs most in green, so it carries the strongest pulse.

    ``fs`` is unused but part of the common method signature.
    """
    return check_rgb_trace(rgb)[:, 1].copy()
