"""HR estimators on synthetic sinusoids, resolution rules and band-edge handling."""

import numpy as np
import pytest
from scipy import signal as sps

from lqrppg.signal.hr import hr_from_peaks, hr_from_psd, hr_welch, next_pow2, welch_nfft


def sinusoid(bpm: float, fs: float, seconds: float = 60.0, phase: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * fs))) / fs
    return np.sin(2 * np.pi * bpm / 60.0 * t + phase)


@pytest.mark.parametrize(("n", "expected"), [(0, 1), (1, 1), (2, 2), (3, 4), (256, 256), (257, 512)])
def test_next_pow2(n, expected):
    assert next_pow2(n) == expected


@pytest.mark.parametrize(
    ("frames", "nfft", "step_bpm"),
    [(160, 256, 7.03), (180, 256, 7.03), (300, 512, 3.52), (900, 1024, 1.76), (1800, 2048, 0.88)],
)
def test_resolution_table_of_evaluation_md(frames, nfft, step_bpm):
    assert next_pow2(frames) == nfft
    assert round(60 * 30 / nfft, 2) == step_bpm
    # the FFT HR of such a window lies on that grid
    hr = hr_from_psd(sinusoid(77.0, 30.0, frames / 30.0), 30.0, (0.75, 2.5))
    steps = hr / (60 * 30 / nfft)
    assert steps == pytest.approx(round(steps), abs=1e-9)


@pytest.mark.parametrize("fs", [25.0, 30.0, 60.0])
@pytest.mark.parametrize("bpm", [50.0, 72.0, 123.0])
def test_fft_hr_of_sinusoid_within_half_a_bin(fs, bpm):
    x = sinusoid(bpm, fs)
    resolution = 60 * fs / next_pow2(x.size)
    assert abs(hr_from_psd(x, fs, (0.75, 2.5)) - bpm) <= resolution / 2 + 1e-9


def test_fft_hr_uses_given_nfft():
    x = sinusoid(72.0, 30.0, 10.0)
    coarse = hr_from_psd(x, 30.0, (0.75, 2.5))
    fine = hr_from_psd(x, 30.0, (0.75, 2.5), nfft=8192)
    assert abs(fine - 72.0) < abs(coarse - 72.0)
    with pytest.raises(ValueError, match="truncate"):
        hr_from_psd(x, 30.0, (0.75, 2.5), nfft=128)


def test_band_edges_inclusive_versus_open():
    # fs=32, N=64 -> nfft=64 -> 0.5 Hz bins: 1.0, 1.5, 2.0, 2.5 are inside [1.0, 2.5]
    t = np.arange(64) / 32.0
    x = np.cos(2 * np.pi * 2.5 * t) + 0.5 * np.cos(2 * np.pi * 1.5 * t)
    assert hr_from_psd(x, 32.0, (1.0, 2.5), edges="inclusive") == pytest.approx(150.0)
    assert hr_from_psd(x, 32.0, (1.0, 2.5), edges="open") == pytest.approx(90.0)


def test_fft_hr_is_nan_when_no_bin_falls_in_band():
    # 12 samples at 100 Hz: nfft 16, 6.25 Hz bins, none within 0.75-2.5 Hz
    assert np.isnan(hr_from_psd(np.random.default_rng(0).normal(size=12), 100.0, (0.75, 2.5)))


@pytest.mark.parametrize("fs", [25.0, 30.0, 60.0])
@pytest.mark.parametrize("bpm", [55.0, 72.0, 110.0])
def test_welch_hr_of_sinusoid(fs, bpm):
    assert hr_welch(sinusoid(bpm, fs), fs, (0.75, 2.5)) == pytest.approx(bpm, abs=1.0)


def test_welch_matches_rhythmmamba_reference_call():
    """Same number as ``welch(y, fs, nfft=1e5/fs, nperseg=min(len(y)-1, 256))`` + open-band argmax."""
    rng = np.random.default_rng(3)
    fs = 30.0
    y = sinusoid(84.0, fs, 20.0) + 0.8 * rng.normal(size=600)
    p, q = sps.welch(y, fs, nfft=int(1e5 / fs), nperseg=min(len(y) - 1, 256))
    band = (p > 45 / 60) & (p < 150 / 60)
    expected = p[band][np.argmax(q[band])] * 60
    assert welch_nfft(fs) == 3333
    assert hr_welch(y, fs, (0.75, 2.5)) == expected


def test_welch_band_is_open():
    # fs = 40 -> nfft = 2500 -> 0.016 Hz bins; 2.4 Hz is the bin 150 exactly
    fs = 40.0
    x = sinusoid(144.0, fs, 30.0)
    assert hr_welch(x, fs, (0.75, 2.4)) < 144.0
    assert hr_welch(x, fs, (0.75, 2.5)) == pytest.approx(144.0, abs=0.5)


@pytest.mark.parametrize("fs", [25.0, 30.0, 60.0])
@pytest.mark.parametrize("bpm", [50.0, 72.0, 123.0])
def test_peak_hr_of_sinusoid(fs, bpm):
    assert hr_from_peaks(sinusoid(bpm, fs), fs) == pytest.approx(bpm, rel=0.01)


def test_peak_hr_is_nan_with_fewer_than_two_peaks():
    assert np.isnan(hr_from_peaks(np.linspace(0.0, 1.0, 50), 30.0))
    assert np.isnan(hr_from_peaks(np.array([0.0, 1.0, 0.0, -1.0]), 30.0))
