"""Signal processing and evaluation chain: filters, HR estimators, SNR/MACC and metrics."""

from lqrppg.signal.chain import (
    ChainSettings,
    estimate_hr,
    evaluate_signal,
    macc,
    process_signal,
    snr_db,
    window_bounds,
)
from lqrppg.signal.filters import bandpass, detrend
from lqrppg.signal.hr import hr_from_peaks, hr_from_psd, hr_welch, next_pow2
from lqrppg.signal.metrics import metric_table

__all__ = [
    "ChainSettings",
    "bandpass",
    "detrend",
    "estimate_hr",
    "evaluate_signal",
    "hr_from_peaks",
    "hr_from_psd",
    "hr_welch",
    "macc",
    "metric_table",
    "next_pow2",
    "process_signal",
    "snr_db",
    "window_bounds",
]
