"""UBFC-Phys: ``sN/vid_sN_TK.avi`` and ``sN/bvp_sN_TK.csv`` (N = 1..56, K = 1..3).

Each subject did the three tasks of a social-stress protocol (T1 rest, T2 speech,
T3 arithmetic). The video is motion-JPEG at 35 fps; the label is the Empatica E4
wristband's BVP at 64 Hz, one float per CSV row and no header. The field stretches
the label onto the frame count; the label's nominal rate is kept so that a label
that is too short for its video is an error rather than a silent stretch.

The dataset authors publish a list of 67 videos to leave out; ``exclude_published``
applies it, as the rPPG-Toolbox configs do, and acquisition flags those videos
(``known_issues``) either way.

This module also holds :class:`VideoFileReader`, the shared part of the readers
whose video is one container file (UBFC-Phys, COHFACE, V4V), and
:func:`read_value_lines`, the parser for one-number-per-line label files.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
from pydantic import Field, field_validator

from lqrppg.datasets import register_dataset
from lqrppg.datasets.base import (
    DatasetReader,
    LabelSeries,
    ReaderOptions,
    Session,
    check_label_values,
    natural_key,
)
from lqrppg.errors import DataError

log = logging.getLogger(__name__)

#: Relative difference between container and configured fps worth a warning.
FPS_TOLERANCE = 0.01

_SUBJECT_DIR = re.compile(r"^s(\d+)$")
_SESSION_FILE = re.compile(r"^(vid|bvp)_(s\d+)_(T\d+)\.(avi|csv)$")
_SESSION_NAME = re.compile(r"^s\d+_T\d+$")
_TASK_NAME = re.compile(r"^T\d+$")
BVP_RATE_HZ = 64.0

#: The dataset authors' exclusion list, as given (key EXCLUSION_LIST) in the rPPG-Toolbox
#: UBFC-Phys test configs, e.g. configs/train_configs/PURE_PURE_UBFC-PHYS_TSCAN_BASIC.yaml:
#: 14 videos of T1, 30 of T2 and 23 of T3.
PUBLISHED_EXCLUSIONS: frozenset[str] = frozenset(
    [f"s{n}_T1" for n in (3, 8, 9, 26, 28, 30, 31, 32, 33, 40, 52, 53, 54, 56)]
    + [
        f"s{n}_T2"
        for n in (1, 4, 6, 8, 9, 11, 12, 13, 14, 19, 21, 22, 25, 26, 27, 28, 31, 32, 33, 35, 38, 39, 41, 42, 45,
                  47, 48, 52, 53, 55)  # fmt: skip
    ]
    + [f"s{n}_T3" for n in (5, 8, 9, 10, 13, 14, 17, 22, 25, 26, 28, 30, 32, 33, 35, 37, 40, 47, 48, 49, 50, 52, 53)]
)


def read_value_lines(path: Path, what: str, delimiter: str | None = None) -> np.ndarray:
    """The first field of every non-blank line of a text label file, as floats.

    ``delimiter`` splits a line into fields (None: any whitespace). A line that is
    not a number is a DataError naming the line; on line 1 it is taken for a header
    row, which these formats do not have. ``what`` names the file's format.
    """
    values: list[float] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh, start=1):
                text = line.strip()
                if not text:
                    continue
                field = text.split(delimiter)[0].strip()
                try:
                    values.append(float(field))
                except ValueError:
                    shown = field if len(field) <= 40 else field[:37] + "..."
                    if not values and number == 1:
                        raise DataError(
                            f"{path}: line 1 is not a number ({shown!r}); {what} has no header row"
                        ) from None
                    raise DataError(f"{path}: line {number} is not a number ({shown!r})") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read the label file ({err.strerror or err})") from err
    return np.asarray(values, dtype=np.float64)


class VideoFileReader(DatasetReader):
    """A reader whose session video is one container file decoded by OpenCV.

    Subclasses only find sessions and read labels. A short decode (fewer frames
    than the container declares) is an error, not a silently shorter session.
    """

    #: Appended to the truncation error: what usually causes it for this dataset.
    truncation_hint: ClassVar[str] = "the file is truncated or damaged: re-download it"
    #: Seconds of frames a decode may fall short of the container's count with only a
    #: warning. 0 for AVI, whose header counts the frames; containers without a count
    #: (Matroska) get an estimate from duration × fps that can be off by a frame or two.
    frame_count_slack_s: ClassVar[float] = 0.0

    def session_files(self, s: Session) -> list[Path]:
        return [Path(s.video_path), Path(s.label_path)]

    def frame_count(self, s: Session) -> int | None:
        cap = cv2.VideoCapture(s.video_path)
        try:
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        finally:
            cap.release()
        return count if count > 0 else None

    def container_fps(self, s: Session) -> float | None:
        """The frame rate the container declares; None when it declares none."""
        cap = cv2.VideoCapture(s.video_path)
        try:
            fps = float(cap.get(cv2.CAP_PROP_FPS)) if cap.isOpened() else 0.0
        finally:
            cap.release()
        return fps if fps > 0 else None

    def iter_frames(self, s: Session) -> Iterator[np.ndarray]:
        """Decode the video frame by frame (BGR to RGB).

        The length check runs after the last frame, so a consumer that streams
        frames to disk gets the error before it commits anything.
        """
        path = s.video_path
        if not Path(path).is_file():
            raise DataError(f"{path}: video file is missing")
        cap = cv2.VideoCapture(path)
        try:
            if not cap.isOpened():
                raise DataError(f"{path}: OpenCV cannot open the video (unreadable or not a video)")
            expected = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            container_fps = cap.get(cv2.CAP_PROP_FPS)
            if container_fps > 0 and abs(container_fps - self.fps) > FPS_TOLERANCE * self.fps:
                # Logged under the concrete reader's module, so the warning names the dataset's logger.
                logging.getLogger(type(self).__module__).warning(
                    "%s: container says %.3f fps but %g fps is configured", path, container_fps, self.fps
                )
            decoded = 0
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                decoded += 1
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()
        if decoded == 0:
            raise DataError(f"{path}: the video yields no frames (unreadable or empty)")
        if expected > 0 and decoded < expected:
            message = f"{path}: decoded only {decoded} of the {expected} frames the container declares"
            if expected - decoded > self.frame_count_slack_s * self.fps:
                raise DataError(f"{message}; {self.truncation_hint}")
            logging.getLogger(type(self).__module__).warning("%s (within the container's estimate)", message)


class UbfcPhysOptions(ReaderOptions):
    """Which UBFC-Phys sessions to read."""

    exclude_published: bool = Field(
        False,
        description="Leave out the 67 videos on the dataset authors' published exclusion list "
        "(as in the rPPG-Toolbox UBFC-Phys configs).",
    )
    tasks: list[str] | None = Field(
        None, description="Only these tasks, e.g. ['T1'] (T1 rest, T2 speech, T3 arithmetic); None: all."
    )
    exclude: list[str] = Field(
        default_factory=list, description="Further sessions to leave out, by name, e.g. ['s7_T2']."
    )

    @field_validator("tasks")
    @classmethod
    def _task_names(cls, tasks: list[str] | None) -> list[str] | None:
        bad = [t for t in tasks or [] if not _TASK_NAME.match(t)]
        if bad:
            raise ValueError(f"task names look like 'T1', got {bad}")
        return tasks

    @field_validator("exclude")
    @classmethod
    def _session_names(cls, names: list[str]) -> list[str]:
        bad = [n for n in names if not _SESSION_NAME.match(n)]
        if bad:
            raise ValueError(f"session names look like 's3_T1', got {bad}")
        return names


@register_dataset("ubfc-phys")
class UbfcPhysReader(VideoFileReader):
    """Reader for UBFC-Phys (56 subjects × 3 tasks, motion-JPEG AVI and wrist BVP)."""

    default_fps = 35.0
    alignment = "linear_stretch"
    Options = UbfcPhysOptions
    expected_sessions = 168
    known_issues = {
        name: "on the dataset authors' published exclusion list (reader option exclude_published)"
        for name in sorted(PUBLISHED_EXCLUSIONS, key=natural_key)
    }
    access = (
        "UBFC-Phys is a manual download: request it from its authors at "
        "https://sites.google.com/view/ybenezeth/ubfc-phys and accept their licence "
        "(research use only; cite Sabour et al., IEEE Trans. Affective Computing 2021).\n"
        "Expected layout: <root>/sN/vid_sN_TK.avi and <root>/sN/bvp_sN_TK.csv "
        "(N = 1..56 subject, K = 1..3 task; BVP one float per row, no header)."
    )

    def __init__(self, root: Path, fps: float | None = None, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(root, fps, options)
        #: Sessions found on disk but left out by the options, set by list_sessions.
        self.excluded_sessions: list[str] = []

    def _excluded_by(self, name: str, task: str) -> str | None:
        """Why the options leave a session out (None: kept)."""
        opts: UbfcPhysOptions = self.options  # type: ignore[assignment]
        if opts.tasks is not None and task not in opts.tasks:
            return f"task {task} not in {opts.tasks}"
        if opts.exclude_published and name in PUBLISHED_EXCLUSIONS:
            return "on the published exclusion list"
        if name in opts.exclude:
            return "in the 'exclude' option"
        return None

    def _find_sessions(self) -> list[Session]:
        found: dict[tuple[str, str], Path] = {}
        for folder in self.root.iterdir():
            if not (folder.is_dir() and _SUBJECT_DIR.match(folder.name)):
                continue
            for path in folder.iterdir():
                match = _SESSION_FILE.match(path.name)
                # A file of another subject in this folder would be listed twice or never.
                if match and match[2] == folder.name:
                    found.setdefault((folder.name, match[3]), folder)
        sessions, missing, excluded = [], [], []
        for (subject, task), folder in found.items():
            name = f"{subject}_{task}"
            reason = self._excluded_by(name, task)
            if reason:
                excluded.append((name, reason))
                continue
            video, label = folder / f"vid_{name}.avi", folder / f"bvp_{name}.csv"
            missing += [str(p) for p in (video, label) if not p.is_file()]
            sessions.append(self._session(name, subject, task, video, label))
        if missing:
            raise DataError(f"{self.name}: missing file(s): {', '.join(sorted(missing))}")
        self._log_exclusions(excluded, {f"{subject}_{task}" for subject, task in found})
        return sessions

    def _log_exclusions(self, excluded: list[tuple[str, str]], on_disk: set[str]) -> None:
        excluded.sort(key=lambda item: natural_key(item[0]))
        self.excluded_sessions = [name for name, _ in excluded]
        for name, reason in excluded:
            log.info("%s: leaving out session %s (%s)", self.name, name, reason)
        unknown = sorted(set(self.options.exclude) - on_disk, key=natural_key)  # type: ignore[attr-defined]
        if unknown:
            log.warning("%s: 'exclude' names session(s) not under %s: %s", self.name, self.root, ", ".join(unknown))

    def read_label(self, s: Session) -> LabelSeries:
        path = Path(s.label_path)
        values = read_value_lines(path, "a UBFC-Phys BVP file (one value per row)", delimiter=",")
        return LabelSeries(check_label_values(values, str(path)), None, BVP_RATE_HZ)
