"""Physiology of the synthetic benchmark: heart rate, pulse morphology, label distortions, spec."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import signal

from lqrppg.synth.pulse import (
    BeatShape,
    PulseParams,
    distort_label,
    oximeter_hr,
    sample_beat_shape,
    simulate_pulse,
)
from lqrppg.synth.spec import LabelDistortion, SynthDatasetSpec, default_datasets

FS = 30.0


def _spectral_peak_bpm(x: np.ndarray, fs: float) -> float:
    """Frequency (bpm) of the largest periodogram peak in 40-180 bpm, finely zero-padded."""
    n = 1 << 18
    freqs = np.fft.rfftfreq(n, 1.0 / fs) * 60.0
    power = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(len(x)), n)) ** 2
    band = (freqs >= 40) & (freqs <= 180)
    return float(freqs[band][np.argmax(power[band])])


def _bandpass(x: np.ndarray, fs: float) -> np.ndarray:
    return signal.sosfiltfilt(signal.butter(2, [0.7, 3.0], btype="bandpass", fs=fs, output="sos"), x)


@pytest.fixture(scope="module")
def track():
    return simulate_pulse(PulseParams(mean_hr_bpm=75.0), 120.0, np.random.default_rng(3))


@pytest.mark.parametrize("mean_hr", [48.0, 72.0, 110.0, 145.0])
def test_spectral_peak_is_the_set_mean_hr(mean_hr):
    track = simulate_pulse(PulseParams(mean_hr_bpm=mean_hr), 60.0, np.random.default_rng(int(mean_hr)))
    t = np.arange(int(60 * FS)) / FS
    assert abs(track.hr(t).mean() - mean_hr) < 0.2
    assert abs(_spectral_peak_bpm(track.bvp(t), FS) - mean_hr) < 2.0


def test_heart_rate_varies_smoothly_with_breathing(track):
    t = np.arange(int(120 * FS)) / FS
    hr = track.hr(t)
    assert 1.0 < hr.std() < 10.0, "HRV and trend should move the rate by a few bpm"
    assert np.abs(np.diff(hr)).max() < 1.0, "rate changes smoothly between frames"
    # Respiratory sinus arrhythmia: the HR series peaks at the breathing rate.
    freqs = np.fft.rfftfreq(len(hr), 1 / FS)
    power = np.abs(np.fft.rfft(signal.detrend(hr))) ** 2
    band = (freqs > 0.1) & (freqs < 0.6)
    assert abs(freqs[band][np.argmax(power[band])] - track.params.resp_rate_hz) < 0.05
    # Amplitude modulation by breathing.
    assert np.ptp(track.amplitude) > 0.15


@pytest.mark.parametrize("seed", range(6))
def test_every_beat_shape_has_a_dicrotic_notch(seed):
    shape = sample_beat_shape(np.random.default_rng(seed))
    cycle = shape.normalised(np.linspace(0.0, 1.0, 2000, endpoint=False))
    rising = np.diff(np.r_[cycle, cycle[:1]]) > 0
    peaks = np.flatnonzero(rising[:-1] & ~rising[1:])
    assert len(peaks) == 2, "systolic peak and diastolic peak, separated by the notch"
    assert np.ptp(cycle) == pytest.approx(1.0, rel=1e-3)
    assert abs(cycle.mean()) < 1e-6


def test_sampled_pulse_shows_two_maxima_per_beat(track):
    fs = 250.0
    t = np.arange(int(30 * fs)) / fs
    x = track.bvp(t)
    maxima = signal.argrelmax(x, order=3)[0]
    beats = np.diff(np.floor(np.interp(t, track.t, track.phase))).sum()
    assert len(maxima) / beats == pytest.approx(2.0, abs=0.15)


def test_label_at_level_zero_is_the_clean_pulse(track):
    t = np.arange(int(60 * FS)) / FS
    label = distort_label(track, t, LabelDistortion(level=0.0), np.random.default_rng(0))
    assert label.delay_s == 0.0
    assert np.corrcoef(label.values, track.bvp(t))[0, 1] > 0.9999
    assert 0.0 <= label.values.min() and label.values.max() <= 1.0


def test_label_degrades_with_level(track):
    t = np.arange(int(120 * FS)) / FS
    scores = []
    for level in (0.5, 1.0, 2.0):
        corr = []
        for seed in range(4):
            label = distort_label(track, t, LabelDistortion(level=level), np.random.default_rng(seed))
            clean = track.bvp(t - label.delay_s)
            corr.append(np.corrcoef(_bandpass(label.values, FS), _bandpass(clean, FS))[0, 1])
        scores.append(np.mean(corr))
    assert scores[0] > scores[1] > scores[2]
    assert 0.6 < scores[1] < 0.95, "default label: clearly related to the pulse, clearly degraded"


def test_delay_is_recovered_by_cross_correlation(track):
    fs = 60.0
    t = np.arange(int(60 * fs)) / fs
    only_delay = LabelDistortion(
        delay_s=(0.2, 0.2), baseline_wander=0, motion_bursts_per_min=0, contact_loss_per_min=0,
        clipping=0, morphology=0, noise_std=0,
    )
    for cfg, tolerance in ((only_delay, 1.5 / fs), (LabelDistortion(delay_s=(0.2, 0.2)), 0.12)):
        label = distort_label(track, t, cfg, np.random.default_rng(1))
        xcorr = signal.correlate(_bandpass(label.values, fs), _bandpass(track.bvp(t), fs))
        lags = signal.correlation_lags(len(t), len(t)) / fs
        window = (lags >= 0) & (lags < 0.6)
        assert lags[window][np.argmax(xcorr[window])] == pytest.approx(0.2, abs=tolerance)


def test_clipping_contact_loss_and_bursts(track):
    t = np.arange(int(120 * FS)) / FS
    cfg = LabelDistortion(clipping=0.05, contact_loss_per_min=3.0, motion_bursts_per_min=3.0)
    label = distort_label(track, t, cfg, np.random.default_rng(2))
    at_rails = np.mean((label.values == 0.0) | (label.values == 1.0))
    assert 0.03 < at_rails < 0.1
    flat = np.diff(label.values) == 0
    longest = max(len(run) for run in "".join("1" if f else "0" for f in flat).split("0"))
    assert longest >= FS, "contact loss holds the value for at least a second"
    assert (label.quality == 0).any() and (label.quality < 1).mean() > 0.05


def test_oximeter_hr_is_an_integer_lagging_average(track):
    t = np.arange(int(60 * FS)) / FS
    hr = oximeter_hr(track, t, np.random.default_rng(0))
    assert np.array_equal(hr, np.round(hr))
    assert abs(hr.mean() - track.hr(t).mean()) < 2.5
    assert len(np.unique(hr[: int(FS)])) == 1, "updated once per second"


def test_beat_shape_defaults_are_normalised():
    cycle = BeatShape().normalised(np.linspace(0, 1, 500, endpoint=False))
    assert np.ptp(cycle) == pytest.approx(1.0, rel=1e-3)


def test_spec_defaults_and_validation():
    ubfc = SynthDatasetSpec(layout="ubfc-rppg")
    assert ubfc.label_rate_hz is None and ubfc.codec == "FFV1" and ubfc.n_frames == 900
    assert SynthDatasetSpec(layout="pure").label_rate_hz == 60.0
    assert SynthDatasetSpec(layout="pure", label_rate_hz=30.0).label_rate_hz == 30.0
    with pytest.raises(ValidationError):
        SynthDatasetSpec(layout="ubfc-rppg", tasks_per_subject=2)
    with pytest.raises(ValidationError):
        SynthDatasetSpec(layout="ubfc-rppg", label_rate_hz=60.0)
    with pytest.raises(ValidationError):
        SynthDatasetSpec(layout="pure", unknown_key=1)
    with pytest.raises(ValidationError):
        SynthDatasetSpec(layout="pure", hr_range_bpm=(120, 60))
    with pytest.raises(ValidationError):
        LabelDistortion(level=-1)
    with pytest.raises(ValidationError):
        ubfc.fps = 25  # frozen
    presets = default_datasets()
    assert {s.layout for s in presets.values()} == {"ubfc-rppg", "pure"}
    assert SynthDatasetSpec.model_validate(presets["synth-motion"].model_dump()) == presets["synth-motion"]


def test_every_config_field_is_documented():
    def walk(schema: dict, defs: dict) -> None:
        for name, prop in schema.get("properties", {}).items():
            assert prop.get("description"), f"{name} has no description"
            ref = prop.get("$ref") or next((a["$ref"] for a in prop.get("anyOf", []) if "$ref" in a), None)
            if ref:
                walk(defs[ref.split("/")[-1]], defs)

    schema = SynthDatasetSpec.model_json_schema()
    walk(schema, schema.get("$defs", {}))
