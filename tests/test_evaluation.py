"""Chain settings, SNR, MACC, windowing, per-window evaluation, aggregation and provenance."""

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy import signal as sps

from lqrppg.errors import ConfigError
from lqrppg.evaluation import aggregate, per_video_table, settings_record
from lqrppg.signal import (
    ChainSettings,
    estimate_hr,
    evaluate_signal,
    hr_from_peaks,
    hr_from_psd,
    hr_welch,
    macc,
    metric_table,
    process_signal,
    snr_db,
    window_bounds,
)

FS = 30.0


def pulse(bpm: float, n: int, fs: float = FS, phase: float = 0.0) -> np.ndarray:
    return np.sin(2 * np.pi * bpm / 60.0 * np.arange(n) / fs + phase)


# --- settings -----------------------------------------------------------------------------


def test_settings_defaults_and_descriptions():
    s = ChainSettings()
    assert (s.band_hz, s.filter_order, s.detrend_lambda, s.hr_method) == ((0.75, 2.5), 1, 100.0, "fft")
    assert (s.band_edges, s.window_s, s.snr_db_factor, s.diff_signal) == ("inclusive", None, 10, False)
    assert s.rmse_se == "sqrt_std_sq_over_sqrt_n"
    properties = ChainSettings.model_json_schema()["properties"]
    assert set(properties) == set(ChainSettings.model_fields)
    assert all(prop.get("description") for prop in properties.values())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"band_hz": (2.5, 0.75)},
        {"band_hz": (0.0, 2.5)},
        {"band_hz": (1.0, 1.0)},
        {"filter_order": 0},
        {"detrend_lambda": 0.0},
        {"hr_method": "FFT"},
        {"window_s": 0.0},
        {"snr_db_factor": 15},
        {"unknown_key": 1},
    ],
)
def test_settings_validation(kwargs):
    with pytest.raises(ValidationError):
        ChainSettings(**kwargs)


def test_settings_are_frozen():
    with pytest.raises(ValidationError):
        ChainSettings().filter_order = 2


# --- processing and HR ---------------------------------------------------------------------


def test_process_signal_rejects_nan():
    x = pulse(72, 300)
    x[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        process_signal(x, FS, ChainSettings())


def test_diff_signal_undoes_differencing():
    rng = np.random.default_rng(0)
    x = pulse(72, 600) + 0.3 * rng.normal(size=600)
    plain = process_signal(x, FS, ChainSettings())
    from_diff = process_signal(np.diff(x, prepend=0.0), FS, ChainSettings(diff_signal=True))
    np.testing.assert_allclose(from_diff, plain, atol=1e-9)


def test_estimate_hr_dispatches_on_method():
    x = process_signal(pulse(84, 900) + 0.2 * np.random.default_rng(1).normal(size=900), FS, ChainSettings())
    assert estimate_hr(x, FS, ChainSettings()) == hr_from_psd(x, FS, (0.75, 2.5))
    assert estimate_hr(x, FS, ChainSettings(band_edges="open")) == hr_from_psd(x, FS, (0.75, 2.5), edges="open")
    assert estimate_hr(x, FS, ChainSettings(hr_method="welch")) == hr_welch(x, FS, (0.75, 2.5))
    assert estimate_hr(x, FS, ChainSettings(hr_method="peak")) == hr_from_peaks(x, FS)


# --- SNR -----------------------------------------------------------------------------------


def toolbox_snr(pred: np.ndarray, hr_label: float, fs: float, low: float = 0.75, high: float = 2.5) -> float:
    """Current rPPG-Toolbox _calculate_SNR, restated."""
    n = 1 << (pred.size - 1).bit_length()
    f, p = sps.periodogram(pred, fs=fs, nfft=n, detrend=False)
    f1, f2, dev = hr_label / 60, 2 * hr_label / 60, 0.1
    h1 = (f >= f1 - dev) & (f <= f1 + dev)
    h2 = (f >= f2 - dev) & (f <= f2 + dev)
    rem = (f >= low) & (f <= high) & ~h1 & ~h2
    return 10 * np.log10((p[h1].sum() + p[h2].sum()) / p[rem].sum())


def test_snr_matches_toolbox_formula_and_factor_doubles_it():
    rng = np.random.default_rng(2)
    x = process_signal(pulse(75, 900) + 0.7 * rng.normal(size=900), FS, ChainSettings())
    ten = snr_db(x, 75.0, FS, ChainSettings())
    assert ten == pytest.approx(toolbox_snr(x, 75.0, FS), rel=1e-12)
    assert snr_db(x, 75.0, FS, ChainSettings(snr_db_factor=20)) == pytest.approx(2 * ten, rel=1e-12)


def test_snr_high_for_clean_pulse_low_for_noise():
    s = ChainSettings()
    clean = process_signal(pulse(75, 900), FS, s)
    noise = process_signal(np.random.default_rng(3).normal(size=900), FS, s)
    assert snr_db(clean, 75.0, FS, s) > 10.0
    assert snr_db(noise, 75.0, FS, s) < 0.0


def test_snr_edge_cases():
    s = ChainSettings()
    assert snr_db(np.zeros(300), 75.0, FS, s) == 0.0  # no noise power
    assert math.isnan(snr_db(pulse(75, 300), float("nan"), FS, s))


# --- MACC ----------------------------------------------------------------------------------


def brute_force_macc(a: np.ndarray, b: np.ndarray) -> float:
    """rPPG-Toolbox _compute_macc, restated: O(N^2) loop over circular lags 0..N-2."""
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    return max(abs(np.corrcoef(a, np.roll(b, lag))[0, 1]) for lag in range(n - 1))


@pytest.mark.parametrize(("na", "nb"), [(300, 300), (257, 300), (300, 211)])
def test_macc_fft_equals_brute_force(na, nb):
    rng = np.random.default_rng(na + nb)
    a = pulse(70, na) + rng.normal(size=na)
    b = pulse(70, nb, phase=1.0) + rng.normal(size=nb)
    assert macc(a, b) == pytest.approx(brute_force_macc(a, b), abs=1e-12)


def test_macc_of_shifted_copy_is_one_and_of_constant_is_nan():
    x = np.random.default_rng(4).normal(size=128)
    assert macc(x, np.roll(x, -17)) == pytest.approx(1.0)
    assert math.isnan(macc(x, np.ones(128)))
    assert math.isnan(macc(x[:1], x[:1]))


# --- windows -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "fs", "window_s", "expected"),
    [
        (700, 30.0, None, [(0, 700)]),
        (700, 30.0, 10.0, [(0, 300), (300, 600), (600, 700)]),
        (605, 30.0, 10.0, [(0, 300), (300, 600)]),  # 5-sample tail skipped
        (609, 30.0, 10.0, [(0, 300), (300, 600), (600, 609)]),  # 9 samples kept
        (250, 30.0, 10.0, [(0, 250)]),  # window longer than the video
        (600, 29.97, 10.0, [(0, 300), (300, 600)]),  # 299.7 frames rounds to 300
        (8, 30.0, None, []),
        (0, 30.0, None, []),
    ],
)
def test_window_bounds(n, fs, window_s, expected):
    assert window_bounds(n, fs, window_s) == expected


def test_window_bounds_rejects_sub_frame_windows():
    with pytest.raises(ValueError):
        window_bounds(100, 30.0, 0.01)


# --- evaluate_signal -----------------------------------------------------------------------


def test_evaluate_signal_whole_video():
    rng = np.random.default_rng(5)
    label = pulse(72, 1800) + 0.2 * rng.normal(size=1800)
    pred = pulse(72, 1800, phase=0.4) + 0.8 * rng.normal(size=1800)
    rows = evaluate_signal(pred, {"label": label, "true": pulse(72, 1800)}, FS, ChainSettings())
    assert len(rows) == 1
    row = rows[0]
    expected_keys = {"window", "start", "stop", "n_frames", "hr_pred"}
    expected_keys |= {f"{m}_{r}" for m in ("hr", "snr", "macc") for r in ("label", "true")}
    assert set(row) == expected_keys
    assert (row["window"], row["start"], row["stop"], row["n_frames"]) == (0, 0, 1800, 1800)
    assert row["hr_pred"] == pytest.approx(72.0, abs=0.5)
    assert row["hr_label"] == pytest.approx(72.0, abs=0.5)
    assert row["macc_true"] > 0.8
    s = ChainSettings()
    proc_pred, proc_label = process_signal(pred, FS, s), process_signal(label, FS, s)
    assert row["hr_label"] == estimate_hr(proc_label, FS, s)  # ground truth from the waveform
    assert row["snr_label"] == snr_db(proc_pred, row["hr_label"], FS, s)
    assert row["macc_label"] == macc(proc_pred, proc_label)


def test_evaluate_signal_windows_and_shorter_prediction():
    label = pulse(90, 700)
    pred = pulse(90, 690)  # e.g. CHROM output, a little shorter
    rows = evaluate_signal(pred, {"label": label}, FS, ChainSettings(window_s=10.0))
    assert [(r["start"], r["stop"], r["n_frames"]) for r in rows] == [(0, 300, 300), (300, 600, 300), (600, 700, 100)]
    s = ChainSettings(window_s=10.0)
    last_pred = process_signal(pred[600:690], FS, s)
    assert rows[2]["hr_pred"] == estimate_hr(last_pred, FS, s)
    assert rows[2]["macc_label"] == macc(last_pred, process_signal(label[600:700], FS, s))
    # 300-frame windows: nfft 512, 3.52 bpm bins
    assert all(abs(r["hr_label"] - 90.0) <= 1.76 for r in rows[:2])


def test_evaluate_signal_clipped_segment_too_short_gives_nan():
    rows = evaluate_signal(pulse(90, 605), {"label": pulse(90, 900)}, FS, ChainSettings(window_s=10.0))
    assert len(rows) == 3
    assert math.isnan(rows[2]["hr_pred"]) and math.isnan(rows[2]["snr_label"])
    assert not math.isnan(rows[2]["hr_label"])


def test_evaluate_signal_skips_windows_too_short_for_the_filter_order():
    # a 12-sample tail is kept for order 1 (needs 10) but not for order 2 (needs 16)
    n = 312
    one = evaluate_signal(pulse(90, n), {"label": pulse(90, n)}, FS, ChainSettings(window_s=10.0))
    two = evaluate_signal(pulse(90, n), {"label": pulse(90, n)}, FS, ChainSettings(window_s=10.0, filter_order=2))
    assert len(one) == 2 and len(two) == 1


def test_evaluate_signal_input_errors():
    with pytest.raises(ValueError, match="reference"):
        evaluate_signal(pulse(72, 300), {}, FS, ChainSettings())
    bad = pulse(72, 300)
    bad[3] = np.nan
    with pytest.raises(ValueError, match="label"):
        evaluate_signal(pulse(72, 300), {"label": bad}, FS, ChainSettings())


# --- per-video table, aggregation, provenance ----------------------------------------------


def make_signals():
    rng = np.random.default_rng(6)
    signals = {}
    for session, bpm in (("s2", 80.0), ("s1", 65.0), ("s3", 100.0)):
        label = pulse(bpm, 900) + 0.1 * rng.normal(size=900)
        pred = pulse(bpm + 2.0, 900) + 0.5 * rng.normal(size=900)
        signals[session] = (pred, {"label": label, "true": pulse(bpm, 900)})
    return signals


def test_per_video_table_sorted_with_per_session_fs():
    table = per_video_table(make_signals(), {"s1": FS, "s2": FS, "s3": FS}, ChainSettings(window_s=10.0))
    assert list(table["session"]) == ["s1"] * 3 + ["s2"] * 3 + ["s3"] * 3
    assert list(table["window"]) == [0, 1, 2] * 3
    assert {"session", "hr_pred", "hr_label", "snr_true", "macc_label"} <= set(table.columns)
    with pytest.raises(ValueError, match="s1"):
        per_video_table(make_signals(), {"s2": FS, "s3": FS}, ChainSettings())


def test_aggregate_uses_the_named_reference():
    s = ChainSettings(rmse_se="std_sq_over_sqrt_n")
    table = per_video_table(make_signals(), FS, s)
    assert len(table) == 3
    agg = aggregate(table, "true", s)
    expected = metric_table(table["hr_pred"], table["hr_true"], table["snr_true"], table["macc_true"], s.rmse_se)
    assert list(agg.columns) == ["reference", "metric", "value", "se", "se_formula", "n"]
    assert (agg["reference"] == "true").all()
    pd.testing.assert_frame_equal(agg.drop(columns="reference"), expected)
    assert agg.set_index("metric").loc["MAE", "value"] == pytest.approx(2.0, abs=1.0)
    with pytest.raises(ConfigError, match="'ppg'.*label.*true"):
        aggregate(table, "ppg", s)


def test_settings_record_describes_the_configuration():
    record = settings_record(ChainSettings(hr_method="welch", window_s=10.0, snr_db_factor=20), 30.0)
    assert record["band_low_hz"] == 0.75 and record["band_high_hz"] == 2.5
    assert record["hr_method"] == "welch" and record["band_edges"] == "open"
    assert "3333" in record["nfft_rule"]
    assert record["fs_hz"] == 30.0 and record["window_s"] == 10.0
    assert record["snr_db_factor"] == 20 and record["rmse_se_formula"] == "sqrt(std(e^2)/sqrt(n))"
    assert all(not isinstance(v, dict) for v in record.values())
    mixed = settings_record(ChainSettings(), {"a": 30.0, "b": 25.0, "c": 30.0})
    assert mixed["fs_hz"] == [25.0, 30.0] and mixed["band_edges"] == "inclusive"
    assert mixed["windowing"] == "whole video" and mixed["diff_signal"] is False
