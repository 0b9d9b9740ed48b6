"""PURE: ``ii-jj/ii-jj/Image<ns>.png`` frames and ``ii-jj/ii-jj.json`` physiology.

``ii`` is the subject and ``jj`` the task. The JSON holds ``/FullPackage``, a list
of pulse-oximeter packets (``Timestamp`` in ns, ``Value.waveform`` at 60 Hz), and
``/Image``, the frame timestamps. Frame timestamps are taken from the file names,
which are what is on disk, and cross-checked against ``/Image``. The label is
aligned by these timestamps, so dropped frames do not shift the pulse.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lqrppg.datasets import register_dataset
from lqrppg.datasets.base import DatasetReader, LabelSeries, Session, check_label_values
from lqrppg.errors import DataError

log = logging.getLogger(__name__)

_RECORDING_DIR = re.compile(r"^(\d{2})-(\d{2})$")
_FRAME_NAME = re.compile(r"^Image(\d+)\.png$")
_NS_PER_S = 1e9


@register_dataset("pure")
class PureReader(DatasetReader):
    """Reader for PURE (10 subjects × 6 tasks; recording 06-02 does not exist)."""

    default_fps = 30.0
    expected_sessions = 59
    alignment = "timestamps"
    access = (
        "PURE is available on request from TU Ilmenau (Neuroinformatics and Cognitive Robotics "
        "group, 'Pulse Rate Detection Dataset - PURE'); cite Stricker, Müller & Gross, RO-MAN 2014.\n"
        "Expected layout: <root>/ii-jj/ii-jj/Image<timestamp_ns>.png and <root>/ii-jj/ii-jj.json "
        "(ii = subject 01-10, jj = task 01-06)."
    )
    known_issues = {
        "06-02": "recording 06-02 does not exist in the public release (59 of 60 recordings)",
        "07-05": "reported to fail preprocessing for at least one user "
        "(rPPG-Toolbox issue #229); check this recording's report",
    }

    def _find_sessions(self) -> list[Session]:
        return self._recording_folders(_RECORDING_DIR, lambda folder: (folder / folder.name, folder / f"{folder.name}.json"))

    def _frame_files(self, s: Session) -> list[tuple[int, Path]]:
        """(timestamp ns, path) of every frame, sorted by the timestamp in the name."""
        folder = Path(s.video_path)
        try:
            entries = list(folder.iterdir())
        except OSError as err:
            raise DataError(f"{folder}: cannot list the frame folder ({err.strerror or err})") from err
        frames = []
        for path in entries:
            match = _FRAME_NAME.match(path.name)
            if match:
                frames.append((int(match[1]), path))
            else:
                log.warning("%s: ignoring %s (not Image<timestamp>.png)", folder, path.name)
        if not frames:
            raise DataError(f"{folder}: no Image<timestamp>.png frame in the folder")
        return sorted(frames)

    def _read_json(self, s: Session) -> dict[str, Any]:
        path = Path(s.label_path)
        try:
            with open(path) as fh:
                data = json.load(fh)
        except OSError as err:
            raise DataError(f"{path}: cannot read the label file ({err.strerror or err})") from err
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{path}: malformed JSON ({err})") from err
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected a JSON object with /FullPackage and /Image")
        return data

    def session_files(self, s: Session) -> list[Path]:
        return [path for _, path in self._frame_files(s)] + [Path(s.label_path)]

    def frame_count(self, s: Session) -> int | None:
        return len(self._frame_files(s))

    def frame_timestamps_s(self, s: Session) -> np.ndarray:
        """Frame times from the file names, warning where ``/Image`` disagrees."""
        stamps = np.array([ns for ns, _ in self._frame_files(s)], dtype=np.int64)
        try:
            listed = np.array([int(item["Timestamp"]) for item in self._read_json(s)["/Image"]], dtype=np.int64)
        except (KeyError, TypeError, ValueError):
            log.warning("%s: no usable /Image timestamps to cross-check the frame names", s.label_path)
        else:
            only_files = np.setdiff1d(stamps, listed).size
            only_json = np.setdiff1d(listed, stamps).size
            if only_files or only_json:
                log.warning(
                    "%s: %d frame file(s) not listed in /Image and %d /Image entries without a file",
                    s.label_path, only_files, only_json,
                )
        return stamps / _NS_PER_S

    def iter_frames(self, s: Session) -> Iterator[np.ndarray]:
        for _, path in self._frame_files(s):
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise DataError(f"{path}: unreadable PNG frame")
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def read_label(self, s: Session) -> LabelSeries:
        path = s.label_path
        try:
            packets = self._read_json(s)["/FullPackage"]
            values = np.array([float(p["Value"]["waveform"]) for p in packets])
            stamps = np.array([int(p["Timestamp"]) for p in packets], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(
                f"{path}: expected /FullPackage[*].Timestamp and /FullPackage[*].Value.waveform ({err!r})"
            ) from err
        values = check_label_values(values, path)
        times = stamps / _NS_PER_S
        span = times[-1] - times[0]
        rate = (values.size - 1) / span if span > 0 else None
        return LabelSeries(values, times, rate)
