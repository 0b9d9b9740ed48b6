"""Heart rate from a processed pulse signal: periodogram peak, Welch peak, or peak counting.

The three estimators reproduce the published evaluation code (``reference/evaluation.md`` §1
steps 6-8): the rPPG-Toolbox FFT and peak methods, and the Welch variant used by RhythmFormer,
RhythmMamba and LQ-rPPG. Keeping them bit-compatible is what makes our numbers comparable.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from scipy import signal as sps

from lqrppg.signal.filters import as_signal

__all__ = ["band_mask", "hr_from_peaks", "hr_from_psd", "hr_welch", "next_pow2", "welch_nfft"]

log = logging.getLogger(__name__)

Edges = Literal["inclusive", "open"]


def next_pow2(n: int) -> int:
    """Smallest power of two >= ``n`` (1 for n <= 1), the toolbox's periodogram length rule."""
    n = int(n)
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def band_mask(freqs: np.ndarray, band_hz: tuple[float, float], edges: Edges = "inclusive") -> np.ndarray:
    """Boolean mask of ``freqs`` inside ``band_hz``, with inclusive or open edges.

    The toolbox FFT search uses ``low <= f <= high``; the Welch variant uses ``low < f < high``.
    A bin that falls exactly on an edge can change the HR, so the choice is explicit.
    """
    low, high = band_hz
    if edges == "inclusive":
        return (freqs >= low) & (freqs <= high)
    if edges == "open":
        return (freqs > low) & (freqs < high)
    raise ValueError(f"edges must be 'inclusive' or 'open', got {edges!r}")


def _peak_bpm(freqs: np.ndarray, power: np.ndarray, band_hz: tuple[float, float], edges: Edges) -> float:
    """60 × the frequency of the largest ``power`` within the band; NaN if no bin lies in it."""
    mask = band_mask(freqs, band_hz, edges)
    if not mask.any():
        log.warning(
            "no spectral bin inside band %s Hz (resolution %.3g Hz): HR is NaN",
            band_hz,
            freqs[1] - freqs[0] if freqs.size > 1 else float("nan"),
        )
        return float("nan")
    band_freqs = freqs[mask]
    return float(band_freqs[np.argmax(power[mask])] * 60.0)


def hr_from_psd(
    x: np.ndarray,
    fs: float,
    band_hz: tuple[float, float],
    nfft: int | None = None,
    edges: Edges = "inclusive",
) -> float:
    """HR (bpm) at the periodogram maximum inside ``band_hz`` — the toolbox "FFT" method.

    Periodogram with a rectangular window, density scaling, one-sided, no internal detrend,
    and ``nfft`` = next power of two >= N unless given. The resolution is 60·fs/nfft bpm,
    which is why short windows give visibly quantised HRs.
    """
    x = as_signal(x, "HR input")
    if nfft is None:
        nfft = next_pow2(x.size)
    if nfft < x.size:
        raise ValueError(f"nfft={nfft} is shorter than the signal ({x.size} samples) and would truncate it")
    freqs, power = sps.periodogram(x, fs=fs, window="boxcar", nfft=nfft, detrend=False, scaling="density")
    return _peak_bpm(freqs, power, band_hz, edges)


def welch_nfft(fs: float) -> int:
    """FFT length of the Welch variant: ``int(1e5 / fs)`` (3333 at 30 fps), as in RhythmMamba."""
    return int(1e5 / fs)


def hr_welch(x: np.ndarray, fs: float, band_hz: tuple[float, float]) -> float:
    """HR (bpm) at the Welch-PSD maximum over the OPEN band — the RhythmMamba / LQ-rPPG variant.

    Hann window, segment length min(N-1, 256), 50 % overlap, mean removal per segment,
    nfft = int(1e5/fs). Above ~390 fps that nfft would be shorter than a segment, which
    scipy rejects; the segment length is used instead there (the reference never runs there).
    """
    x = as_signal(x, "HR input")
    nperseg = min(x.size - 1, 256)
    if nperseg < 2:
        raise ValueError(f"Welch HR needs at least 3 samples, got {x.size}")
    nfft = max(welch_nfft(fs), nperseg)
    freqs, power = sps.welch(
        x,
        fs=fs,
        window="hann",
        nperseg=nperseg,
        noverlap=nperseg // 2,
        nfft=nfft,
        detrend="constant",
        return_onesided=True,
        scaling="density",
    )
    return _peak_bpm(freqs, power, band_hz, "open")


def hr_from_peaks(x: np.ndarray, fs: float) -> float:
    """HR (bpm) from the mean interval between local maxima — the toolbox "Peak" method.

    ``find_peaks`` runs with no height, distance or prominence constraint, exactly as in the
    reference, so it is noise-sensitive. NaN when fewer than two peaks exist.
    """
    x = as_signal(x, "HR input")
    peaks, _ = sps.find_peaks(x)
    if peaks.size < 2:
        log.warning("fewer than two peaks in a %d-sample signal: HR is NaN", x.size)
        return float("nan")
    return float(60.0 * fs / np.mean(np.diff(peaks)))
