"""Preprocessing: raw dataset sessions to a chunk store of face crops and aligned labels.

Each session is decoded once, as a stream: the face box is updated causally,
each frame is cropped, resized and appended to disk, and the label is aligned to
the number of frames actually decoded. The whole store is built in a temporary
folder and published only when every session succeeded, so a failure can never
leave a store that silently lacks sessions (the rPPG-Toolbox's parallel
preprocessing lost up to 17 of 42 UBFC-rPPG subjects that way).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tqdm import tqdm

from lqrppg.datasets.base import DatasetReader, Session, align_label
from lqrppg.errors import DataError, LqrppgError, NoFaceError
from lqrppg.io import atomic_dir
from lqrppg.preprocess.face import FaceDetector, available_detectors, crop_resize, expand_box, get_detector
from lqrppg.preprocess.store import STORE_FORMAT_VERSION, ChunkStore, SessionWriter, write_store_tables

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]


class PreprocessSettings(BaseModel):
    """Every setting that shapes a chunk store; its hash is the store's ``prep_id``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int = Field(72, gt=0, description="Side in pixels of the square face crop stored for each frame.")
    chunk_length: int = Field(
        160, gt=0, description="Frames per chunk; chunks do not overlap and each session's remainder is dropped."
    )
    box_scale: float = Field(
        1.5, gt=0, description="Factor enlarging the detected face box about its centre (the field uses 1.5)."
    )
    detection: Literal["first", "every_n"] = Field(
        "first",
        description="'first': detect on the first frame only and keep that box (the field's convention); "
        "'every_n': detect every `detect_every` frames and use the running median of recent detections.",
    )
    detect_every: int = Field(30, gt=0, description="Frames between detections when detection is 'every_n'.")
    median_window: int = Field(
        5, gt=0, description="Detections in the running median box when detection is 'every_n' (causal, one pass)."
    )
    no_face: Literal["error", "full_frame", "last_box"] = Field(
        "error",
        description="What a detection that finds no face does: 'error' stops with NoFaceError; 'full_frame' "
        "crops the whole frame until the next face (the toolbox's silent behaviour); 'last_box' keeps the "
        "previous box (the whole frame if there is none yet). Fallbacks are recorded per session.",
    )
    detector: str = Field("haar", description="Name of a registered face detector (lqrppg.preprocess.face).")

    @field_validator("detector")
    @classmethod
    def _known_detector(cls, name: str) -> str:
        if name not in available_detectors():
            raise ValueError(f"unknown face detector {name!r}; known: {', '.join(available_detectors())}")
        return name

    def prep_id(self) -> str:
        """Short stable hash of the settings and the store format.

        Any changed setting, or a new store format, gives a new id and so a new
        store folder; a stale store is never reused.
        """
        canonical = json.dumps(
            {"store_format": STORE_FORMAT_VERSION, "settings": self.model_dump(mode="json")},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:10]


class _BoxTracker:
    """Chooses each frame's crop box in a single causal pass over the frames."""

    def __init__(self, settings: PreprocessSettings, detector: FaceDetector, session: Session) -> None:
        self.settings = settings
        self.detector = detector
        self.session = session
        window = settings.median_window if settings.detection == "every_n" else 1
        self._recent: deque[np.ndarray] = deque(maxlen=window)
        self._box: Box | None = None
        self._frame_shape: tuple[int, ...] | None = None
        self.n_detections = 0
        self.n_misses = 0

    def _detects_at(self, t: int) -> bool:
        if self.settings.detection == "first":
            return t == 0
        return t % self.settings.detect_every == 0

    def update(self, t: int, frame: np.ndarray) -> Box:
        """The crop box for frame ``t`` (frames must come in order)."""
        if self._frame_shape is None:
            self._frame_shape = frame.shape
        elif frame.shape != self._frame_shape:
            raise DataError(
                f"{self.session.video_path}: frame {t} has shape {frame.shape}, the first frame {self._frame_shape}"
            )
        height, width = frame.shape[:2]
        if self._detects_at(t):
            face = self.detector.detect(frame)
            if face is not None:
                self.n_detections += 1
                self._recent.append(np.asarray(face, dtype=np.float64))
                median = np.median(np.stack(self._recent), axis=0)
                self._box = expand_box(median, self.settings.box_scale, width, height)
            else:
                self._miss(t, width, height)
        assert self._box is not None  # frame 0 is always a detection frame
        return self._box

    def _miss(self, t: int, width: int, height: int) -> None:
        self.n_misses += 1
        s = self.session
        if self.settings.no_face == "error":
            raise NoFaceError(
                f"{s.dataset} session {s.session}: no face detected in frame {t} of {s.video_path} "
                f"(detection={self.settings.detection!r}); set no_face to 'full_frame' or 'last_box' to fall back"
            )
        if self.settings.no_face == "full_frame" or self._box is None:
            self._box = (0, 0, width, height)
        log.debug("session %s: no face in frame %d, using %s", s.session, t, self._box)


def preprocess_session(
    reader: DatasetReader, session: Session, settings: PreprocessSettings, writer_dir: Path
) -> dict[str, Any]:
    """Crop, store and label one session in ``writer_dir``; return its sessions.parquet row.

    The label is read (and checked) before decoding, so a bad label fails fast;
    it is aligned after, to the number of frames actually decoded. Errors name
    the session.
    """
    started = time.perf_counter()
    prefix = f"{session.dataset} session {session.session}: "
    try:
        label = reader.read_label(session)
        tracker = _BoxTracker(settings, get_detector(settings.detector), session)
        with SessionWriter(Path(writer_dir), session.session, settings.size) as writer:
            for t, frame in enumerate(reader.iter_frames(session)):
                x, y, w, h = box = tracker.update(t, frame)
                mean_rgb = np.asarray(cv2.mean(frame[y : y + h, x : x + w])[:3], dtype=np.float32)
                writer.append(crop_resize(frame, box, settings.size), box, mean_rgb)
            if writer.n_frames == 0:
                raise DataError(f"{session.video_path}: no frames")
            frame_times = reader.frame_timestamps_s(session) if reader.alignment == "timestamps" else None
            aligned, method = align_label(
                label, writer.n_frames, session.fps, frame_times, reader.alignment, session.label_path
            )
            writer.finish(aligned)
    except LqrppgError as err:
        if str(err).startswith(prefix):
            raise
        raise type(err)(prefix + str(err)) from err
    except Exception as err:
        err.add_note(f"while preprocessing {prefix.rstrip(': ')}")
        raise
    n_frames = writer.n_frames
    if tracker.n_misses:
        log.warning("%sno face in %d of %d detection attempts; fell back to %r",
                    prefix, tracker.n_misses, tracker.n_misses + tracker.n_detections, settings.no_face)
    elapsed = time.perf_counter() - started
    log.info("%s%d frames, label by %s, %d chunks, %.1f frames/s",
             prefix, n_frames, method, n_frames // settings.chunk_length, n_frames / max(elapsed, 1e-9))
    return {
        "session": session.session,
        "subject": session.subject,
        "task": session.task,
        "n_frames": n_frames,
        "fps": session.fps,
        "alignment": method,
        "face_fallback": tracker.n_misses > 0,
        "n_detections": tracker.n_detections,
        "label_path": session.label_path,
        "video_path": session.video_path,
    }


def _init_worker() -> None:
    """One OpenCV thread per worker process: the pool already uses every core."""
    cv2.setNumThreads(1)


def _run_parallel(
    reader: DatasetReader, sessions: Sequence[Session], settings: PreprocessSettings, tmp: Path, workers: int
) -> dict[str, dict[str, Any]]:
    """Process sessions in a pool; the first failure cancels the queued rest and is re-raised.

    Sessions already running finish first (a worker cannot be stopped safely
    mid-write), then the error propagates with the session named. Workers are
    spawned, not forked: a fork after OpenCV has started its thread pool can hang.
    """
    rows: dict[str, dict[str, Any]] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker) as pool:
        futures = {pool.submit(preprocess_session, reader, s, settings, tmp): s for s in sessions}
        try:
            with tqdm(total=len(sessions), desc=f"preprocess {reader.name}", unit="session", disable=None) as bar:
                for future in as_completed(futures):
                    rows[futures[future].session] = future.result()
                    bar.update()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return rows


def preprocess_dataset(
    reader: DatasetReader,
    sessions: Sequence[Session],
    settings: PreprocessSettings,
    out_dir: Path,
    workers: int = 1,
) -> Path:
    """Build the chunk store for ``sessions`` at ``out_dir``, all or nothing.

    The store is written to a temporary sibling folder and renamed into place
    only when every session succeeded and the finished store validates; any
    failure is re-raised (naming its session) and leaves no ``out_dir``.
    """
    out_dir = Path(out_dir)
    sessions = list(sessions)
    if not sessions:
        raise DataError(f"{reader.name}: no session to preprocess into {out_dir}")
    names = [s.session for s in sessions]
    if len(set(names)) != len(names):
        raise DataError(f"{reader.name}: duplicate session names in {names}")
    started = time.perf_counter()
    with atomic_dir(out_dir) as tmp:
        if workers > 1 and len(sessions) > 1:
            rows = _run_parallel(reader, sessions, settings, tmp, min(workers, len(sessions)))
        else:
            rows = {}
            for s in tqdm(sessions, desc=f"preprocess {reader.name}", unit="session", disable=None):
                rows[s.session] = preprocess_session(reader, s, settings, tmp)
        ordered = [rows[name] for name in names]
        write_store_tables(
            tmp,
            dataset=reader.name,
            fps=reader.fps,
            prep_id=settings.prep_id(),
            settings=settings.model_dump(mode="json"),
            chunk_length=settings.chunk_length,
            sessions=ordered,
        )
        store = ChunkStore(tmp)
        fallbacks = [row["session"] for row in ordered if row["face_fallback"]]
        log.info("%s: %d sessions, %d frames, %d chunks in %.1f s -> %s",
                 reader.name, len(ordered), sum(r["n_frames"] for r in ordered), len(store.index),
                 time.perf_counter() - started, out_dir)
        if fallbacks:
            log.warning(
                "%s: face fallback (%s) used in sessions %s", reader.name, settings.no_face, ", ".join(fallbacks)
            )
    return out_dir
