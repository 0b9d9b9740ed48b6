"""POS, plane-orthogonal-to-skin (Wang, den Brinker, Stuijk & de Haan, IEEE TBME 2017).

Follows rPPG-Toolbox ``POS_WANG.py``: 1.6 s sliding windows with step 1, temporal
normalisation, projection onto the plane orthogonal to skin tone, alpha tuning, overlap-add,
then detrend (λ=100) and an order-1 0.75-3 Hz band-pass. Those post-filter constants are
part of the method as published, not of the evaluation chain.
"""

from __future__ import annotations

import math

import numpy as np

from lqrppg.signal.filters import bandpass, detrend
from lqrppg.unsupervised import check_rgb_trace, register_method

WINDOW_S = 1.6
PROJECTION = np.array([[0.0, 1.0, -1.0], [-2.0, 1.0, 1.0]])
DETREND_LAMBDA = 100.0
BAND_HZ = (0.75, 3.0)
FILTER_ORDER = 1


@register_method("POS")
def pos(rgb: np.ndarray, fs: float) -> np.ndarray:
    """POS pulse signal, same length as ``rgb``.

    Every full window [m, m+l) with l = ceil(1.6·fs) contributes, including the one ending
    on the last frame (the paper's loop; the toolbox's loop stops one window early, which
    only changes the last frame). Windows are vectorised rather than looped.
    """
    length = math.ceil(WINDOW_S * fs)
    rgb = check_rgb_trace(rgb, min_frames=length + 1)
    windows = np.lib.stride_tricks.sliding_window_view(rgb, length, axis=0)  # (M, 3, l)
    normalised = windows / windows.mean(axis=2, keepdims=True)
    projected = np.einsum("pc,mcl->mpl", PROJECTION, normalised)  # (M, 2, l)
    std = projected.std(axis=2)
    # A constant window (std 0) contributes nothing instead of dividing by zero.
    alpha = np.divide(std[:, 0], std[:, 1], out=np.zeros(len(std)), where=std[:, 1] > 0)
    h = projected[:, 0, :] + alpha[:, None] * projected[:, 1, :]
    h -= h.mean(axis=1, keepdims=True)
    pulse = np.zeros(rgb.shape[0])
    n_windows = h.shape[0]
    for offset in range(length):  # overlap-add: window m adds h[m, j] at frame m + j
        pulse[offset : offset + n_windows] += h[:, offset]
    return bandpass(detrend(pulse, DETREND_LAMBDA), fs, BAND_HZ, FILTER_ORDER)
