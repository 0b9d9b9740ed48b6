"""Frame rendering: head motion, illumination, pulsatile skin, specular light, camera noise.

Each pixel follows the skin-reflection model of Wang et al. (2017, "Algorithmic
principles of remote PPG"):

    pixel(t) = I(t, x) * (diffuse(x) + p(t) * pulse_map(x) + s(t) * highlight(x)) + noise

``diffuse`` is the composited subject-over-background image, ``pulse_map`` is the
diffuse skin colour times perfusion and per-channel pulse strength (zero off the
skin, so only skin pulses), ``p(t)`` the clean blood-volume pulse, ``s(t)`` a
specular strength that changes with head pose, ``I(t, x)`` the illumination (global
level, flicker and a side-light gradient), and ``noise`` camera noise whose variance
grows with brightness (read noise plus shot noise).

Rendering is vectorised: per frame it is two ``cv2.warpAffine`` calls of pre-built
subject layers (the person and its matte) and a handful of array operations.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np

from lqrppg.synth.face import SubjectLayers

T = TypeVar("T")


@dataclass(frozen=True)
class HeadMotion:
    """Per-frame head pose relative to rest: translation (px), in-plane rotation (deg), scale."""

    dx: np.ndarray
    dy: np.ndarray
    angle_deg: np.ndarray
    scale: np.ndarray

    @property
    def is_still(self) -> bool:
        return not (self.dx.any() or self.dy.any() or self.angle_deg.any() or (self.scale != 1).any())


def _random_wave(rng: np.random.Generator, t: np.ndarray, f_low: float, f_high: float, n: int = 4) -> np.ndarray:
    """Sum of random sinusoids (1/f weighted) with unit standard deviation: a smooth wandering signal."""
    freqs = np.exp(rng.uniform(np.log(f_low), np.log(f_high), n))
    x = sum(np.sin(2 * np.pi * (f * t + rng.uniform())) / np.sqrt(f) for f in freqs)
    x = x - x.mean()
    return x / (x.std() + 1e-12)


def simulate_motion(
    fps: float,
    amount: float,
    physiological: float,
    breathing: np.ndarray,
    pulse: np.ndarray,
    layers: SubjectLayers,
    width: int,
    height: int,
    rng: np.random.Generator,
) -> HeadMotion:
    """Head motion: voluntary motion scaled by ``amount`` plus involuntary motion.

    Voluntary motion imitates PURE's translation and rotation tasks: slow wandering
    (0.03-0.6 Hz) carries most of it, and a small fast component (1-3 Hz, as when
    talking) overlaps the heart-rate band, as real motion does. Each axis is scaled
    down as a whole, not clipped per frame, when it would push the face out of the
    frame, so trajectories stay smooth.

    Involuntary motion (scaled by ``physiological``) is present even in "still"
    recordings: the head rises and tilts with ``breathing`` (unit respiration signal
    per frame), and jerks slightly with every heartbeat (ballistocardiography,
    following ``pulse``), which puts heart-rate-locked motion into the video as in
    real data.
    """
    n_frames = len(breathing)
    t = np.arange(n_frames) / fps
    fx, fy, fw, fh = layers.face_box
    guard = 0.2 * fw  # room for rotation and scale growth
    room_x = max(min(fx, width - fx - fw) - guard, 1.0)
    room_y = max(min(fy, height - fy - fh) - guard, 1.0)

    def axis(std: float, limit: float, jitter: float) -> np.ndarray:
        if std == 0:
            return np.zeros(n_frames)
        x = std * _random_wave(rng, t, 0.03, 0.6) + jitter * _random_wave(rng, t, 1.0, 3.0)
        return x * min(1.0, limit / np.abs(x).max())

    dx = axis(0.05 * width * amount, room_x, 0.3 * amount)
    dy = axis(0.03 * height * amount, room_y, 0.3 * amount)
    angle = axis(3.0 * amount, 10.0, 0.2 * amount)
    scale = 1.0 + axis(0.04 * amount, 0.12, 0.002 * amount)
    dy = dy + physiological * height * (0.002 * breathing + 0.0005 * pulse)
    angle = angle + physiological * 0.15 * breathing
    scale = scale + physiological * 0.001 * breathing
    return HeadMotion(dx=dx, dy=dy, angle_deg=angle, scale=scale)


@dataclass(frozen=True)
class Illumination:
    """Per-frame illumination: a global gain and the gain of a left-to-right side-light gradient."""

    level: np.ndarray
    side: np.ndarray

    @property
    def has_side_light(self) -> bool:
        return bool(self.side.any())


def simulate_illumination(
    n_frames: int, fps: float, change: float, flicker: float, flicker_hz: float, rng: np.random.Generator
) -> Illumination:
    """Slow light changes (drift, one smooth step as when a lamp or cloud changes) plus flicker."""
    t = np.arange(n_frames) / fps
    level = np.ones(n_frames)
    side = np.zeros(n_frames)
    if change > 0:
        step_at, step_len = rng.uniform(0.2, 0.8) * t[-1], rng.uniform(0.5, 2.0)
        step = rng.choice([-1.0, 1.0]) * 0.5 * (1 + np.tanh((t - step_at) / (step_len / 4)))
        level = level + change * (0.6 * _random_wave(rng, t, 0.01, 0.15) + 0.8 * (step - step.mean()))
        side = change * _random_wave(rng, t, 0.01, 0.1)
    if flicker > 0:
        level = level * (1.0 + flicker * np.sin(2 * np.pi * (flicker_hz * t + rng.uniform())))
    return Illumination(level=np.maximum(level, 0.2), side=side)


def _head_pose(layers: SubjectLayers, motion: HeadMotion, k: int) -> np.ndarray:
    """2x3 affine in frame coordinates for frame ``k``: rotate and scale about the neck, then translate."""
    pose = cv2.getRotationMatrix2D(layers.pivot, float(motion.angle_deg[k]), float(motion.scale[k]))
    pose[:, 2] += (motion.dx[k], motion.dy[k])
    return pose


def frame_affine(layers: SubjectLayers, motion: HeadMotion, k: int) -> np.ndarray:
    """2x3 affine from the subject canvas (frame plus margin) to frame ``k``."""
    pose = _head_pose(layers, motion, k)
    pose[:, 2] -= pose[:, :2] @ np.array([layers.margin, layers.margin], np.float64)
    return pose


def face_boxes(layers: SubjectLayers, motion: HeadMotion) -> np.ndarray:
    """True face box (x, y, w, h) in every frame: the bounding box of the moved rest box."""
    x, y, w, h = layers.face_box
    corners = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]], np.float64)
    out = np.empty((len(motion.dx), 4))
    for k in range(len(motion.dx)):
        pose = _head_pose(layers, motion, k)
        moved = corners @ pose[:, :2].T + pose[:, 2]
        lo, hi = moved.min(axis=0), moved.max(axis=0)
        out[k] = (lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1])
    return out


def specular_gain(motion: HeadMotion) -> np.ndarray:
    """How strongly highlights shine per frame: turning and approaching the camera change the glare."""
    return np.clip(1.0 + 0.12 * motion.angle_deg + 1.5 * (motion.scale - 1.0) + 0.01 * motion.dy, 0.0, 2.5)


#: Frames' worth of Gaussian noise generated per recording (see :func:`render_frames`).
NOISE_BANK_FRAMES = 8


def render_frames(
    layers: SubjectLayers,
    pulse: np.ndarray,
    motion: HeadMotion,
    light: Illumination,
    specular: float,
    noise_std: float,
    rng: np.random.Generator,
) -> Iterator[np.ndarray]:
    """Yield RGB uint8 frames of one recording; ``pulse`` is the clean BVP at each frame time.

    Warping is linear, so the pulsatile and specular terms are added on the subject
    canvas first and the sum is warped once (plus the matte). Camera noise is read
    from a bank of Gaussian samples at a random offset per frame: a pixel never sees
    the same sample twice in practice, and drawing fresh normals per frame would cost
    more than the rest of the frame.
    """
    background = layers.background
    height, width = background.shape[:2]
    size = (width, height)
    spec_gain = specular * 255.0 * specular_gain(motion)
    gradient = np.ascontiguousarray(
        np.broadcast_to(np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :, None], (height, width, 3))
    )
    frame_len = height * width * 3
    bank = rng.standard_normal(frame_len * NOISE_BANK_FRAMES, dtype=np.float32) if noise_std > 0 else None
    offsets = rng.integers(0, frame_len * (NOISE_BANK_FRAMES - 1), size=len(pulse))

    if motion.is_still:
        rest = frame_affine(layers, motion, 0)
        alpha = cv2.warpAffine(layers.alpha, rest, size, flags=cv2.INTER_LINEAR)
        still_diffuse = cv2.warpAffine(layers.diffuse, rest, size, flags=cv2.INTER_LINEAR)
        still_diffuse += background - background * cv2.merge((alpha, alpha, alpha))
        if spec_gain[0] > 0:
            still_diffuse += spec_gain[0] * cv2.warpAffine(layers.highlight, rest, size, flags=cv2.INTER_LINEAR)
        still_pulse = cv2.warpAffine(layers.pulse, rest, size, flags=cv2.INTER_LINEAR)

    for k in range(len(pulse)):
        if motion.is_still:
            scene = cv2.scaleAdd(still_pulse, float(pulse[k]), still_diffuse)
        else:
            person = cv2.scaleAdd(layers.pulse, float(pulse[k]), layers.diffuse)
            if spec_gain[k] > 0:
                person = cv2.scaleAdd(layers.highlight, float(spec_gain[k]), person)
            pose = frame_affine(layers, motion, k)
            scene = cv2.warpAffine(person, pose, size, flags=cv2.INTER_LINEAR)
            alpha = cv2.warpAffine(layers.alpha, pose, size, flags=cv2.INTER_LINEAR)
            scene += background
            scene -= background * cv2.merge((alpha, alpha, alpha))
        if light.has_side_light:
            scene *= light.level[k] + light.side[k] * gradient
        else:
            scene *= light.level[k]
        if bank is not None:
            noise = bank[offsets[k] : offsets[k] + frame_len].reshape(height, width, 3)
            # Read noise plus shot noise: variance grows linearly with brightness.
            sigma = cv2.sqrt(cv2.addWeighted(scene, 0.7 * noise_std**2 / 128.0, scene, 0.0, 0.3 * noise_std**2))
            scene += noise * sigma
        np.clip(scene, 0.0, 255.0, out=scene)
        yield cv2.convertScaleAbs(scene)


def prefetch(items: Iterable[T], depth: int = 8) -> Iterator[T]:
    """Produce ``items`` in a background thread, ``depth`` ahead of the consumer.

    Rendering (numpy/OpenCV, which release the GIL) then overlaps with encoding and
    writing, which keeps both cores busy. An exception in the producer is re-raised
    in the consumer; abandoning the iterator stops the producer.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(entry: tuple[object, BaseException | None]) -> bool:
        """Hand one entry over; give up (False) once the consumer has gone."""
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put((done, exc))

    worker = threading.Thread(target=produce, name="synth-render", daemon=True)
    worker.start()
    try:
        while True:
            item, error = buffer.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        worker.join()
