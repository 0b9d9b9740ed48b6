"""The evaluation chain: from a predicted pulse and reference waveforms to HR, SNR and MACC.

Implements ``reference/evaluation.md`` §1-2. Every constant the published chains disagree on
(band, filter order, λ, HR method, band edges, SNR factor, RMSE standard error) lives in
:class:`ChainSettings` and nowhere else, so one run's configuration fully describes its numbers.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy import signal as sps

from lqrppg.signal.filters import as_signal, bandpass, detrend, min_filtfilt_length
from lqrppg.signal.hr import band_mask, hr_from_peaks, hr_from_psd, hr_welch, next_pow2

__all__ = [
    "MIN_WINDOW_SAMPLES",
    "SNR_HALF_WIDTH_HZ",
    "ChainSettings",
    "estimate_hr",
    "evaluate_signal",
    "macc",
    "process_signal",
    "snr_db",
    "window_bounds",
]

log = logging.getLogger(__name__)

#: Windows shorter than this are skipped, as in the toolbox (filtfilt's order-1 pad length).
MIN_WINDOW_SAMPLES = 9
#: Half-width of each harmonic band in the SNR: 6 bpm = 0.1 Hz (part of the SNR definition).
SNR_HALF_WIDTH_HZ = 6.0 / 60.0


class ChainSettings(BaseModel):
    """Every setting of the signal-to-metric chain; the single source of these constants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    band_hz: tuple[float, float] = Field(
        (0.75, 2.5),
        description=(
            "Pass band [low, high] in Hz. Used for the band-pass filter, the HR search interval and "
            "the SNR noise band. 0.75-2.5 Hz (45-150 bpm) matches the rPPG-Toolbox paper, "
            "RhythmMamba and LQ-rPPG; the toolbox code since PR #371 uses 0.6-3.3 Hz."
        ),
    )
    filter_order: int = Field(
        1, ge=1, description="Butterworth band-pass order, applied forward and backward (filtfilt)."
    )
    detrend_lambda: float = Field(
        100.0,
        gt=0,
        description="Smoothness-priors detrend lambda; it enters squared (100 means 1e4), as in the toolbox.",
    )
    hr_method: Literal["fft", "welch", "peak"] = Field(
        "fft",
        description=(
            "HR estimator: 'fft' = periodogram peak with next-power-of-two nfft (rPPG-Toolbox); "
            "'welch' = Welch peak, Hann, 256-sample segments, nfft=int(1e5/fs), open band "
            "(RhythmMamba / LQ-rPPG); 'peak' = 60*fs/mean inter-peak interval."
        ),
    )
    band_edges: Literal["inclusive", "open"] = Field(
        "inclusive",
        description="Whether the 'fft' HR search keeps bins on the band edges. The 'welch' method is always open.",
    )
    window_s: float | None = Field(
        None,
        gt=0,
        description=(
            "Evaluation window in seconds: consecutive non-overlapping windows, last partial kept. "
            "null = one window per whole video (the published default)."
        ),
    )
    snr_db_factor: Literal[10, 20] = Field(
        10,
        description="SNR = factor*log10(S/N): 10 in the current rPPG-Toolbox; 20 in LQ-rPPG's evaluation.",
    )
    rmse_se: Literal["sqrt_std_sq_over_sqrt_n", "std_sq_over_sqrt_n"] = Field(
        "sqrt_std_sq_over_sqrt_n",
        description=(
            "Standard error reported for RMSE: sqrt(std(e^2)/sqrt(n)) in the current toolbox; "
            "std(e^2)/sqrt(n) in LQ-rPPG's evaluation and the toolbox before Aug 2024."
        ),
    )
    diff_signal: bool = Field(
        False,
        description="Cumulatively sum prediction and reference first (for DiffNormalized models).",
    )

    @field_validator("band_hz")
    @classmethod
    def _band_ordered(cls, band: tuple[float, float]) -> tuple[float, float]:
        low, high = band
        if not 0 < low < high:
            raise ValueError(f"band_hz must satisfy 0 < low < high, got {list(band)}")
        return band


def process_signal(x: np.ndarray, fs: float, s: ChainSettings) -> np.ndarray:
    """Undo differencing if configured, detrend (λ), then band-pass (band, order)."""
    x = as_signal(x, "signal to process")
    if s.diff_signal:
        x = np.cumsum(x)
    return bandpass(detrend(x, s.detrend_lambda), fs, s.band_hz, s.filter_order)


def estimate_hr(x_processed: np.ndarray, fs: float, s: ChainSettings) -> float:
    """HR in bpm of a processed signal with the configured method."""
    if s.hr_method == "fft":
        return hr_from_psd(x_processed, fs, s.band_hz, edges=s.band_edges)
    if s.hr_method == "welch":
        return hr_welch(x_processed, fs, s.band_hz)
    return hr_from_peaks(x_processed, fs)


def snr_db(x_processed: np.ndarray, hr_ref_bpm: float, fs: float, s: ChainSettings) -> float:
    """SNR of a processed prediction around the reference HR and its second harmonic.

    Periodogram with next-power-of-two nfft; signal power is the sum over [f0±0.1 Hz] and
    [2f0±0.1 Hz] (inclusive), noise power the sum over the band minus those bins. Returns
    ``snr_db_factor·log10(S/N)``, 0 when the noise power is 0 (the toolbox's convention),
    NaN when the reference HR is NaN.
    """
    x = as_signal(x_processed, "SNR input")
    if not np.isfinite(hr_ref_bpm):
        return float("nan")
    freqs, power = sps.periodogram(x, fs=fs, window="boxcar", nfft=next_pow2(x.size), detrend=False)
    f0 = hr_ref_bpm / 60.0
    harmonics = np.zeros(freqs.shape, dtype=bool)
    for centre in (f0, 2.0 * f0):
        harmonics |= (freqs >= centre - SNR_HALF_WIDTH_HZ) & (freqs <= centre + SNR_HALF_WIDTH_HZ)
    signal_power = float(np.sum(power[harmonics]))
    noise_power = float(np.sum(power[band_mask(freqs, s.band_hz, "inclusive") & ~harmonics]))
    if noise_power == 0:
        return 0.0
    if signal_power == 0:
        return float("-inf")
    return float(s.snr_db_factor * math.log10(signal_power / noise_power))


def macc(a: np.ndarray, b: np.ndarray) -> float:
    """Maximum |Pearson| between ``a`` and circular shifts of ``b`` over lags 0…N-2.

    Both are truncated to the shorter length N first. The reference loops over lags with
    ``np.corrcoef`` (O(N²)); a circular shift changes neither mean nor std, so every lag's
    correlation is one entry of the FFT circular cross-correlation of the centred signals.
    NaN if N < 2 or either signal is constant.
    """
    a = as_signal(a, "MACC input")
    b = as_signal(b, "MACC input")
    n = min(a.size, b.size)
    if n < 2:
        return float("nan")
    a = a[:n] - a[:n].mean()
    b = b[:n] - b[:n].mean()
    norm = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    if norm == 0:
        return float("nan")
    # xcorr[k] = sum_t a[t] * b[t - k] = correlation of a with np.roll(b, k).
    xcorr = np.fft.irfft(np.fft.rfft(a) * np.conj(np.fft.rfft(b)), n=n)
    return float(np.max(np.abs(xcorr[: n - 1])) / norm)


def window_bounds(
    n: int, fs: float, window_s: float | None, min_samples: int = MIN_WINDOW_SAMPLES
) -> list[tuple[int, int]]:
    """[start, stop) frame bounds of the evaluation windows of an ``n``-frame signal.

    ``window_s`` None → the whole video. Otherwise consecutive non-overlapping windows of
    round(window_s·fs) frames, the last partial one kept; a window longer than the video
    becomes the whole video. Windows shorter than ``min_samples`` are skipped (logged).
    """
    if n < 0:
        raise ValueError(f"signal length must be >= 0, got {n}")
    if window_s is None:
        size = n
    else:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0 or None, got {window_s}")
        size = int(round(window_s * fs))
        if size < 1:
            raise ValueError(f"window of {window_s} s at {fs} Hz is shorter than one frame")
        size = min(size, n)
    bounds = []
    for start in range(0, n, max(size, 1)):
        stop = min(start + size, n)
        if stop - start < min_samples:
            log.warning("skipping window [%d, %d): %d samples < %d", start, stop, stop - start, min_samples)
            continue
        bounds.append((start, stop))
    return bounds


def evaluate_signal(
    pred: np.ndarray, references: dict[str, np.ndarray], fs: float, s: ChainSettings
) -> list[dict]:
    """Per-window HR, SNR and MACC of a prediction against one or more reference waveforms.

    Window bounds come from the longest reference and are clipped to each signal's own
    length, because predictions can be a little shorter (CHROM) or longer than a label.
    Each signal is processed per window (as the toolbox does) and its HR computed with the
    same chain and method; the ground-truth HR is always derived from the waveform.
    Windows must also be long enough for filtfilt at ``s.filter_order``; shorter ones are
    skipped (for order 1 that is 10 samples, one more than the toolbox's threshold, whose
    9-sample windows would make filtfilt fail). A clipped segment that is too short gives NaN.

    Returns one dict per window: ``window, start, stop, n_frames, hr_pred`` and for each
    reference ``r``: ``hr_r`` (its HR), ``snr_r`` (prediction SNR at ``hr_r``), ``macc_r``.
    """
    if not references:
        raise ValueError("evaluate_signal needs at least one reference waveform")
    pred = as_signal(pred, "prediction")
    refs = {name: as_signal(ref, f"reference {name!r}") for name, ref in references.items()}
    min_len = max(MIN_WINDOW_SAMPLES, min_filtfilt_length(s.filter_order))
    n_ref = max(ref.size for ref in refs.values())
    rows = []
    for index, (start, stop) in enumerate(window_bounds(n_ref, fs, s.window_s, min_samples=min_len)):
        proc_pred = _process_segment(pred, start, stop, fs, s, min_len, "prediction")
        row: dict = {
            "window": index,
            "start": start,
            "stop": stop,
            "n_frames": stop - start,
            "hr_pred": estimate_hr(proc_pred, fs, s) if proc_pred is not None else float("nan"),
        }
        for name, ref in refs.items():
            proc_ref = _process_segment(ref, start, stop, fs, s, min_len, f"reference {name!r}")
            hr_ref = estimate_hr(proc_ref, fs, s) if proc_ref is not None else float("nan")
            both = proc_pred is not None and proc_ref is not None
            row[f"hr_{name}"] = hr_ref
            row[f"snr_{name}"] = snr_db(proc_pred, hr_ref, fs, s) if proc_pred is not None else float("nan")
            row[f"macc_{name}"] = macc(proc_pred, proc_ref) if both else float("nan")
        rows.append(row)
    return rows


def _process_segment(
    x: np.ndarray, start: int, stop: int, fs: float, s: ChainSettings, min_len: int, name: str
) -> np.ndarray | None:
    """Processed ``x[start:stop]`` (clipped to ``x``), or None when too short to filter."""
    segment = x[start : min(stop, x.size)]
    if segment.size < min_len:
        log.warning(
            "%s has only %d samples in window [%d, %d) (< %d): its values are NaN",
            name, segment.size, start, stop, min_len,
        )
        return None
    return process_signal(segment, fs, s)
