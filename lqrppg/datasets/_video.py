"""Shared parts of the readers whose video is one container file (UBFC-Phys, COHFACE, V4V).

:class:`VideoFileReader` decodes the container with OpenCV, one frame at a time, and turns a
short decode into an error; :func:`read_value_lines` parses one-number-per-line label files.
The leading underscore keeps the dataset registry from importing this module as a reader.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from lqrppg.datasets.base import DatasetReader, Session
from lqrppg.errors import DataError

__all__ = ["FPS_TOLERANCE", "VideoFileReader", "read_value_lines"]

#: Relative difference between container and configured fps worth a warning.
FPS_TOLERANCE = 0.01

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

    def _probe(self, s: Session) -> tuple[int, float]:
        """Frame count and frame rate the container declares (0 where it declares none)."""
        cap = cv2.VideoCapture(s.video_path)
        try:
            if not cap.isOpened():
                return 0, 0.0
            # Some containers report -1 for an unknown count.
            return max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0), max(float(cap.get(cv2.CAP_PROP_FPS)), 0.0)
        finally:
            cap.release()

    def frame_count(self, s: Session) -> int | None:
        return self._probe(s)[0] or None

    def container_fps(self, s: Session) -> float | None:
        """The frame rate the container declares; None when it declares none."""
        return self._probe(s)[1] or None

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
