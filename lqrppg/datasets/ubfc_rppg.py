"""UBFC-rPPG (DATASET_2): ``subjectN/vid.avi`` and ``subjectN/ground_truth.txt``.

The label is line 1 of ``ground_truth.txt`` (lines 2 and 3, heart rate and
timestamps, are not used by the field), one sample per frame. Videos are decoded
with OpenCV; a short decode (the damaged ``subject33/vid.avi`` download) is an
error rather than a silently shorter session.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from lqrppg.datasets import register_dataset
from lqrppg.datasets._video import VideoFileReader
from lqrppg.datasets.base import LabelSeries, Session, check_label_values
from lqrppg.errors import DataError

log = logging.getLogger(__name__)

VIDEO_NAME = "vid.avi"
LABEL_NAME = "ground_truth.txt"
_SUBJECT_DIR = re.compile(r"^subject\d+$")


@register_dataset("ubfc-rppg")
class UbfcRppgReader(VideoFileReader):
    """Reader for UBFC-rPPG DATASET_2 (42 subjects, one uncompressed AVI each)."""

    default_fps = 30.0
    expected_sessions = 42
    alignment = "sample_count"
    access = (
        "UBFC-rPPG is a manual download: request it from its authors at "
        "https://sites.google.com/view/ybenezeth/ubfcrppg and accept their licence "
        "(research use; cite Bobbia et al., Pattern Recognition Letters 2017).\n"
        "Expected layout (DATASET_2): <root>/subjectN/vid.avi and <root>/subjectN/ground_truth.txt."
    )
    truncation_hint = "the file is truncated or damaged (a known defect of UBFC-rPPG subject33): re-download it"
    known_issues = {
        "subject33": "a damaged vid.avi download is common: OpenCV decodes too few frames "
        "('Invalid buffer size'); re-download it (rPPG-Toolbox issue #133)",
    }

    def _find_sessions(self) -> list[Session]:
        sessions, missing = [], []
        for folder in self.root.iterdir():
            if not (folder.is_dir() and _SUBJECT_DIR.match(folder.name)):
                continue
            video, label = folder / VIDEO_NAME, folder / LABEL_NAME
            missing += [str(p) for p in (video, label) if not p.is_file()]
            sessions.append(self._session(folder.name, folder.name, "", video, label))
        if missing:
            raise DataError(f"{self.name}: missing file(s): {', '.join(sorted(missing))}")
        return sessions

    def read_label(self, s: Session) -> LabelSeries:
        path = Path(s.label_path)
        try:
            lines = [line for line in path.read_text().splitlines() if line.strip()]
        except OSError as err:
            raise DataError(f"{path}: cannot read the label file ({err.strerror or err})") from err
        if not lines:
            raise DataError(f"{path}: the label file is empty")
        try:
            values = np.array([float(tok) for tok in lines[0].split()])
        except ValueError as err:
            raise DataError(f"{path}: line 1 (the PPG waveform) is not numeric: {err}") from err
        return LabelSeries(check_label_values(values, str(path)), None, self.fps)
