"""V4V: ``<split>/video/<subject>_<task>.mkv`` and ``<split>/signal/*.txt``, split in {train, val, test}.

The Vision-for-Vitals challenge ships official train, validation and test folders;
the layout here is the one LQ-rPPG's loader expects. Video is 25 fps; the label is
the continuous blood-pressure waveform at 1000 Hz, one value per line (a pressure
wave, not a PPG; the field uses it as the pulse label all the same). The label of
``train/video/F001_T1.mkv`` is ``train/signal/F001-T1-BP.txt`` (the challenge's
``BP_raw_1KHz`` naming); for val and test it is ``F001-T1.txt``, the naming of the
challenge's ``val_set_bp`` and ``test_set_bp`` releases. Some re-packagings keep the
underscore (``F001_T1.txt``), so that name is accepted as well.

Sessions are named ``<split>-<video stem>``, e.g. ``train-F001_T1``, so the official
split is recoverable from the name (a published split selects it with the pattern
``train-*``). It is not a ``train/`` prefix because the chunk store uses session
names as file names and refuses a ``/``. The subject is ``F001`` and the task ``T1``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from lqrppg.datasets import register_dataset
from lqrppg.datasets.base import LabelSeries, ReaderOptions, Session, check_label_values
from lqrppg.datasets._video import VideoFileReader, read_value_lines
from lqrppg.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
BP_RATE_HZ = 1000.0
#: Between the split and the video stem in a session name; must be legal in a file name.
SPLIT_SEPARATOR = "-"
_VIDEO_NAME = re.compile(r"^(.+)_(T\d+)\.mkv$")

Split = Literal["train", "val", "test"]


def label_names(split: str, subject: str, task: str) -> list[str]:
    """Label file names for a video, the expected one first."""
    if split == "train":
        return [f"{subject}-{task}-BP.txt"]
    return [f"{subject}-{task}.txt", f"{subject}_{task}.txt"]


class V4VOptions(ReaderOptions):
    """Which official V4V splits to read."""

    splits: list[Split] = Field(
        default_factory=lambda: list(SPLITS),
        description="Official split folders to read (train, val, test); each must exist under the root.",
    )

    @field_validator("splits")
    @classmethod
    def _non_empty_unique(cls, splits: list[str]) -> list[str]:
        if not splits:
            raise ValueError("name at least one split")
        if len(set(splits)) != len(splits):
            raise ValueError(f"a split is named twice in {splits}")
        return splits


@register_dataset("v4v")
class V4VReader(VideoFileReader):
    """Reader for the V4V challenge data in its official train/val/test folders."""

    default_fps = 25.0
    alignment = "linear_stretch"
    Options = V4VOptions
    frame_count_slack_s = 1.0
    access = (
        "V4V is a manual download: request it from the Vision for Vitals organisers at "
        "https://vision4vitals.github.io/v4v_dataset.html and sign their data-use agreement "
        "(research use only; cite Revanur et al., ICCV Workshops 2021).\n"
        "Expected layout: <root>/{train,val,test}/video/<subject>_<task>.mkv and "
        "<root>/{train,val,test}/signal/*.txt (1000 Hz BP, one value per line): "
        "train/signal/F001-T1-BP.txt for train/video/F001_T1.mkv, val|test/signal/F001-T1.txt otherwise."
    )

    def _find_sessions(self) -> list[Session]:
        splits: list[str] = self.options.splits  # type: ignore[attr-defined]
        absent = [str(self.root / split / "video") for split in splits if not (self.root / split / "video").is_dir()]
        if absent and len(absent) < len(splits):
            raise DataError(
                f"{self.name}: split folder(s) missing: {', '.join(absent)} "
                "(read fewer splits with the reader option 'splits')"
            )
        sessions, missing = [], []
        for split in splits:
            video_dir, signal_dir = self.root / split / "video", self.root / split / "signal"
            if not video_dir.is_dir():
                continue
            for video in video_dir.iterdir():
                match = _VIDEO_NAME.match(video.name)
                if not match:
                    if video.suffix == ".mkv":
                        log.warning("%s: ignoring %s (not <subject>_<task>.mkv)", video_dir, video.name)
                    continue
                subject, task = match[1], match[2]
                candidates = [signal_dir / name for name in label_names(split, subject, task)]
                label = next((p for p in candidates if p.is_file()), None)
                if label is None:
                    missing.append(" or ".join(str(p) for p in candidates))
                    continue
                sessions.append(self._session(f"{split}{SPLIT_SEPARATOR}{video.stem}", subject, task, video, label))
        if missing:
            raise DataError(f"{self.name}: missing label file(s): {', '.join(sorted(missing))}")
        return sessions

    def read_label(self, s: Session) -> LabelSeries:
        path = Path(s.label_path)
        values = read_value_lines(path, "a V4V BP file (one value per line)")
        return LabelSeries(check_label_values(values, str(path)), None, BP_RATE_HZ)
