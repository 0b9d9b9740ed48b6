"""Physiology: heart-rate trajectory, blood-volume-pulse waveform, and the contact-PPG label.

The pulse is *phase driven*: an instantaneous heart rate is integrated into a beat
phase, and a per-subject beat template is evaluated at that phase. Beats therefore
stretch and shrink smoothly with the heart rate, and the spectral peak of the pulse
sits at the mean heart rate by construction.

Everything is computed on a fine regular grid (:data:`GRID_HZ`) that extends
:data:`PAD_S` seconds beyond both ends of the recording, so that a delayed label or
a causal sensor filter never runs off the end; signals are then read at any time by
interpolating the (smooth) phase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from lqrppg.synth.spec import LabelDistortion

#: Sampling rate of the internal physiology grid (Hz).
GRID_HZ = 120.0
#: Extra seconds simulated before time 0 and after the end of a recording.
PAD_S = 12.0
#: Heart rates are kept within this physiological band (bpm).
HR_LIMITS_BPM = (40.0, 180.0)


def _periodic_bump(phase: np.ndarray, centre: float, left: float, right: float) -> np.ndarray:
    """One-cycle-periodic Gaussian bump with different widths before and after its centre.

    The cycle is cut where both flanks have decayed equally (in widths), so the
    periodic extension has no visible step.
    """
    start = -left / (left + right)  # the cut, in cycles relative to the centre
    d = (phase - centre - start) % 1.0 + start
    return np.where(d < 0, np.exp(-0.5 * (d / left) ** 2), np.exp(-0.5 * (d / right) ** 2))


@dataclass(frozen=True)
class BeatShape:
    """One cardiac cycle as two asymmetric Gaussians (systolic wave + reflected diastolic wave).

    The systolic wave rises fast and falls slower; the diastolic wave follows after
    ``gap`` cycles and decays through diastole. Their overlap leaves a dicrotic notch
    for every parameter combination :func:`sample_beat_shape` can draw. Phases are in
    cycles (0..1).
    """

    systolic_phase: float = 0.2
    rise: float = 0.055
    fall: float = 0.095
    gap: float = 0.31
    diastolic_width: float = 0.065
    diastolic_ratio: float = 0.45

    def raw(self, phase: np.ndarray) -> np.ndarray:
        """Template value at ``phase`` (cycles, any real number), unnormalised."""
        systolic = _periodic_bump(phase, self.systolic_phase, self.rise, self.fall)
        diastolic = _periodic_bump(
            phase, self.systolic_phase + self.gap, self.diastolic_width, 2.2 * self.diastolic_width
        )
        return systolic + self.diastolic_ratio * diastolic

    def normalised(self, phase: np.ndarray) -> np.ndarray:
        """Template with zero mean over a cycle and unit peak-to-peak amplitude."""
        cycle = self.raw(np.linspace(0.0, 1.0, 1024, endpoint=False))
        return (self.raw(phase) - cycle.mean()) / np.ptp(cycle)


def sample_beat_shape(rng: np.random.Generator) -> BeatShape:
    """Draw a subject's beat template; the ranges all keep a visible dicrotic notch."""
    return BeatShape(
        systolic_phase=rng.uniform(0.17, 0.23),
        rise=rng.uniform(0.045, 0.065),
        fall=rng.uniform(0.085, 0.105),
        gap=rng.uniform(0.28, 0.34),
        diastolic_width=rng.uniform(0.055, 0.075),
        diastolic_ratio=rng.uniform(0.35, 0.6),
    )


@dataclass(frozen=True)
class PulseParams:
    """Physiology of one recording."""

    mean_hr_bpm: float
    hrv_bpm: float = 2.5
    trend_bpm: float = 6.0
    resp_rate_hz: float = 0.25
    resp_fm_bpm: float = 3.0
    resp_am: float = 0.12
    shape: BeatShape = BeatShape()


def _smooth_noise(rng: np.random.Generator, n: int, fs: float, cutoff_hz: float) -> np.ndarray:
    """Zero-phase low-passed white noise with unit standard deviation."""
    sos = signal.butter(2, cutoff_hz, fs=fs, output="sos")
    x = signal.sosfiltfilt(sos, rng.standard_normal(n))
    return x / (x.std() + 1e-12)


@dataclass(frozen=True)
class PulseTrack:
    """A simulated recording's physiology on the fine grid; read it at any time.

    ``t`` starts at ``-PAD_S``; ``phase`` is the cumulative beat phase in cycles.
    """

    t: np.ndarray
    hr_bpm: np.ndarray
    phase: np.ndarray
    amplitude: np.ndarray
    resp_phase: np.ndarray
    params: PulseParams

    def hr(self, times: np.ndarray) -> np.ndarray:
        """Instantaneous heart rate (bpm) at ``times`` (s)."""
        return np.interp(times, self.t, self.hr_bpm)

    def bvp(self, times: np.ndarray) -> np.ndarray:
        """Clean blood-volume pulse at ``times`` (s): peak-to-peak about 1, zero mean."""
        phase = np.interp(times, self.t, self.phase)
        return np.interp(times, self.t, self.amplitude) * self.params.shape.normalised(phase)

    def respiration(self, times: np.ndarray) -> np.ndarray:
        """Breathing signal (unit sine of the respiratory phase) at ``times`` (s)."""
        return np.sin(2 * np.pi * np.interp(times, self.t, self.resp_phase))


def simulate_pulse(params: PulseParams, duration_s: float, rng: np.random.Generator) -> PulseTrack:
    """Simulate heart rate, respiration and pulse amplitude for one recording.

    The heart rate is the set mean plus a slow drift (random ramp and a very slow
    wave), band-limited random fluctuation (the LF part of HRV) and respiratory sinus
    arrhythmia; it is then shifted so its mean over [0, duration] is exactly
    ``mean_hr_bpm``. Breathing also modulates the pulse amplitude.
    """
    n = int(np.ceil((duration_s + 2 * PAD_S) * GRID_HZ)) + 1
    t = np.arange(n) / GRID_HZ - PAD_S
    u = (t + PAD_S) / (duration_s + 2 * PAD_S)  # 0..1 across the grid

    resp_rate = params.resp_rate_hz * (1.0 + 0.08 * _smooth_noise(rng, n, GRID_HZ, 0.02))
    resp_phase = np.cumsum(resp_rate) / GRID_HZ + rng.uniform()

    trend = params.trend_bpm * (
        rng.uniform(-0.5, 0.5) * (2 * u - 1) + 0.25 * np.sin(2 * np.pi * (u * rng.uniform(0.3, 1.0) + rng.uniform()))
    )
    lf = params.hrv_bpm * _smooth_noise(rng, n, GRID_HZ, 0.12)
    rsa = params.resp_fm_bpm * np.sin(2 * np.pi * resp_phase)
    hr = trend + lf + rsa
    in_video = (t >= 0) & (t <= duration_s)
    hr = np.clip(hr - hr[in_video].mean() + params.mean_hr_bpm, *HR_LIMITS_BPM)

    phase = np.cumsum(hr / 60.0) / GRID_HZ + rng.uniform()
    amplitude = (1.0 + params.resp_am * np.sin(2 * np.pi * resp_phase + rng.uniform(0, 2 * np.pi))) * (
        1.0 + 0.05 * _smooth_noise(rng, n, GRID_HZ, 0.1)
    )
    return PulseTrack(t=t, hr_bpm=hr, phase=phase, amplitude=amplitude, resp_phase=resp_phase, params=params)


@dataclass(frozen=True)
class DistortedLabel:
    """A contact-PPG label and what went wrong with it.

    ``values`` are in sensor full scale: the rails are 0 and 1, so clipped samples sit
    exactly on them. ``quality`` is 1 where the sensor saw a clean pulse and drops
    towards 0 during bursts and contact loss (a writer can turn it into a
    signal-strength field).
    """

    values: np.ndarray
    quality: np.ndarray
    delay_s: float


def _events(
    rng: np.random.Generator, rate_per_min: float, span_s: float, min_s: float, max_s: float
) -> list[tuple[float, float]]:
    """Poisson-distributed episodes as (start, duration) in seconds from the span's start."""
    count = rng.poisson(rate_per_min * span_s / 60.0)
    return [(rng.uniform(0.0, span_s), rng.uniform(min_s, max_s)) for _ in range(count)]


def distort_label(
    track: PulseTrack, times: np.ndarray, cfg: LabelDistortion, rng: np.random.Generator
) -> DistortedLabel:
    """Turn the clean pulse into a realistic contact-PPG label sampled at ``times``.

    ``times`` must be uniformly spaced (the sensor's clock). Distortions, applied in
    the order a real sensor chain applies them, each scaled by ``cfg.level``:
    pulse-transit delay; morphology (causal low-pass of the sensor front end, which
    smooths the dicrotic notch and adds lag; a nonlinear skew; slow gain drift);
    baseline wander; motion bursts; additive noise; contact loss (the sensor holds a
    flat value); and saturation at the rails (clipping). The result is scaled to the
    rails [0, 1].
    """
    level = cfg.level
    fs = 1.0 / float(np.median(np.diff(times)))
    warmup_s = 4.0  # lets the causal filter forget its initial state before the first sample
    n_warm = int(round(warmup_s * fs))
    t = times[0] + (np.arange(len(times) + n_warm) - n_warm) / fs
    span_s = float(t[-1] - t[0])

    delay_s = float(rng.uniform(*cfg.delay_s)) * level
    if delay_s > PAD_S - warmup_s:
        raise ValueError(f"label delay {delay_s:.1f} s exceeds the simulated padding")
    x = track.bvp(t - delay_s)

    morph = cfg.morphology * level
    if morph > 0:
        nyquist_cut = 0.45 * fs
        cutoff = min(max(8.0 / (1.0 + 2.0 * morph), 2.2), nyquist_cut)
        x = signal.sosfilt(signal.butter(2, cutoff, fs=fs, output="sos"), x)
        x = x / (np.ptp(x[n_warm:]) + 1e-12)
        x = x + 0.3 * morph * x**2
        x = x * (1.0 + 0.15 * morph * _smooth_noise(rng, len(t), fs, 0.05))

    wander = np.zeros_like(x)
    for _ in range(3):
        wander += np.sin(2 * np.pi * (rng.uniform(0.03, 0.3) * t + rng.uniform()))
    x = x + cfg.baseline_wander * level * wander / np.sqrt(1.5)

    quality = np.ones_like(x)
    burst_sos = signal.butter(2, [0.3, 4.0], btype="bandpass", fs=fs, output="sos")
    for start, dur in _events(rng, cfg.motion_bursts_per_min * level, span_s, 0.8, 3.0):
        i0, n = int(start * fs), max(int(dur * fs), 4)
        noise = signal.sosfiltfilt(burst_sos, rng.standard_normal(n + 64))[32 : 32 + n]
        burst = noise / (noise.std() + 1e-12) * np.hanning(n) * cfg.motion_burst_amplitude * rng.uniform(0.5, 1.5)
        seg = slice(i0, min(i0 + n, len(x)))
        x[seg] += burst[: seg.stop - seg.start]
        quality[seg] = np.minimum(quality[seg], 1.0 - 0.8 * np.hanning(n)[: seg.stop - seg.start])

    x = x + cfg.noise_std * level * rng.standard_normal(len(x))

    for start, dur in _events(rng, cfg.contact_loss_per_min * level, span_s, 1.0, 4.0):
        i0 = int(start * fs)
        seg = slice(i0, min(i0 + int(dur * fs), len(x)))
        x[seg] = x[max(i0 - 1, 0)]
        quality[seg] = 0.0

    x, quality = x[n_warm:], quality[n_warm:]
    clip = min(cfg.clipping * level, 0.3)
    if clip > 0:
        low, high = np.quantile(x, [0.25 * clip, 1.0 - 0.75 * clip])
    else:
        margin = 0.05 * np.ptp(x)
        low, high = x.min() - margin, x.max() + margin
    values = np.clip((x - low) / (high - low + 1e-12), 0.0, 1.0)
    return DistortedLabel(values=values, quality=quality, delay_s=delay_s)


def oximeter_hr(track: PulseTrack, times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Heart rate as a pulse oximeter displays it at ``times``: integer bpm, updated once a second.

    The device averages the last few seconds of beats and reports with a lag, so the
    value trails the true instantaneous rate; a small per-device bias is added.
    """
    window_s, lag_s = 4.0, 1.0
    update = np.floor(times) - lag_s
    grid = update[:, None] - np.linspace(0.0, window_s, 9)[None, :]
    return np.round(track.hr(grid).mean(axis=1) + rng.uniform(-1.0, 1.0))
