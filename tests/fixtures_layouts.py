"""Write tiny UBFC-rPPG and PURE datasets in their exact on-disk layouts.

Each frame shows the astronaut portrait of scikit-image (a real face that the
Haar cascade finds) pasted on a plain background, with a sinusoidal "pulse"
added to the green channel of the facial skin; the label file holds the same
pulse. So readers, face cropping and label alignment can all be checked against
a known truth. Used by the preprocessing tests and reusable by any other test:
``from fixtures_layouts import write_ubfc_rppg, write_pure``.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from skimage import data as skdata

FRAME_W, FRAME_H = 320, 240
#: Where the portrait's top-left corner goes in the frame.
PASTE_X, PASTE_Y = 80, 20
#: Approximate Haar face box in a frame without motion (x, y, w, h).
FACE_BOX = (116, 51, 53, 53)
#: A PURE-like start time (ns since the epoch) for the timestamps.
PURE_START_NS = 1_392_643_993_642_815_000


@dataclass(frozen=True)
class FixtureSession:
    """The truth behind one written session."""

    name: str
    frame_times_s: np.ndarray  # time of every written frame, from the session start
    pulse: np.ndarray  # true pulse (sin, amplitude 1) at those frame times
    hr_bpm: float


@functools.cache
def _portrait() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The half-size head-and-shoulders crop, its facial-skin mask, and a dither pattern.

    The astronaut's face is at (177, 66, 95, 95) in the 512×512 original; the
    mask is skin-coloured pixels inside the inner part of that box. The fixed
    dither makes the per-pixel rounding of a sub-level pulse average out, so the
    mean green of the skin follows the pulse smoothly instead of in steps.
    """
    region = skdata.astronaut()[0:360, 100:420]
    small = cv2.resize(region, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    fx, fy, fs = (177 - 100) * 0.5, 66 * 0.5, 95 * 0.5
    mask = np.zeros(small.shape[:2], dtype=bool)
    mask[int(fy + 0.15 * fs) : int(fy + 0.95 * fs), int(fx + 0.15 * fs) : int(fx + 0.85 * fs)] = True
    r, g, b = (small[..., c].astype(int) for c in range(3))
    mask &= (r > 90) & (r > g) & (g > b)
    dither = np.random.default_rng(0).random(small.shape[:2])
    return small, mask, dither


def _background() -> np.ndarray:
    """A smooth blue-grey gradient: not a face, not flat."""
    ramp = np.linspace(0, 40, FRAME_W)[None, :] + np.linspace(0, 20, FRAME_H)[:, None]
    return np.clip(np.stack([50 + ramp, 80 + ramp, 110 + ramp], axis=-1), 0, 255).astype(np.uint8)


def face_frames(
    pulse: np.ndarray, *, face: bool = True, amplitude: float = 4.0, motion_px: Iterable[int] | None = None
) -> Iterator[np.ndarray]:
    """RGB frames (FRAME_H, FRAME_W, 3) uint8, one per pulse value.

    ``amplitude`` is the pulse in green levels on the skin; ``motion_px`` an
    optional horizontal shift of the portrait per frame.
    """
    portrait, mask, dither = _portrait()
    background = _background()
    ph, pw = portrait.shape[:2]
    shifts = iter(motion_px) if motion_px is not None else None
    for p in pulse:
        frame = background.copy()
        if face:
            x0 = PASTE_X + (next(shifts) if shifts is not None else 0)
            h, w = min(ph, FRAME_H - PASTE_Y), min(pw, FRAME_W - x0)
            patch = portrait[:h, :w].copy()
            green = patch[..., 1].astype(np.float64) + amplitude * p + dither[:h, :w]
            patch[..., 1] = np.where(mask[:h, :w], np.clip(np.floor(green), 0, 255), patch[..., 1])
            frame[PASTE_Y : PASTE_Y + h, x0 : x0 + w] = patch
        yield frame


def write_avi(path: Path, frames: Iterable[np.ndarray], fps: float, codec: str = "FFV1") -> None:
    """Write RGB frames to an AVI. FFV1 is lossless; fourcc 0 gives raw (uncompressed) video."""
    frames = iter(frames)
    first = next(frames)
    fourcc = cv2.VideoWriter_fourcc(*codec) if codec else 0
    writer = cv2.VideoWriter(str(path), fourcc, fps, (first.shape[1], first.shape[0]))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path} with codec {codec!r}")
    for frame in itertools.chain([first], frames):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def write_ubfc_label(path: Path, values: np.ndarray, fps: float, hr_bpm: float = 72.0) -> None:
    """ground_truth.txt: PPG, HR and timestamps, three whitespace-separated lines."""
    times = np.arange(len(values)) / fps
    lines = [values, np.full(len(values), hr_bpm), times]
    path.write_text("".join("  ".join(f"{v:.7e}" for v in line) + "\n" for line in lines))


def write_ubfc_rppg(
    root: Path,
    subjects: Iterable[str] = ("subject1", "subject2"),
    *,
    n_frames: int = 64,
    fps: float = 30.0,
    no_face: Iterable[str] = (),
    codec: str = "FFV1",
    amplitude: float = 4.0,
    motion_px: int = 0,
) -> dict[str, FixtureSession]:
    """Write ``<root>/subjectN/vid.avi`` and ``ground_truth.txt`` (one label sample per frame).

    Subject i gets a heart rate of 60 + 12·i bpm, so sessions differ. Sessions in
    ``no_face`` show only the background.
    """
    root = Path(root)
    truth = {}
    for i, name in enumerate(subjects):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        hr = 60.0 + 12.0 * i
        times = np.arange(n_frames) / fps
        pulse = np.sin(2 * np.pi * hr / 60 * times)
        motion = (np.round(motion_px * np.sin(2 * np.pi * 0.25 * times)).astype(int)) if motion_px else None
        frames = face_frames(pulse, face=name not in set(no_face), amplitude=amplitude, motion_px=motion)
        write_avi(folder / "vid.avi", frames, fps, codec)
        write_ubfc_label(folder / "ground_truth.txt", pulse, fps, hr)
        truth[name] = FixtureSession(name, times, pulse, hr)
    return truth


def pure_waveform(pulse: np.ndarray) -> np.ndarray:
    """Pulse-oximeter-like integer waveform values for a unit pulse."""
    return np.round(50 + 40 * pulse).astype(int)


def write_pure(
    root: Path,
    recordings: Iterable[str] = ("01-01", "01-02"),
    *,
    n_frames: int = 64,
    fps: float = 30.0,
    label_rate: float = 60.0,
    drop_frames: Iterable[int] = (),
    no_face: Iterable[str] = (),
    amplitude: float = 4.0,
) -> dict[str, FixtureSession]:
    """Write ``<root>/ii-jj/ii-jj/Image<ns>.png`` and ``<root>/ii-jj/ii-jj.json``.

    Frames are nominally at ``fps``; the indices in ``drop_frames`` are not
    written (nor listed in ``/Image``), like frames a camera dropped. The JSON
    holds ``/FullPackage`` packets at ``label_rate`` (integer ``waveform``)
    covering the whole recording, and ``/Image`` with the frame timestamps.
    """
    root = Path(root)
    dropped = set(drop_frames)
    truth = {}
    for i, name in enumerate(recordings):
        folder = root / name
        frames_dir = folder / name
        frames_dir.mkdir(parents=True, exist_ok=True)
        hr = 60.0 + 12.0 * i
        kept = np.array([k for k in range(n_frames) if k not in dropped])
        times = kept / fps
        pulse = np.sin(2 * np.pi * hr / 60 * times)
        stamps = [PURE_START_NS + int(round(t * 1e9)) for t in times]
        for stamp, frame in zip(stamps, face_frames(pulse, face=name not in set(no_face), amplitude=amplitude)):
            cv2.imwrite(str(frames_dir / f"Image{stamp}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        label_t = np.arange(int(np.ceil((n_frames / fps + 0.1) * label_rate))) / label_rate
        wave = pure_waveform(np.sin(2 * np.pi * hr / 60 * label_t))
        doc = {
            "/FullPackage": [
                {
                    "Timestamp": PURE_START_NS + int(round(t * 1e9)),
                    "Value": {"waveform": int(w), "pulseRate": int(hr), "o2saturation": 98, "signalStrength": 4},
                }
                for t, w in zip(label_t, wave)
            ],
            "/Image": [{"Timestamp": stamp} for stamp in stamps],
        }
        (folder / f"{name}.json").write_text(json.dumps(doc))
        truth[name] = FixtureSession(name, times, pulse, hr)
    return truth
