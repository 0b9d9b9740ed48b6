"""UBFC-Phys: ``sN/vid_sN_TK.avi`` and ``sN/bvp_sN_TK.csv`` (N = 1..56, K = 1..3).

Each subject did the three tasks of a social-stress protocol (T1 rest, T2 speech,
T3 arithmetic). The video is motion-JPEG at 35 fps; the label is the Empatica E4
wristband's BVP at 64 Hz, one float per CSV row and no header. The field stretches
the label onto the frame count; the label's nominal rate is kept so that a label
that is too short for its video is an error rather than a silent stretch.

The dataset authors publish a list of 67 videos to leave out; ``exclude_published``
applies it, as the rPPG-Toolbox configs do, and acquisition flags those videos
(``known_issues``) either way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from lqrppg.datasets import register_dataset
from lqrppg.datasets._video import VideoFileReader, read_value_lines
from lqrppg.datasets.base import (
    LabelSeries,
    ReaderOptions,
    Session,
    check_label_values,
    natural_key,
)
from lqrppg.errors import DataError

log = logging.getLogger(__name__)

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
