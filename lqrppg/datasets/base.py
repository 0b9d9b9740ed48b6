"""Dataset sessions, the reader interface, and label-to-frame alignment.

Every dataset reader turns a raw folder, laid out exactly as its owners ship it,
into :class:`Session` records, a stream of RGB frames and a :class:`LabelSeries`.
The preprocessing stage never looks at a dataset's files itself, so adding a
dataset is one reader module (see :mod:`lqrppg.datasets`).
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from lqrppg.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: Alignment methods understood by :func:`align_label`.
ALIGNMENT_METHODS = ("sample_count", "timestamps", "linear_stretch")

#: How far (in seconds) a label may fall short of the video, or a per-frame label
#: may differ in length from the frame count, before it is an error rather than a
#: rounding difference at the ends of the recording.
LENGTH_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class Session:
    """One recording: a video (file or frame folder) and its contact-PPG label."""

    dataset: str
    session: str
    subject: str
    task: str
    video_path: str
    label_path: str
    fps: float


@dataclass(frozen=True)
class LabelSeries:
    """A label waveform as read from disk, before it is aligned to the frames.

    ``timestamps_s`` (one per sample, same clock as the frame timestamps) is set
    only where the dataset records them; ``rate_hz`` is the sampling rate where it
    is known, used to check that the label covers the whole video.
    """

    values: np.ndarray
    timestamps_s: np.ndarray | None
    rate_hz: float | None
    #: Per-sample label quality in [0, 1] (1 = good), where the dataset grades its label
    #: (iBVP's SQ columns). Aligned to the frames like the values; chunks whose frames are
    #: masked are left out of training and recorded, and time stays continuous.
    quality: np.ndarray | None = None


class ReaderOptions(BaseModel):
    """Dataset-specific settings, from ``datasets.<name>.options`` in the config.

    A reader with options subclasses this (fields with defaults and descriptions) and sets
    it as its ``Options``; unknown keys are errors, checked when the config is loaded.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


def natural_key(text: str) -> list[int | str]:
    """Sort key that orders embedded numbers numerically: subject2 < subject10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


class DatasetReader(ABC):
    """Reads one dataset in its original on-disk layout.

    Subclasses set the class attributes and implement the abstract methods; they
    are registered with :func:`lqrppg.datasets.register_dataset`, which also sets
    ``name``. Frames are always streamed one at a time, so a reader's memory does
    not depend on the length of a recording.
    """

    name: ClassVar[str]
    #: Frame rate assumed when the config gives none (the field takes it from the
    #: config, not the container).
    default_fps: ClassVar[float]
    #: Where to request the data, its licence condition and the expected layout;
    #: shown whenever the root is missing or holds no session.
    access: ClassVar[str]
    #: Default label alignment, one of :data:`ALIGNMENT_METHODS`.
    alignment: ClassVar[str] = "linear_stretch"
    #: The reader's settings (``datasets.<name>.options``); see :class:`ReaderOptions`.
    Options: ClassVar[type[ReaderOptions]] = ReaderOptions
    #: Sessions in the complete public release (None: not fixed); acquisition reports a shortfall.
    expected_sessions: ClassVar[int | None] = None
    #: Known defects of the public release, by session name: acquisition flags them by name.
    known_issues: ClassVar[Mapping[str, str]] = {}

    def __init__(self, root: Path, fps: float | None = None, options: Mapping[str, Any] | None = None) -> None:
        self.root = Path(root)
        self.fps = float(fps) if fps is not None else float(self.default_fps)
        if self.fps <= 0:
            raise DataError(f"{self.name}: fps must be positive, got {self.fps}")
        self.options = self.parse_options(options)

    @classmethod
    def parse_options(cls, options: Mapping[str, Any] | None) -> ReaderOptions:
        """Validated options; ConfigError naming the bad key and the known ones."""
        try:
            return cls.Options.model_validate(dict(options or {}))
        except ValidationError as err:
            known = ", ".join(cls.Options.model_fields) or "(none)"
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in err.errors())
            raise ConfigError(f"{cls.name}: bad reader option(s): {problems} (known options: {known})") from None

    def list_sessions(self) -> list[Session]:
        """All sessions under the root, in natural order of their names.

        Raises DataError (with the access instructions) when the root is missing
        or holds no session, and naming the files when a session is incomplete.
        """
        if not self.root.is_dir():
            raise DataError(f"{self.name}: dataset root {self.root} does not exist.\n{self.access}")
        sessions = self._find_sessions()
        if not sessions:
            raise DataError(f"{self.name}: no session found under {self.root}.\n{self.access}")
        return sorted(sessions, key=lambda s: natural_key(s.session))

    def _recording_folders(
        self, pattern: re.Pattern[str], files: Callable[[Path], tuple[Path, Path]]
    ) -> list[Session]:
        """One session per folder of the root whose name matches ``pattern`` (groups: subject, task).

        ``files(folder)`` gives the session's frame folder and label file; every missing one is
        named in a single DataError.
        """
        sessions, missing = [], []
        for folder in self.root.iterdir():
            match = pattern.match(folder.name)
            if not (folder.is_dir() and match):
                continue
            frames, label = files(folder)
            if not frames.is_dir():
                missing.append(f"{frames}/")
            if not label.is_file():
                missing.append(str(label))
            sessions.append(self._session(folder.name, match[1], match[2], frames, label))
        if missing:
            raise DataError(f"{self.name}: missing file(s): {', '.join(sorted(missing))}")
        return sessions

    def _session(self, session: str, subject: str, task: str, video: Path, label: Path) -> Session:
        """Build a Session of this dataset at the configured frame rate."""
        return Session(self.name, session, subject, task, str(video), str(label), self.fps)

    @abstractmethod
    def _find_sessions(self) -> list[Session]:
        """Sessions under the (existing) root, in any order; raise on incomplete ones."""

    @abstractmethod
    def session_files(self, s: Session) -> list[Path]:
        """Every file that belongs to the session (hashed into the manifest)."""

    @abstractmethod
    def iter_frames(self, s: Session) -> Iterator[np.ndarray]:
        """Yield the session's frames as RGB uint8 (H, W, 3), one at a time."""

    @abstractmethod
    def read_label(self, s: Session) -> LabelSeries:
        """Read (and sanity-check) the session's label waveform."""

    def frame_count(self, s: Session) -> int | None:
        """Number of frames from the container or folder, without decoding; None if unknown."""
        return None

    def frame_timestamps_s(self, s: Session) -> np.ndarray | None:
        """Per-frame timestamps in seconds, where the dataset records them."""
        return None


def check_label_values(values: np.ndarray, source: str) -> np.ndarray:
    """Return ``values`` as a 1-D float64 array, or raise DataError naming ``source``.

    Empty, non-finite and constant labels are rejected: each would silently turn
    into a useless training target or a NaN loss much later.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise DataError(f"{source}: the label is empty")
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataError(
            f"{source}: the label has {int(bad.sum())} NaN/inf value(s), first at sample {int(np.argmax(bad))}"
        )
    if np.ptp(values) == 0:
        raise DataError(f"{source}: the label is constant ({values[0]:g}), so it carries no pulse")
    return values


def _linear_stretch(values: np.ndarray, n_frames: int) -> np.ndarray:
    """The field's convention: first sample on the first frame, last on the last."""
    n = values.size
    return np.interp(np.linspace(1, n, n_frames), np.arange(1, n + 1), values)


def align_label(
    label: LabelSeries,
    n_frames: int,
    fps: float,
    frame_times_s: np.ndarray | None,
    method: str,
    source: str,
) -> tuple[np.ndarray, str]:
    """Resample a label to one value per frame; return it (float32) and the method used.

    Methods:

    - ``sample_count``: one label sample per frame (UBFC-rPPG). A length
      difference of at most one second of samples is absorbed by a linear stretch
      (recorded as ``linear_stretch``); a larger one is an error, because it means
      the one-sample-per-frame assumption is wrong.
    - ``timestamps``: interpolate the label at the frame timestamps (PURE), which
      stays correct when frames were dropped. Without timestamps it falls back to
      ``linear_stretch`` and records that.
    - ``linear_stretch``: ``np.interp`` on ``linspace(1, N, T)``, the field's
      default for every dataset.

    Errors (DataError naming ``source``): empty, NaN/inf or constant label, no
    frames, or a label that covers the video minus more than one second.
    """
    if method not in ALIGNMENT_METHODS:
        raise DataError(f"{source}: unknown alignment method {method!r}; known: {', '.join(ALIGNMENT_METHODS)}")
    values = check_label_values(label.values, source)
    if n_frames <= 0:
        raise DataError(f"{source}: cannot align a label to a video with {n_frames} frames")
    video_s = n_frames / fps

    if method == "timestamps":
        if label.timestamps_s is not None and frame_times_s is not None:
            return _align_by_timestamps(values, label.timestamps_s, frame_times_s, n_frames, source), "timestamps"
        log.warning("%s: no timestamps for label or frames; aligning by linear stretch instead", source)
        method = "linear_stretch"

    if method == "sample_count":
        missing = n_frames - values.size
        if missing > LENGTH_TOLERANCE_S * fps:
            raise DataError(
                f"{source}: label has {values.size} samples but the video has {n_frames} frames; "
                f"it is shorter than the video by {missing / fps:.2f} s"
            )
        if -missing > LENGTH_TOLERANCE_S * fps:
            raise DataError(
                f"{source}: label has {values.size} samples but the video has {n_frames} frames "
                f"({-missing / fps:.2f} s more label than video); one sample per frame cannot hold"
            )
        if missing == 0:
            return values.astype(np.float32), "sample_count"
        log.info("%s: %d label samples for %d frames; stretching", source, values.size, n_frames)
        return _linear_stretch(values, n_frames).astype(np.float32), "linear_stretch"

    if label.rate_hz is not None:
        label_s = values.size / label.rate_hz
        if label_s < video_s - LENGTH_TOLERANCE_S:
            raise DataError(
                f"{source}: label lasts {label_s:.2f} s ({values.size} samples at {label.rate_hz:g} Hz) "
                f"but the video lasts {video_s:.2f} s ({n_frames} frames at {fps:g} fps)"
            )
    return _linear_stretch(values, n_frames).astype(np.float32), "linear_stretch"


def _align_by_timestamps(
    values: np.ndarray, label_t: np.ndarray, frame_t: np.ndarray, n_frames: int, source: str
) -> np.ndarray:
    """Interpolate the label at the frame times; the label must cover them (±1 s)."""
    label_t = np.asarray(label_t, dtype=np.float64).ravel()
    frame_t = np.asarray(frame_t, dtype=np.float64).ravel()
    if label_t.size != values.size:
        raise DataError(f"{source}: {values.size} label samples but {label_t.size} label timestamps")
    if frame_t.size != n_frames:
        raise DataError(f"{source}: {n_frames} frames but {frame_t.size} frame timestamps")
    if np.any(np.diff(label_t) < 0):
        raise DataError(f"{source}: label timestamps go backwards")
    uncovered = max(label_t[0] - frame_t[0], 0.0) + max(frame_t[-1] - label_t[-1], 0.0)
    if uncovered > LENGTH_TOLERANCE_S:
        raise DataError(
            f"{source}: label timestamps cover {label_t[-1] - label_t[0]:.2f} s and leave {uncovered:.2f} s "
            f"of the video ({frame_t[-1] - frame_t[0]:.2f} s) without a label"
        )
    return np.interp(frame_t, label_t, values)


def align_quality(
    label: LabelSeries, n_frames: int, frame_times_s: np.ndarray | None, method_used: str, source: str
) -> np.ndarray | None:
    """The label's per-sample quality on the frames, by the mapping :func:`align_label` used.

    ``method_used`` is the method :func:`align_label` returned for the same label and
    frames, so quality and label land on the frames identically. Returns float32 in
    [0, 1] per frame, or None when the dataset grades no quality. A missing (NaN)
    grade counts as 0: an ungraded sample is not known to be good.
    """
    if label.quality is None:
        return None
    quality = np.nan_to_num(np.asarray(label.quality, dtype=np.float64).ravel(), nan=0.0)
    if quality.size != np.asarray(label.values).size:
        raise DataError(f"{source}: {quality.size} quality values for {np.asarray(label.values).size} label samples")
    if quality.size and (quality.min() < 0 or quality.max() > 1):
        raise DataError(f"{source}: label quality outside [0, 1] ({quality.min():g} to {quality.max():g})")
    if method_used == "timestamps":
        if label.timestamps_s is None or frame_times_s is None:
            raise DataError(f"{source}: label aligned by timestamps but the timestamps are missing")
        aligned = np.interp(np.asarray(frame_times_s, dtype=np.float64).ravel(), label.timestamps_s, quality)
    elif method_used == "sample_count":
        aligned = quality
    elif method_used == "linear_stretch":
        aligned = _linear_stretch(quality, n_frames)
    else:
        raise DataError(f"{source}: unknown alignment method {method_used!r}; known: {', '.join(ALIGNMENT_METHODS)}")
    if aligned.size != n_frames:
        raise DataError(f"{source}: quality aligned to {aligned.size} frames, expected {n_frames}")
    return aligned.astype(np.float32)
