"""CHROM, chrominance-based rPPG (de Haan & Jeanne, IEEE TBME 2013).

Follows rPPG-Toolbox ``CHROME_DEHAAN.py``: 1.6 s windows made even, 50 % overlap; per window
normalise by the window mean, build X = 3R-2G and Y = 1.5R+G-1.5B, band-pass both (order 3,
0.7-2.5 Hz, part of the method), S = X - (σX/σY)·Y, Hann-weight and overlap-add. The output
has (W/2)·(number of windows + 1) samples, so it can be shorter than the input.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal as sps

from lqrppg.signal.filters import min_filtfilt_length
from lqrppg.unsupervised import check_rgb_trace, register_method

WINDOW_S = 1.6
BAND_HZ = (0.7, 2.5)
FILTER_ORDER = 3


@register_method("CHROM")
def chrom(rgb: np.ndarray, fs: float) -> np.ndarray:
    """CHROM pulse signal of length (W/2)·(number of windows + 1) <= len(rgb)."""
    win = math.ceil(WINDOW_S * fs)
    win += win % 2
    half = win // 2
    if win < min_filtfilt_length(FILTER_ORDER):
        raise ValueError(
            f"CHROM window of {win} frames at fs={fs} Hz is too short for its order-{FILTER_ORDER} filter"
        )
    rgb = check_rgb_trace(rgb, min_frames=win)
    n_windows = (rgb.shape[0] - half) // half
    nyquist = fs / 2.0
    b, a = sps.butter(FILTER_ORDER, [BAND_HZ[0] / nyquist, BAND_HZ[1] / nyquist], btype="bandpass")

    starts = np.arange(n_windows) * half
    windows = rgb[starts[:, None] + np.arange(win)[None, :]]  # (n_windows, win, 3)
    norm = windows / windows.mean(axis=1, keepdims=True)
    r, g, bl = norm[..., 0], norm[..., 1], norm[..., 2]
    xf = sps.filtfilt(b, a, 3.0 * r - 2.0 * g, axis=1)
    yf = sps.filtfilt(b, a, 1.5 * r + g - 1.5 * bl, axis=1)
    sx, sy = xf.std(axis=1), yf.std(axis=1)
    # A constant window (std 0) contributes only its X part instead of dividing by zero.
    alpha = np.divide(sx, sy, out=np.zeros(n_windows), where=sy > 0)
    weighted = (xf - alpha[:, None] * yf) * sps.windows.hann(win)

    pulse = np.zeros(half * (n_windows + 1))
    for k, start in enumerate(starts):
        pulse[start : start + win] += weighted[k]
    return pulse
