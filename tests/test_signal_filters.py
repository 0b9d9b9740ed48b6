"""Detrend and band-pass against dense and SciPy references."""

import time

import numpy as np
import pytest
from scipy import signal as sps

from lqrppg.signal.filters import bandpass, detrend, min_filtfilt_length


def dense_detrend(x: np.ndarray, lam: float) -> np.ndarray:
    """The rPPG-Toolbox formula, literally: (I - inv(I + lam^2 D'D)) x with a dense D."""
    n = x.size
    d = np.zeros((n - 2, n))
    for row in range(n - 2):
        d[row, row : row + 3] = [1.0, -2.0, 1.0]
    eye = np.eye(n)
    return (eye - np.linalg.inv(eye + lam**2 * d.T @ d)) @ x


@pytest.mark.parametrize("lam", [100.0, 10.0, 1.5])
def test_detrend_matches_dense_formula(lam):
    rng = np.random.default_rng(0)
    t = np.arange(300) / 30.0
    x = np.cumsum(rng.normal(size=300)) + np.sin(2 * np.pi * 1.2 * t) + 0.02 * t**2
    np.testing.assert_allclose(detrend(x, lam), dense_detrend(x, lam), rtol=0, atol=1e-8)


@pytest.mark.parametrize("n", [3, 4, 5])
def test_detrend_matches_dense_formula_on_tiny_signals(n):
    x = np.arange(n, dtype=float) ** 3
    np.testing.assert_allclose(detrend(x, 100.0), dense_detrend(x, 100.0), rtol=0, atol=1e-8)


def test_detrend_removes_linear_trend_exactly_and_is_fast_on_long_signals():
    n = 20000
    x = 3.0 + 0.01 * np.arange(n)  # in the null space of D: the trend is the signal itself
    started = time.perf_counter()
    out = detrend(x, 100.0)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"detrend of {n} samples took {elapsed:.2f} s"
    np.testing.assert_allclose(out, 0.0, atol=1e-6)


def test_detrend_keeps_pulse_band_content():
    t = np.arange(1800) / 30.0
    pulse = np.sin(2 * np.pi * 1.2 * t)
    out = detrend(pulse + 0.5 * t / t[-1], 100.0)
    # away from the ends the 1.2 Hz component passes almost untouched
    np.testing.assert_allclose(out[300:-300], pulse[300:-300], atol=0.05)


@pytest.mark.parametrize("bad", [np.array([1.0, np.nan, 2.0, 3.0]), np.ones((4, 2)), np.ones(2)])
def test_detrend_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        detrend(bad)


def test_detrend_rejects_non_positive_lambda():
    with pytest.raises(ValueError, match="lambda"):
        detrend(np.ones(10), 0.0)


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("fs", [25.0, 30.0, 60.0])
def test_bandpass_matches_scipy_reference(order, fs):
    rng = np.random.default_rng(1)
    x = rng.normal(size=400)
    b, a = sps.butter(order, [0.75 / (fs / 2), 2.5 / (fs / 2)], btype="bandpass")
    np.testing.assert_allclose(bandpass(x, fs, (0.75, 2.5), order), sps.filtfilt(b, a, x), rtol=0, atol=1e-12)


def test_bandpass_passes_in_band_and_attenuates_out_of_band():
    fs = 30.0
    t = np.arange(1800) / fs
    inside = np.sin(2 * np.pi * 1.5 * t)
    outside = np.sin(2 * np.pi * 8.0 * t)
    mid = slice(300, -300)
    assert np.std(bandpass(inside, fs, (0.75, 2.5))[mid]) > 0.9 * np.std(inside)
    assert np.std(bandpass(outside, fs, (0.75, 2.5), order=3)[mid]) < 0.01 * np.std(outside)


def test_bandpass_length_limit_is_filtfilt_padding():
    assert min_filtfilt_length(1) == 10
    assert min_filtfilt_length(2) == 16
    bandpass(np.random.default_rng(2).normal(size=10), 30.0, (0.75, 2.5), order=1)
    with pytest.raises(ValueError, match="too short"):
        bandpass(np.ones(9), 30.0, (0.75, 2.5), order=1)
    with pytest.raises(ValueError, match="too short"):
        bandpass(np.ones(15), 30.0, (0.75, 2.5), order=2)


@pytest.mark.parametrize(
    ("fs", "band"),
    [(30.0, (2.5, 0.75)), (30.0, (0.0, 2.5)), (4.0, (0.75, 2.5)), (5.0, (0.75, 2.5))],
)
def test_bandpass_rejects_band_invalid_for_fs(fs, band):
    with pytest.raises(ValueError, match="band"):
        bandpass(np.ones(100), fs, band)


def test_bandpass_rejects_nan():
    x = np.ones(100)
    x[50] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        bandpass(x, 30.0, (0.75, 2.5))
