"""GREEN, POS and CHROM on synthetic RGB traces, and the method registry."""

import math
import sys

import numpy as np
import pytest
from scipy import signal as sps

from lqrppg import unsupervised
from lqrppg.errors import ConfigError
from lqrppg.signal import ChainSettings, estimate_hr, process_signal
from lqrppg.signal.filters import bandpass, detrend
from lqrppg.unsupervised import available_methods, get_method, register_method

FS = 30.0


def synthetic_rgb(bpm: float, fs: float = FS, seconds: float = 60.0, seed: int = 0) -> np.ndarray:
    """Skin DC per channel, pulse with channel weights, illumination drift and camera noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    f0 = bpm / 60.0
    pulse = np.sin(2 * np.pi * f0 * t) + 0.3 * np.sin(2 * np.pi * 2 * f0 * t + 0.5)
    dc = np.array([170.0, 120.0, 95.0])
    weights = np.array([0.33, 0.77, 0.53])
    illumination = 1.0 + 0.1 * np.sin(2 * np.pi * 0.05 * t) + 0.05 * t / t[-1]
    rgb = dc * illumination[:, None] * (1.0 + 0.005 * weights * pulse[:, None])
    return rgb + rng.normal(scale=0.5, size=rgb.shape)


def hr_of(method: str, rgb: np.ndarray, fs: float = FS) -> float:
    settings = ChainSettings()
    return estimate_hr(process_signal(get_method(method)(rgb, fs), fs, settings), fs, settings)


@pytest.mark.parametrize("bpm", [66.0, 96.0])
def test_pos_recovers_hr_within_one_bpm(bpm):
    assert hr_of("POS", synthetic_rgb(bpm)) == pytest.approx(bpm, abs=1.0)


@pytest.mark.parametrize("bpm", [66.0, 96.0])
@pytest.mark.parametrize("method", ["CHROM", "GREEN"])
def test_chrom_and_green_recover_hr_within_a_few_bpm(method, bpm):
    assert hr_of(method, synthetic_rgb(bpm)) == pytest.approx(bpm, abs=3.0)


def test_pos_matches_loop_reference():
    """The vectorised POS equals a literal per-window loop of the algorithm."""
    rgb = synthetic_rgb(80.0, seconds=8.0, seed=1)
    n = rgb.shape[0]
    length = math.ceil(1.6 * FS)
    projection = np.array([[0, 1, -1], [-2, 1, 1]])
    h_sum = np.zeros(n)
    for m in range(n - length + 1):
        cn = (rgb[m : m + length] / rgb[m : m + length].mean(axis=0)).T
        s = projection @ cn
        h = s[0] + np.std(s[0]) / np.std(s[1]) * s[1]
        h_sum[m : m + length] += h - h.mean()
    expected = bandpass(detrend(h_sum, 100.0), FS, (0.75, 3.0), 1)
    np.testing.assert_allclose(get_method("POS")(rgb, FS), expected, rtol=0, atol=1e-10)


def test_chrom_matches_toolbox_loop_reference():
    """The vectorised CHROM equals the rPPG-Toolbox window loop, including its output length."""
    rgb = synthetic_rgb(80.0, seconds=8.3, seed=2)
    fn = rgb.shape[0]
    win = math.ceil(1.6 * FS)
    win += win % 2
    n_win = math.floor((fn - win // 2) / (win // 2))
    b, a = sps.butter(3, [0.7 / (FS / 2), 2.5 / (FS / 2)], "bandpass")
    out = np.zeros((win // 2) * (n_win + 1))
    start = 0
    for _ in range(n_win):
        norm = rgb[start : start + win] / rgb[start : start + win].mean(axis=0)
        xf = sps.filtfilt(b, a, 3 * norm[:, 0] - 2 * norm[:, 1])
        yf = sps.filtfilt(b, a, 1.5 * norm[:, 0] + norm[:, 1] - 1.5 * norm[:, 2])
        out[start : start + win] += (xf - np.std(xf) / np.std(yf) * yf) * sps.windows.hann(win)
        start += win // 2
    result = get_method("CHROM")(rgb, FS)
    assert result.shape == out.shape
    assert result.size < fn
    np.testing.assert_allclose(result, out, rtol=0, atol=1e-12)


def test_green_is_the_green_channel_and_pos_keeps_length():
    rgb = synthetic_rgb(70.0, seconds=5.0)
    np.testing.assert_array_equal(get_method("GREEN")(rgb, FS), rgb[:, 1])
    assert get_method("POS")(rgb, FS).shape == (rgb.shape[0],)


# Input validation of every method (NaN, shape, non-positive, too short): test_unsupervised_more.py


@pytest.mark.parametrize("method", ["POS", "CHROM"])
def test_windowed_methods_reject_too_short_traces(method):
    with pytest.raises(ValueError):
        get_method(method)(synthetic_rgb(70.0, seconds=1.0), FS)


def test_registry_lists_methods():
    assert available_methods() == ["CHROM", "GREEN", "ICA", "LGI", "OMIT", "PBV", "POS"]


def test_unknown_method_raises_config_error_naming_it_and_the_known_ones():
    with pytest.raises(ConfigError, match="'NOSUCH'.*CHROM, GREEN, ICA, LGI, OMIT, PBV, POS"):
        get_method("NOSUCH")


def test_registration_rules(monkeypatch):
    monkeypatch.setattr(unsupervised.METHODS, "_entries", dict(unsupervised.METHODS._entries))
    with pytest.raises(ValueError, match="upper-case"):
        register_method("pos")(lambda rgb, fs: rgb[:, 1])

    @register_method("DUMMY")
    def dummy(rgb, fs):
        return rgb[:, 0]

    assert get_method("DUMMY") is dummy
    with pytest.raises(ValueError, match="twice"):
        register_method("DUMMY")(lambda rgb, fs: rgb[:, 1])


def test_methods_are_discovered_from_submodules_on_first_use(monkeypatch):
    """A fresh registry fills itself by importing every submodule; nothing lists them."""
    monkeypatch.setattr(unsupervised.METHODS, "_entries", {})
    monkeypatch.setattr(unsupervised.METHODS, "_discovered", False)
    for name in ("green", "pos", "chrom", "ica", "lgi", "pbv", "omit"):
        monkeypatch.delitem(sys.modules, f"lqrppg.unsupervised.{name}", raising=False)
    assert available_methods() == ["CHROM", "GREEN", "ICA", "LGI", "OMIT", "PBV", "POS"]
