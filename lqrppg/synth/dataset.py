"""Synthesize a whole dataset: raw files in a real layout plus the ground truth beside them.

Randomness is split into named streams keyed by (seed, layout, subject, task,
purpose), so one setting never perturbs another's draws: changing the label
distortion changes only the label values (PURE's waveform and signalStrength),
leaving the video, timestamps and truth byte-for-byte the same, which is what a
label-noise sweep needs; and a subject looks the same in all its tasks.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from tqdm import tqdm

from lqrppg.errors import ConfigError
from lqrppg.io import atomic_dir
from lqrppg.synth.face import SubjectLayers, SubjectLook, build_subject, sample_look
from lqrppg.synth.layouts import LAYOUT_WRITERS, SessionRecording
from lqrppg.synth.pulse import PulseParams, distort_label, oximeter_hr, sample_beat_shape, simulate_pulse
from lqrppg.synth.render import face_boxes, prefetch, render_frames, simulate_illumination, simulate_motion
from lqrppg.synth.spec import SynthDatasetSpec

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Wall-clock origin of PURE-style timestamps (early 2014, when PURE was recorded), in ns.
EPOCH_NS = 1_390_000_000_000_000_000


def _stream(seed: int, *key: object) -> np.random.Generator:
    """Independent generator for one purpose; stable across runs, Python versions and platforms."""
    words = [seed, *(zlib.crc32(str(k).encode()) for k in key)]
    return np.random.default_rng(np.random.SeedSequence(words))


@dataclass(frozen=True)
class _Subject:
    """What stays fixed for one person across all their recordings."""

    index: int
    look: SubjectLook
    layers: SubjectLayers
    rest_hr_bpm: float
    shape_seed: int


def _make_subject(spec: SynthDatasetSpec, seed: int, index: int) -> _Subject:
    """Draw a subject's look, resting heart rate and beat shape, and pre-build their image layers."""
    rng = _stream(seed, spec.layout, index, "subject")
    look = sample_look(rng, spec.skin_tone, spec.face_size)
    layers = build_subject(look, spec.frame_width, spec.frame_height, spec.pulse_amplitude, spec.pulse_channel_weights)
    return _Subject(
        index=index, look=look, layers=layers, rest_hr_bpm=float(rng.uniform(*spec.hr_range_bpm)),
        shape_seed=int(rng.integers(2**31)),
    )


def _counting(items: Iterator[T], bar: tqdm) -> Iterator[T]:
    """Pass items through, advancing the progress bar as each is consumed."""
    for item in items:
        yield item
        bar.update(1)


def _synthesize_session(
    spec: SynthDatasetSpec, seed: int, subject: _Subject, task: int, raw_dir: Path, truth_dir: Path, bar: tqdm
) -> dict[str, object]:
    """Simulate, render and write one recording; return its sessions-table row."""
    key = (seed, spec.layout, subject.index, task)
    phys = _stream(*key, "physiology")
    mean_hr = float(np.clip(subject.rest_hr_bpm + phys.normal(0.0, spec.hr_task_spread_bpm), *spec.hr_range_bpm))
    params = PulseParams(
        mean_hr_bpm=mean_hr,
        hrv_bpm=spec.hrv,
        trend_bpm=spec.hr_trend_bpm,
        resp_rate_hz=float(phys.uniform(*spec.resp_rate_hz)),
        resp_fm_bpm=spec.resp_fm_bpm,
        resp_am=spec.resp_am,
        shape=sample_beat_shape(np.random.default_rng(subject.shape_seed)),
    )
    n = spec.n_frames
    track = simulate_pulse(params, n / spec.fps, phys)
    frame_times = np.arange(n) / spec.fps
    bvp = track.bvp(frame_times)
    hr = track.hr(frame_times)

    scene = _stream(*key, "scene")
    w, h = spec.frame_width, spec.frame_height
    breathing = track.respiration(frame_times)
    motion = simulate_motion(
        spec.fps, spec.motion, spec.physiological_motion, breathing, bvp, subject.layers, w, h, scene
    )
    light = simulate_illumination(n, spec.fps, spec.lighting_change, spec.flicker, spec.flicker_hz, scene)
    boxes = face_boxes(subject.layers, motion)
    frames = render_frames(
        subject.layers, bvp, motion, light, spec.specular, spec.camera_noise_std, _stream(*key, "camera")
    )

    clock = _stream(*key, "clock")
    start_time_ns = EPOCH_NS + int(clock.integers(0, 10**16))
    if spec.label_rate_hz is None:
        label_times = frame_times
    else:
        dt = 1.0 / spec.label_rate_hz
        start = -float(clock.uniform(0.0, dt))  # the oximeter's clock is not locked to the camera's
        label_times = start + np.arange(int(np.ceil((frame_times[-1] - start) / dt)) + 1) * dt
    oximeter = _stream(*key, "oximeter")
    label = distort_label(track, label_times, spec.label, _stream(*key, "label"))

    recording = SessionRecording(
        subject_index=subject.index,
        task_index=task,
        frames=_counting(prefetch(frames), bar),
        n_frames=n,
        frame_times_s=frame_times,
        label=label.values,
        label_times_s=label_times,
        label_hr_bpm=oximeter_hr(track, label_times, oximeter),
        label_quality=label.quality,
        spo2_percent=int(oximeter.integers(96, 100)),
        start_time_ns=start_time_ns,
    )
    ids = LAYOUT_WRITERS[spec.layout](raw_dir, recording, spec)
    truth = pd.DataFrame(
        {
            "frame": np.arange(n, dtype=np.int64),
            "time_s": frame_times,
            "bvp_true": bvp,
            "hr_true_bpm": hr,
            "face_x": boxes[:, 0],
            "face_y": boxes[:, 1],
            "face_w": boxes[:, 2],
            "face_h": boxes[:, 3],
        }
    )
    truth.to_parquet(truth_dir / f"{ids.session}.parquet", index=False)
    log.info("%s: mean HR %.1f bpm, label delay %.2f s", ids.session, hr.mean(), label.delay_s)
    return {
        "session": ids.session,
        "subject": ids.subject,
        "task": ids.task,
        "mean_hr_bpm": float(hr.mean()),
        "fps": float(spec.fps),
        "n_frames": n,
        "skin_tone": subject.look.skin_tone,
        "resp_rate_hz": params.resp_rate_hz,
        "label_delay_s": label.delay_s,
    }


def synthesize_dataset(spec: SynthDatasetSpec, raw_root: Path, truth_root: Path, seed: int) -> None:
    """Write a synthetic dataset to ``raw_root`` (real layout) and its truth to ``truth_root``.

    ``truth_root`` gets ``<session>.parquet`` (one row per video frame: ``frame,
    time_s, bvp_true, hr_true_bpm`` and the true face box ``face_x, face_y, face_w,
    face_h``) and ``sessions.parquet`` (``session, subject, task, mean_hr_bpm, fps,
    n_frames`` plus ``skin_tone, resp_rate_hz, label_delay_s``). Both folders are
    built in temporary directories and renamed into place when complete (truth
    first, raw last), replacing any previous output; the same ``seed`` gives
    identical files.
    """
    raw_root, truth_root = Path(raw_root).resolve(), Path(truth_root).resolve()
    if raw_root == truth_root or raw_root in truth_root.parents or truth_root in raw_root.parents:
        raise ConfigError(f"raw root {raw_root} and truth root {truth_root} must be separate folders")
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    n_sessions = spec.n_subjects * spec.tasks_per_subject
    log.info(
        "synthesizing %d %s sessions (%d frames of %dx%d each) into %s",
        n_sessions, spec.layout, spec.n_frames, spec.frame_width, spec.frame_height, raw_root,
    )
    rows = []
    with (
        atomic_dir(raw_root) as raw_dir,
        atomic_dir(truth_root) as truth_dir,
        tqdm(total=n_sessions * spec.n_frames, desc=raw_root.name, unit="frame") as bar,
    ):
        for index in range(1, spec.n_subjects + 1):
            subject = _make_subject(spec, seed, index)
            for task in range(1, spec.tasks_per_subject + 1):
                rows.append(_synthesize_session(spec, seed, subject, task, raw_dir, truth_dir, bar))
        sessions = pd.DataFrame(rows)
        sessions.to_parquet(truth_dir / "sessions.parquet", index=False)
    log.info("wrote %d sessions to %s (truth in %s)", n_sessions, raw_root, truth_root)
