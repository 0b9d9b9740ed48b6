"""Evaluate predicted pulse signals: per-video (or per-window) table, aggregates, provenance.

This is the layer the ``evaluate`` command calls. It runs the chain of
:mod:`lqrppg.signal.chain` on each session, aggregates with :func:`metric_table`, and
describes the full configuration so that every results file says how it was computed
(``reference/evaluation.md`` §4 rule 3 and §6).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from lqrppg.errors import ConfigError
from lqrppg.signal.chain import (
    MIN_WINDOW_SAMPLES,
    SNR_HALF_WIDTH_HZ,
    ChainSettings,
    evaluate_signal,
)
from lqrppg.signal.filters import min_filtfilt_length
from lqrppg.signal.hr import welch_nfft
from lqrppg.signal.metrics import RMSE_SE_FORMULAS, metric_table

__all__ = ["aggregate", "per_video_table", "settings_record"]

log = logging.getLogger(__name__)

BASE_COLUMNS = ["session", "window", "start", "stop", "n_frames", "hr_pred"]


def _session_fs(fs: float | Mapping[str, float], session: str) -> float:
    """Frame rate of ``session`` from a single value or a per-session mapping."""
    if isinstance(fs, Mapping):
        if session not in fs:
            raise ValueError(f"no frame rate given for session {session!r}")
        return float(fs[session])
    return float(fs)


def per_video_table(
    signals: Mapping[str, tuple[np.ndarray, dict[str, np.ndarray]]],
    fs: float | Mapping[str, float],
    s: ChainSettings,
) -> pd.DataFrame:
    """One row per (session, window): ``session`` plus the keys of :func:`evaluate_signal`.

    ``signals`` maps a session ID to ``(pred, {"label": ..., "true": ...})``; ``fs`` is one
    frame rate or one per session. Sorted by session, then window.
    """
    rows = []
    for session in sorted(signals):
        pred, references = signals[session]
        try:
            windows = evaluate_signal(pred, references, _session_fs(fs, session), s)
        except ValueError as exc:
            raise ValueError(f"session {session!r}: {exc}") from exc
        if not windows:
            log.warning("session %r produced no evaluation window", session)
        rows.extend({"session": session, **window} for window in windows)
    if not rows:
        return pd.DataFrame(columns=BASE_COLUMNS)
    return pd.DataFrame(rows).sort_values(["session", "window"], kind="stable").reset_index(drop=True)


def aggregate(per_video: pd.DataFrame, reference: str, s: ChainSettings) -> pd.DataFrame:
    """Metrics of ``hr_pred`` against ``hr_<reference>`` (with its SNR and MACC), plus ``reference``."""
    wanted = [f"hr_{reference}", f"snr_{reference}", f"macc_{reference}"]
    missing = [col for col in wanted if col not in per_video.columns]
    if missing:
        known = sorted(col[3:] for col in per_video.columns if col.startswith("hr_") and col != "hr_pred")
        raise ConfigError(f"unknown reference {reference!r} (missing columns {missing}); available references: {known}")
    table = metric_table(
        per_video["hr_pred"],
        per_video[f"hr_{reference}"],
        snr=per_video[f"snr_{reference}"],
        macc=per_video[f"macc_{reference}"],
        rmse_se=s.rmse_se,
    )
    table.insert(0, "reference", reference)
    return table


def settings_record(s: ChainSettings, fs: float | Mapping[str, float]) -> dict:
    """Flat, JSON-ready description of the whole evaluation configuration.

    Stored next to results so that tables only ever mix rows computed the same way.
    ``fs`` is one frame rate or a per-session mapping (recorded as its distinct values).
    """
    if isinstance(fs, Mapping):
        distinct = sorted({float(v) for v in fs.values()})
        fs_value: float | list[float] = distinct[0] if len(distinct) == 1 else distinct
    else:
        distinct = [float(fs)]
        fs_value = float(fs)
    if s.hr_method == "fft":
        nfft_rule, edges = "next power of two >= N (periodogram, rectangular window)", s.band_edges
    elif s.hr_method == "welch":
        nfft_values = sorted({welch_nfft(f) for f in distinct})
        nfft_rule = f"int(1e5/fs) = {', '.join(map(str, nfft_values))} (Welch, Hann, nperseg=min(N-1,256), 50% overlap)"
        edges = "open"
    else:
        nfft_rule, edges = "n/a (peak detection)", "n/a (peak detection)"
    min_window = max(MIN_WINDOW_SAMPLES, min_filtfilt_length(s.filter_order))
    windowing = (
        "whole video"
        if s.window_s is None
        else f"non-overlapping {s.window_s} s windows, last partial kept, windows < {min_window} samples skipped"
    )
    return {
        "band_low_hz": s.band_hz[0],
        "band_high_hz": s.band_hz[1],
        "filter": "Butterworth band-pass, filtfilt (odd padding, default padlen)",
        "filter_order": s.filter_order,
        "detrend": "smoothness priors, x - (I + lambda^2 D'D)^-1 x",
        "detrend_lambda": s.detrend_lambda,
        "diff_signal": s.diff_signal,
        "hr_method": s.hr_method,
        "nfft_rule": nfft_rule,
        "band_edges": edges,
        "window_s": s.window_s,
        "windowing": windowing,
        "fs_hz": fs_value,
        "hr_reference": "computed from the reference waveform with the same chain and method",
        "snr_db_factor": s.snr_db_factor,
        "snr_formula": (
            f"{s.snr_db_factor}*log10(S/N), S = periodogram power within +-{SNR_HALF_WIDTH_HZ:g} Hz of f0 and 2*f0, "
            "N = rest of band; next-power-of-two nfft; 0 if N = 0"
        ),
        "rmse_se": s.rmse_se,
        "rmse_se_formula": RMSE_SE_FORMULAS[s.rmse_se],
        "std_ddof": 0,
    }
