"""Detrending and band-pass filtering of pulse signals.

Both steps follow the rPPG-Toolbox chain (``evaluation/post_process.py``) so that heart rates
computed here are comparable with published numbers; see ``reference/evaluation.md`` §1 steps 4-5.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from scipy import signal as sps

__all__ = ["as_signal", "bandpass", "detrend", "min_filtfilt_length"]


def as_signal(x: np.ndarray, name: str = "signal") -> np.ndarray:
    """Return ``x`` as a finite 1-D float64 array, or raise ``ValueError`` naming ``name``.

    NaN or inf would silently poison every later step (the filter spreads them over the
    whole signal), so they are rejected at the door.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf ({int(np.sum(~np.isfinite(arr)))} of {arr.size} samples)")
    return arr


def detrend(x: np.ndarray, lam: float = 100.0) -> np.ndarray:
    """Smoothness-priors detrend (Tarvainen et al. 2002): ``x - (I + lam²·DᵀD)⁻¹ x``.

    ``D`` is the (N-2)×N second-difference matrix. The reference code inverts the dense N×N
    matrix (O(N³) time, O(N²) memory); ``I + lam²·DᵀD`` is symmetric positive definite and
    pentadiagonal, so a banded Cholesky solve gives the same result in O(N).
    Note that ``lam`` enters squared, as in the reference (λ=100 means 10⁴).
    """
    x = as_signal(x, "detrend input")
    n = x.size
    if n < 3:
        raise ValueError(f"detrend needs at least 3 samples, got {n}")
    if not lam > 0:
        raise ValueError(f"detrend lambda must be > 0, got {lam}")
    lam2 = float(lam) ** 2
    # Diagonals of DᵀD for rows [1, -2, 1]: main [1, 5, 6, ..., 6, 5, 1], first off [-2, -4, ..., -4, -2],
    # second off all 1. Built by accumulation so short N (3, 4) come out right too.
    main = np.zeros(n)
    off1 = np.zeros(n - 1)
    off2 = np.ones(n - 2)
    for k, weight in enumerate((1.0, 4.0, 1.0)):
        main[k : n - 2 + k] += weight
    off1[: n - 2] -= 2.0
    off1[1 : n - 1] -= 2.0
    # Upper banded storage for solveh_banded: ab[u + i - j, j] = A[i, j] with u = 2.
    ab = np.zeros((3, n))
    ab[0, 2:] = lam2 * off2
    ab[1, 1:] = lam2 * off1
    ab[2, :] = 1.0 + lam2 * main
    trend = linalg.solveh_banded(ab, x, check_finite=False)
    return x - trend


def min_filtfilt_length(order: int) -> int:
    """Shortest signal that ``filtfilt`` accepts for a Butterworth band-pass of ``order``.

    A band-pass of order k has 2k+1 coefficients; ``filtfilt``'s default pad length is
    3·(2k+1) and the input must be strictly longer than that (10 samples for order 1).
    """
    return 3 * (2 * order + 1) + 1


def bandpass(x: np.ndarray, fs: float, band_hz: tuple[float, float], order: int = 1) -> np.ndarray:
    """Zero-phase Butterworth band-pass, as the reference chain applies it.

    ``scipy.signal.butter`` with edges normalised by Nyquist, then ``filtfilt`` with its
    defaults (odd extension, pad length 3·max(len(a), len(b))), so results match the toolbox.
    """
    x = as_signal(x, "bandpass input")
    low, high = (float(v) for v in band_hz)
    nyquist = fs / 2.0
    if not fs > 0:
        raise ValueError(f"sampling rate must be > 0, got {fs}")
    if not 0 < low < high < nyquist:
        raise ValueError(f"band {band_hz} Hz is invalid for fs={fs} Hz: need 0 < low < high < Nyquist ({nyquist} Hz)")
    if order < 1:
        raise ValueError(f"filter order must be >= 1, got {order}")
    needed = min_filtfilt_length(order)
    if x.size < needed:
        raise ValueError(
            f"signal of {x.size} samples is too short for an order-{order} band-pass with filtfilt "
            f"(needs at least {needed} samples)"
        )
    b, a = sps.butter(order, [low / nyquist, high / nyquist], btype="bandpass")
    return sps.filtfilt(b, a, x)
