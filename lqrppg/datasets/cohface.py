"""COHFACE: ``<subject>/<rec>/data.avi`` and ``<subject>/<rec>/data.hdf5``.

40 subjects × 4 recordings (0..3, two lighting conditions), 20 fps video. The
HDF5 file holds ``pulse`` (BVP, 256 Hz), ``respiration`` and ``time`` (seconds,
one per pulse sample). Sessions are named ``<subject>-<rec>``, e.g. ``1-0``.

Alignment is by timestamps. COHFACE stores no per-frame times, so frame ``i`` is
taken to be at ``i / container_fps`` seconds from 0. This is an assumption: that
COHFACE records the pulse clock (``time``) from the start of the video, i.e. that
``time`` is in seconds since the first frame. A video that ends before the pulse
recording then keeps its pulse in phase, where the field's linear stretch would
squeeze the whole recording onto the frames. A file without ``time`` falls back
to the linear stretch (and the nominal 256 Hz still checks the label's length).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import h5py
import numpy as np

from lqrppg.datasets import register_dataset
from lqrppg.datasets.base import LabelSeries, Session, check_label_values
from lqrppg.datasets._video import VideoFileReader
from lqrppg.errors import DataError

log = logging.getLogger(__name__)

VIDEO_NAME = "data.avi"
LABEL_NAME = "data.hdf5"
PULSE_KEY = "pulse"
TIME_KEY = "time"
PULSE_RATE_HZ = 256.0
_SUBJECT_DIR = re.compile(r"^\d+$")
_RECORDING_DIR = re.compile(r"^\d+$")


@register_dataset("cohface")
class CohfaceReader(VideoFileReader):
    """Reader for COHFACE (40 subjects × 4 recordings, HDF5 pulse at 256 Hz)."""

    default_fps = 20.0
    alignment = "timestamps"
    expected_sessions = 160
    access = (
        "COHFACE is a manual download from the Idiap Research Institute: "
        "https://www.idiap.ch/en/dataset/cohface (sign the EULA; research use only, "
        "cite Heusch, Anjos & Marcel, 'A reproducible study on remote heart rate measurement').\n"
        "Expected layout: <root>/<subject>/<rec>/data.avi and <root>/<subject>/<rec>/data.hdf5 "
        "(subject 1..40, rec 0..3; HDF5 datasets 'pulse', 'time', 'respiration')."
    )

    def _find_sessions(self) -> list[Session]:
        sessions, missing = [], []
        for subject_dir in self.root.iterdir():
            if not (subject_dir.is_dir() and _SUBJECT_DIR.match(subject_dir.name)):
                continue
            for rec_dir in subject_dir.iterdir():
                if not (rec_dir.is_dir() and _RECORDING_DIR.match(rec_dir.name)):
                    continue
                video, label = rec_dir / VIDEO_NAME, rec_dir / LABEL_NAME
                missing += [str(p) for p in (video, label) if not p.is_file()]
                name = f"{subject_dir.name}-{rec_dir.name}"
                sessions.append(self._session(name, subject_dir.name, rec_dir.name, video, label))
        if missing:
            raise DataError(f"{self.name}: missing file(s): {', '.join(sorted(missing))}")
        return sessions

    def frame_timestamps_s(self, s: Session) -> np.ndarray | None:
        """``i / container_fps`` for every frame the container declares (see the module docstring).

        None (so alignment falls back to the linear stretch) when the container
        declares no frame count.
        """
        count = self.frame_count(s)
        if count is None:
            log.warning("%s: the container declares no frame count, so there are no frame times", s.video_path)
            return None
        fps = self.container_fps(s) or self.fps
        return np.arange(count) / fps

    def read_label(self, s: Session) -> LabelSeries:
        path = Path(s.label_path)
        try:
            with h5py.File(path, "r") as h5:
                if PULSE_KEY not in h5:
                    keys = ", ".join(sorted(h5.keys())) or "none"
                    raise DataError(f"{path}: no '{PULSE_KEY}' dataset in the HDF5 file (it has: {keys})")
                pulse = np.asarray(h5[PULSE_KEY][()], dtype=np.float64).ravel()
                times = np.asarray(h5[TIME_KEY][()], dtype=np.float64).ravel() if TIME_KEY in h5 else None
        except OSError as err:
            if not path.is_file():
                raise DataError(f"{path}: the label file is missing") from err
            raise DataError(f"{path}: cannot read the HDF5 file ({err})") from err
        except (TypeError, ValueError) as err:
            raise DataError(f"{path}: '{PULSE_KEY}' or '{TIME_KEY}' is not a numeric array ({err})") from err
        values = check_label_values(pulse, str(path))
        if times is None:
            log.warning("%s: no '%s' dataset; the label will be aligned by linear stretch", path, TIME_KEY)
            return LabelSeries(values, None, PULSE_RATE_HZ)
        if times.size != values.size:
            raise DataError(f"{path}: '{PULSE_KEY}' has {values.size} samples but '{TIME_KEY}' has {times.size}")
        if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
            raise DataError(f"{path}: '{TIME_KEY}' is not strictly increasing finite seconds")
        span = times[-1] - times[0]
        rate = (values.size - 1) / span if span > 0 else PULSE_RATE_HZ
        return LabelSeries(values, times, rate)
