"""Writers that put a synthetic recording on disk exactly as a real dataset stores it.

The project's real readers then load synthetic data unchanged, which is the point:
the synthetic benchmark exercises the same code path as UBFC-rPPG or PURE. Each
layout is one function registered in :data:`LAYOUT_WRITERS`; it names the session
the way the real reader will, writes video and label files, and returns the IDs.
Formats follow ``reference/datasets.md`` sections 3.1 and 3.2.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lqrppg.errors import DataError
from lqrppg.synth.spec import SynthDatasetSpec

log = logging.getLogger(__name__)

#: Range of PURE's integer waveform (the CMS50E oximeter reports 7-bit samples).
PURE_WAVEFORM_MAX = 127
#: Codec used when the configured one cannot be opened here.
FALLBACK_CODEC = "MJPG"


@dataclass(frozen=True)
class SessionIds:
    """How the real reader names a recording (``task`` is "" where the dataset has no tasks)."""

    session: str
    subject: str
    task: str


@dataclass(frozen=True)
class SessionRecording:
    """Everything a layout writer needs for one recording.

    ``frames`` yields ``n_frames`` RGB uint8 images and can be consumed once.
    ``label`` is the contact-PPG in sensor full scale (rails at 0 and 1), sampled at
    ``label_times_s`` (seconds from the first frame; may start slightly before it).
    ``label_hr_bpm`` is the oximeter's displayed heart rate at the label times and
    ``label_quality`` (0..1) its signal quality. ``start_time_ns`` is the wall-clock
    time of the first frame, for layouts that store absolute timestamps.
    """

    subject_index: int
    task_index: int
    frames: Iterable[np.ndarray]
    n_frames: int
    frame_times_s: np.ndarray
    label: np.ndarray
    label_times_s: np.ndarray
    label_hr_bpm: np.ndarray
    label_quality: np.ndarray
    spo2_percent: int
    start_time_ns: int


LayoutWriter = Callable[[Path, SessionRecording, SynthDatasetSpec], SessionIds]


def _open_video_writer(path: Path, spec: SynthDatasetSpec) -> cv2.VideoWriter:
    size = (spec.frame_width, spec.frame_height)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*spec.codec), spec.fps, size, True)
    if writer.isOpened():
        return writer
    log.warning("codec %s cannot be opened by this OpenCV build; writing %s with %s", spec.codec, path, FALLBACK_CODEC)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FALLBACK_CODEC), spec.fps, size, True)
    if not writer.isOpened():
        raise DataError(f"{path}: OpenCV cannot open a video writer for codec {spec.codec} or {FALLBACK_CODEC}")
    return writer


def write_video(path: Path, frames: Iterable[np.ndarray], n_frames: int, spec: SynthDatasetSpec) -> None:
    """Encode RGB frames into ``path`` and check the container reports all of them."""
    writer = _open_video_writer(path, spec)
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    capture = cv2.VideoCapture(str(path))
    found = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    if found != n_frames:
        raise DataError(f"{path}: wrote {n_frames} frames but the file reports {found}")


def _line(values: np.ndarray) -> str:
    """One ground_truth.txt line: space-separated scientific notation, as in the real files."""
    return " ".join(f"{v:.7e}" for v in values)


def write_ubfc_rppg(root: Path, rec: SessionRecording, spec: SynthDatasetSpec) -> SessionIds:
    """UBFC-rPPG: ``subjectN/vid.avi`` and ``subjectN/ground_truth.txt``.

    ``ground_truth.txt`` has three lines: PPG waveform, HR (bpm) and timestamps (s),
    one value per video frame.
    """
    name = f"subject{rec.subject_index}"
    folder = root / name
    folder.mkdir(parents=True)
    write_video(folder / "vid.avi", rec.frames, rec.n_frames, spec)
    text = "\n".join([_line(rec.label), _line(rec.label_hr_bpm), _line(rec.frame_times_s)]) + "\n"
    (folder / "ground_truth.txt").write_text(text)
    return SessionIds(session=name, subject=name, task="")


def _write_png(path: Path, frame: np.ndarray) -> None:
    """Fast PNG: Huffman-only deflate compresses noisy camera frames as well as slower settings."""
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
    if not cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), params):
        raise DataError(f"{path}: OpenCV could not write the frame")


def write_pure(root: Path, rec: SessionRecording, spec: SynthDatasetSpec) -> SessionIds:
    """PURE: ``ii-jj/ii-jj/Image<ns>.png`` frames and ``ii-jj/ii-jj.json`` physiology.

    The JSON holds ``/FullPackage`` (one packet per oximeter sample: Timestamp in ns
    and Value with integer waveform, pulseRate, o2saturation, signalStrength) and
    ``/Image`` (one Timestamp per frame). File names embed the frame timestamp, which
    has a constant digit count, so name order is time order.
    """
    subject, task = f"{rec.subject_index:02d}", f"{rec.task_index:02d}"
    name = f"{subject}-{task}"
    frame_dir = root / name / name
    frame_dir.mkdir(parents=True)
    frame_ns = rec.start_time_ns + np.round(rec.frame_times_s * 1e9).astype(np.int64)
    # Encoding dominates the cost of a PNG frame; two writer threads keep up with rendering.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="png") as pool:
        pending: deque[Future[None]] = deque()
        for ns, frame in zip(frame_ns, rec.frames, strict=True):
            pending.append(pool.submit(_write_png, frame_dir / f"Image{ns}.png", frame))
            if len(pending) > 8:
                pending.popleft().result()
        for job in pending:
            job.result()

    label_ns = rec.start_time_ns + np.round(rec.label_times_s * 1e9).astype(np.int64)
    waveform = np.round(rec.label * PURE_WAVEFORM_MAX).astype(int)
    strength = np.where(rec.label_quality <= 0, 0, np.round(2 + 4 * rec.label_quality)).astype(int)
    packets = [
        {
            "Timestamp": int(ns),
            "Value": {
                "waveform": int(w),
                "pulseRate": int(hr),
                "o2saturation": rec.spo2_percent,
                "signalStrength": int(s),
            },
        }
        for ns, w, hr, s in zip(label_ns, waveform, rec.label_hr_bpm, strength, strict=True)
    ]
    document = {"/FullPackage": packets, "/Image": [{"Timestamp": int(ns)} for ns in frame_ns]}
    (root / name / f"{name}.json").write_text(json.dumps(document))
    return SessionIds(session=name, subject=subject, task=task)


#: Layout name -> writer. Adding a layout is one function and one entry here.
LAYOUT_WRITERS: dict[str, LayoutWriter] = {"ubfc-rppg": write_ubfc_rppg, "pure": write_pure}
