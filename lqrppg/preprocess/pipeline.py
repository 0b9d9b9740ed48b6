"""Preprocessing: raw dataset sessions to a chunk store of face crops and aligned labels.

Each session is decoded once, as a stream: the face box is updated causally,
each frame is cropped, resized and appended to disk, and the label is aligned to
the number of frames actually decoded. The whole store is built in a temporary
folder and published only when every session succeeded, so a failure can never
leave a store that silently lacks sessions (the rPPG-Toolbox's parallel
preprocessing lost up to 17 of 42 UBFC-rPPG subjects that way).

Per frame the work is a crop, one INTER_AREA resize and a mean, all on views of
the decoded frame; face detection, the expensive step, runs on a downscaled grey
copy and only on the frames that the detection setting names, and with 'every_n'
first near the face already found (``redetect_margin``), which nearly halves its cost.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tqdm import tqdm

from lqrppg.datasets.base import DatasetReader, Session, align_label, align_quality
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
        "'every_n': detect every `detect_every` frames and smooth the detections into the box "
        "(`box_smoothing`).",
    )
    detect_every: int = Field(30, gt=0, description="Frames between detections when detection is 'every_n'.")
    box_smoothing: Literal["median", "ema"] = Field(
        "median",
        description="How 'every_n' turns successive detections into the crop box, causally: 'median': "
        "per-coordinate median of the last `median_window` detections (ignores a single wrong box, lags about "
        "half the window behind motion); 'ema': exponential moving average, new = ema_alpha x detection + "
        "(1 - ema_alpha) x previous (less lag for steady motion, but a wrong box pulls it by ema_alpha).",
    )
    median_window: int = Field(
        5, gt=0, description="Detections in the running median box when box_smoothing is 'median'."
    )
    ema_alpha: float = Field(
        0.5, gt=0, le=1, description="Weight of the newest detection when box_smoothing is 'ema' (1: no smoothing)."
    )
    detect_max_side: int | None = Field(
        320,
        gt=0,
        description="Run the face detector on a copy (grey for Haar) downscaled (INTER_AREA) so its longer side is "
        "at most "
        "this many pixels, and scale the box back; the crop is still cut from the full-resolution frame. On "
        "640x480, 320 makes Haar detection about 3x faster and moves the box by a few pixels; the smallest "
        "face found grows to 24 x (frame side / detect_max_side) pixels. null: detect at full resolution.",
    )
    redetect_margin: float | None = Field(
        1.0,
        ge=0,
        description="'every_n' re-detections search first near the face found so far (the per-coordinate "
        "median of the last 5 detections): its box enlarged by this fraction of its width and height on every "
        "side, for faces at least half its size, and the whole frame only when that finds none. About half the "
        "cost of a full search, with boxes as close to the true face (a larger face appearing elsewhere does "
        "not take over the crop while the subject's face is found). null: search the whole frame every time. "
        "Used where the detector supports it (haar).",
    )
    no_face: Literal["error", "full_frame", "last_box"] = Field(
        "error",
        description="What a detection that finds no face does. Before any face was found: 'error' stops with "
        "NoFaceError naming the session, 'full_frame' and 'last_box' crop the whole frame. After a face was "
        "found: 'error' and 'last_box' keep the last box, 'full_frame' crops the whole frame until the next "
        "face (the toolbox's silent behaviour). Misses are counted per session (n_detection_misses).",
    )
    detector: str = Field(
        "haar",
        description="Name of a registered face detector (lqrppg.preprocess.face): 'haar' (OpenCV's frontal-face "
        "cascade, the field's detector) or 'yunet' (OpenCV's CNN detector, needs detector_model).",
    )
    detector_model: Path | None = Field(
        None,
        description="Model file of the detector: the YuNet ONNX file for 'yunet' (face_detection_yunet_2023mar"
        ".onnx from the OpenCV Zoo, models/face_detection_yunet), or a cascade XML replacing Haar's default.",
    )
    label_quality_threshold: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Where a dataset grades its label (iBVP's signal quality), frames whose aligned quality is "
        "at or below this are bad-label frames (the rPPG-Toolbox drops iBVP frames with SQ2 <= 0.3). They stay "
        "in the store, marked in label_mask; index.parquet's label_quality is each chunk's good fraction.",
    )

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


def make_detector(settings: PreprocessSettings) -> FaceDetector:
    """The configured detector (cached per process); ConfigError when its model is missing."""
    return get_detector(settings.detector, settings.detect_max_side, settings.detector_model)


#: Detections in the median box that 'every_n' re-detection searches near (redetect_margin).
_NEAR_WINDOW = 5


class _Detections:
    """The detector over a session's detection frames, called on them in order.

    With 'every_n' detection, a ``redetect_margin`` and a detector that has ``detect_near``,
    each detection after the first searches near the per-coordinate median of the last
    ``_NEAR_WINDOW`` faces found (the median ignores one wrong box), with the whole frame as
    the fallback; otherwise every call is a full ``detect``. The state is the faces found by
    the earlier calls, so the calls must come in frame order, from one thread at a time
    (:func:`_frame_stream` runs them in a single worker thread, in submission order); the
    results then do not depend on how the threads are scheduled.
    """

    def __init__(self, detector: FaceDetector, settings: PreprocessSettings) -> None:
        self.detector = detector
        near = settings.detection == "every_n" and settings.redetect_margin is not None
        self._detect_near = getattr(detector, "detect_near", None) if near else None
        self._margin = settings.redetect_margin
        self._found: deque[np.ndarray] = deque(maxlen=_NEAR_WINDOW)

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        if self._detect_near is None:
            face = self.detector.detect(frame)
        elif not self._found:
            # A full search, then one near its face: every box then comes from the same kind of
            # search, so a still face keeps its box when the searches near it start.
            face = self.detector.detect(frame)
            if face is not None:
                face = self._detect_near(frame, face, self._margin)
        else:
            near = np.median(np.stack(self._found), axis=0)
            face = self._detect_near(frame, near, self._margin)
        if face is not None:
            self._found.append(np.asarray(face[:4], dtype=np.float64))
        return face


class _BoxTracker:
    """Chooses each frame's crop box in a single causal pass over the frames."""

    def __init__(self, settings: PreprocessSettings, detector: FaceDetector, session: Session) -> None:
        self.settings = settings
        self.detector = detector
        #: Runs the detector on the detection frames, in order (hand it to :func:`_frame_stream`).
        self.detect = _Detections(detector, settings)
        self.session = session
        smoothing = settings.detection == "every_n"
        self._ema = smoothing and settings.box_smoothing == "ema"
        window = settings.median_window if smoothing and not self._ema else 1
        self._recent: deque[np.ndarray] = deque(maxlen=window)
        self._smoothed: np.ndarray | None = None
        self._box: Box | None = None
        self._frame_shape: tuple[int, ...] | None = None
        self.n_detections = 0
        self.n_misses = 0

    def _detects_at(self, t: int) -> bool:
        if self.settings.detection == "first":
            return t == 0
        return t % self.settings.detect_every == 0

    def detects_at(self, t: int) -> bool:
        """Whether frame ``t`` is a detection frame."""
        return self._detects_at(t)

    def update(self, t: int, frame: np.ndarray, detection: Future | None = None) -> Box:
        """The crop box for frame ``t`` (frames must come in order).

        ``detection``: the detector's result for this frame, computed ahead in another thread
        (None: detect here, when ``t`` is a detection frame).
        """
        if self._frame_shape is None:
            self._frame_shape = frame.shape
        elif frame.shape != self._frame_shape:
            raise DataError(
                f"{self.session.video_path}: frame {t} has shape {frame.shape}, the first frame {self._frame_shape}"
            )
        height, width = frame.shape[:2]
        if self._detects_at(t):
            face = detection.result() if detection is not None else self.detect(frame)
            if face is not None:
                self.n_detections += 1
                self._box = expand_box(self._smooth(face), self.settings.box_scale, width, height)
            else:
                self._miss(t, width, height)
        assert self._box is not None  # frame 0 is always a detection frame
        return self._box

    def _smooth(self, face: np.ndarray) -> np.ndarray:
        """The smoothed face box (x, y, w, h) after adding detection ``face``."""
        face = np.asarray(face[:4], dtype=np.float64)
        if self._ema:
            alpha = self.settings.ema_alpha
            self._smoothed = face if self._smoothed is None else alpha * face + (1 - alpha) * self._smoothed
            return self._smoothed
        self._recent.append(face)
        return np.median(np.stack(self._recent), axis=0)

    def _miss(self, t: int, width: int, height: int) -> None:
        self.n_misses += 1
        s = self.session
        if self.n_detections == 0 and self.settings.no_face == "error":
            # Frames before the first face cannot be cropped without a fallback, and buffering
            # them until a face turns up would make memory depend on the video.
            raise NoFaceError(
                f"{s.dataset} session {s.session}: no face detected in frame {t} of {s.video_path} "
                f"(detection={self.settings.detection!r}); set no_face to 'full_frame' or 'last_box' to fall back"
            )
        if self.settings.no_face == "full_frame" or self._box is None:
            self._box = (0, 0, width, height)
        log.debug("session %s: no face in frame %d, using %s", s.session, t, self._box)


class Stopped(Exception):
    """A session abandoned on request (another session of the job failed)."""


#: Frames between checks of ``should_stop``; a check costs a lock, a frame a millisecond.
_STOP_CHECK_EVERY = 32


#: Frames decoded ahead of the one being cropped: enough for a face detection started when its
#: frame is decoded to finish before that frame is cropped (on 640x480 with detect_max_side 320,
#: ~40 ms of CPU for a full Haar search, ~20 ms for one near the face, against ~1 ms a frame),
#: and few enough to bound the memory (32 frames of 640x480 are 30 MB).
PREFETCH_FRAMES = 32


@contextlib.contextmanager
def _frame_stream(
    reader: DatasetReader, session: Session, detect_at: Callable[[int], bool] | None = None,
    detect: Callable[[np.ndarray], np.ndarray | None] | None = None,
) -> Iterator[Iterator[tuple[np.ndarray, Future | None]]]:
    """The session's frames, decoded ahead in a thread, with their face detections started early.

    Yields ``(frame, detection)``: ``detection`` is a Future of ``detect(frame)`` on the frames
    where ``detect_at(t)``, else None. OpenCV releases the GIL while it decodes and detects, so
    decoding, detecting and cropping overlap: on a fast codec (MJPG, raw AVI) each costs about as
    much as decoding, and in series preprocessing would run at a third to half the decode speed.
    The queue is bounded, so memory stays at a few frames. The reader's generator runs, and is
    closed (its video released), in the decoding thread; its errors (a short decode) surface
    here, in order.
    """
    items: queue.Queue[tuple[str, Any, Future | None]] = queue.Queue(maxsize=PREFETCH_FRAMES)
    stop = threading.Event()
    detector = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"detect-{session.session}")

    def put(item: tuple[str, Any, Future | None]) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def decode() -> None:
        frames = reader.iter_frames(session)
        try:
            for t, frame in enumerate(frames):
                future = detector.submit(detect, frame) if detect is not None and detect_at(t) else None
                if not put(("frame", frame, future)):
                    return
            put(("end", None, None))
        except BaseException as err:  # noqa: BLE001 - handed to the consuming thread, raised there
            put(("error", err, None))
        finally:
            frames.close()

    def consume() -> Iterator[tuple[np.ndarray, Future | None]]:
        while True:
            kind, item, future = items.get()
            if kind == "frame":
                yield item, future
            elif kind == "error":
                raise item
            else:
                return

    thread = threading.Thread(target=decode, name=f"decode-{session.session}", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                items.get(timeout=0.05)
        thread.join()
        detector.shutdown(wait=True, cancel_futures=True)


def preprocess_session(
    reader: DatasetReader,
    session: Session,
    settings: PreprocessSettings,
    writer_dir: Path,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Crop, store and label one session in ``writer_dir``; return its sessions.parquet row.

    The label is read (and checked) before decoding, so a bad label fails fast;
    it is aligned after, to the number of frames actually decoded, and so is its
    quality where the dataset grades it. Errors name the session.
    ``should_stop`` is polled every few frames; when it returns True the session
    is abandoned with :class:`Stopped`.
    """
    started = time.perf_counter()
    prefix = f"{session.dataset} session {session.session}: "
    size = settings.size
    try:
        label = reader.read_label(session)
        tracker = _BoxTracker(settings, make_detector(settings), session)
        with SessionWriter(Path(writer_dir), session.session, size) as writer:
            with _frame_stream(reader, session, tracker.detects_at, tracker.detect) as frames:
                for t, (frame, detection) in enumerate(frames):
                    x, y, w, h = box = tracker.update(t, frame, detection)
                    # The mean of the full-resolution crop, not of the resized one: the pulse is a
                    # fraction of a grey level, and averaging more pixels keeps it above the rounding.
                    mean_rgb = cv2.mean(frame[y : y + h, x : x + w])[:3]
                    writer.append(crop_resize(frame, box, size), box, mean_rgb)
                    if should_stop is not None and t % _STOP_CHECK_EVERY == 0 and should_stop():
                        raise Stopped(f"{prefix}stopped after {t + 1} frames")
            if writer.n_frames == 0:
                raise DataError(f"{session.video_path}: no frames")
            frame_times = reader.frame_timestamps_s(session) if reader.alignment == "timestamps" else None
            aligned, method = align_label(
                label, writer.n_frames, session.fps, frame_times, reader.alignment, session.label_path
            )
            quality = align_quality(label, writer.n_frames, frame_times, method, session.label_path)
            good = None if quality is None else quality > settings.label_quality_threshold
            writer.finish(aligned, good)
    except LqrppgError as err:
        if str(err).startswith(prefix):
            raise
        raise type(err)(prefix + str(err)) from err
    except Stopped:
        raise
    except Exception as err:
        err.add_note(f"while preprocessing {prefix.rstrip(': ')}")
        raise
    n_frames = writer.n_frames
    if tracker.n_misses:
        log.warning("%sno face in %d of %d detection attempts; fell back to %r",
                    prefix, tracker.n_misses, tracker.n_misses + tracker.n_detections, settings.no_face)
    if good is not None and not good.all():
        log.info("%slabel quality <= %g in %d of %d frames (masked)",
                 prefix, settings.label_quality_threshold, int((~good).sum()), n_frames)
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
        "n_detection_misses": tracker.n_misses,
        "has_label_quality": quality is not None,
    }


#: Set in each worker process by :func:`_init_worker`: the pool's "another session failed" event.
_STOP_EVENT: Any = None


def _init_worker(stop_event: Any) -> None:
    """One OpenCV thread per worker process (the pool already uses every core); keep the stop event."""
    global _STOP_EVENT
    cv2.setNumThreads(1)
    _STOP_EVENT = stop_event


def _preprocess_in_worker(
    reader: DatasetReader, session: Session, settings: PreprocessSettings, writer_dir: Path
) -> dict[str, Any]:
    return preprocess_session(reader, session, settings, writer_dir, should_stop=_STOP_EVENT.is_set)


def _log_other_failures(futures: dict[Future, Session], first: BaseException) -> None:
    """Log the sessions that failed besides the one re-raised (the run stops at the first)."""
    for future, session in futures.items():
        if not future.done() or future.cancelled():
            continue
        err = future.exception()
        if err is None or err is first or isinstance(err, (Stopped, CancelledError, BrokenProcessPool)):
            continue
        log.error("%s session %s also failed: %s", session.dataset, session.session, err)


def _run_parallel(
    reader: DatasetReader, sessions: Sequence[Session], settings: PreprocessSettings, tmp: Path, workers: int
) -> dict[str, dict[str, Any]]:
    """Process sessions in a pool; the first failure stops the job and is re-raised.

    On a failure the queued sessions are cancelled and the running ones stop at
    their next check of a shared event (within a few dozen frames), so the error
    comes back without waiting for long videos; the caller then drops the whole
    temporary store, so half-written files do not matter. A worker that dies
    (killed for memory, a crash in native code) breaks the pool, and the error
    names the sessions that had not finished. Workers are spawned, not forked:
    a fork after OpenCV has started its thread pool can hang.
    """
    rows: dict[str, dict[str, Any]] = {}
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(stop,)
    ) as pool:
        futures = {pool.submit(_preprocess_in_worker, reader, s, settings, tmp): s for s in sessions}
        try:
            with tqdm(total=len(sessions), desc=f"preprocess {reader.name}", unit="session", disable=None) as bar:
                for future in as_completed(futures):
                    rows[futures[future].session] = future.result()
                    bar.update()
        except BaseException as err:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            _log_other_failures(futures, err)
            if isinstance(err, BrokenProcessPool):
                unfinished = [s.session for f, s in futures.items() if s.session not in rows]
                err.add_note(
                    f"a {reader.name} worker process died (killed for memory, or a crash in native code) while "
                    f"preprocessing one of the sessions {', '.join(unfinished)}"
                )
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
    make_detector(settings)  # a missing or broken model is a config error, before any work
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
        masked = store.sessions.set_index("session")["n_masked_chunks"]
        if masked.any():
            log.warning("%s: %d of %d chunks have frames with a bad label (label_quality < 1) in sessions %s",
                        reader.name, int(masked.sum()), len(store.index), ", ".join(masked[masked > 0].index))
    return out_dir
