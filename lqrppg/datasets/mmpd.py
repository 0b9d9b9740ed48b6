"""MMPD: ``subjectN/pN_M.mat``, one MATLAB v5 file per one-minute mobile-phone video.

Each file holds ``video`` (T×H×W×3 floats in [0, 1], 240×320 in the full release
and 60×80 in the mini release), ``GT_ppg`` (one sample per frame) and string
attributes describing the recording condition. The attributes are mapped to the
integer codes of rPPG-Toolbox's MMPDLoader (reference/datasets.md §3.4), which
the ``Options`` filters use; the old "Watching Videos" motion label is Walking.

Frames are streamed without loading the video: :mod:`lqrppg.datasets._matfile`
reads the real part chunk by chunk (decompressing incrementally when MATLAB
compressed it, as it does by default), converts each chunk to uint8 with
round(x·255) and scatters it into a frame-major uint8 scratch file, from which
frames are read one at a time. Peak memory is one chunk (``_CHUNK_BYTES`` of
floats plus its uint8 copy); the scratch file is T·H·W·3 bytes on disk (415 MB for
a full-release minute, 26 MB for mini) in the system temp folder (``TMPDIR``).
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from lqrppg.datasets import register_dataset
from lqrppg.datasets._matfile import MatVariable, iter_real_part, scan
from lqrppg.datasets.base import DatasetReader, LabelSeries, ReaderOptions, Session, check_label_values
from lqrppg.errors import DataError

log = logging.getLogger(__name__)

_SUBJECT_DIR = re.compile(r"^subject(\d+)$")
_SESSION_FILE = re.compile(r"^p(\d+)_(\d+)\.mat$")
_TRUE_FALSE = {"True": 1, "False": 2}
#: Attribute strings → codes, as rPPG-Toolbox's MMPDLoader codes them in its cache names.
ATTRIBUTE_CODES: dict[str, dict[str, int]] = {
    "light": {"LED-low": 1, "LED-high": 2, "Incandescent": 3, "Nature": 4},
    "motion": {
        "Stationary": 1,
        "Stationary (after exercise)": 1,
        "Rotation": 2,
        "Talking": 3,
        "Walking": 4,
        # Older releases mislabel the walking sessions; the dataset authors say to read it as Walking.
        "Watching Videos": 4,
    },
    "exercise": _TRUE_FALSE,
    "skin_color": {"3": 3, "4": 4, "5": 5, "6": 6},
    "gender": {"male": 1, "female": 2},
    "glasser": _TRUE_FALSE,
    "hair_cover": _TRUE_FALSE,
    "makeup": _TRUE_FALSE,
}
ATTRIBUTES = tuple(ATTRIBUTE_CODES)
#: (H, W) of each release's frames, to warn when ``release`` does not match the files.
RELEASE_SIZES = {"full": (240, 320), "mini": (60, 80)}
#: Float bytes converted per step while streaming the video (bounds the reader's memory).
_CHUNK_BYTES = 32 << 20


def _codes_help(attribute: str) -> str:
    pairs = sorted({code: text for text, code in ATTRIBUTE_CODES[attribute].items()}.items())
    return ", ".join(f"{code} {text}" for code, text in pairs)


def _filter_field(attribute: str) -> Any:
    return Field(None, description=f"Allowed {attribute} codes ({_codes_help(attribute)}); None keeps all.")


class MmpdOptions(ReaderOptions):
    """Condition filters (None = all conditions, as LQ-rPPG and RhythmMamba use) and the release."""

    light: list[int] | None = _filter_field("light")
    motion: list[int] | None = _filter_field("motion")
    exercise: list[int] | None = _filter_field("exercise")
    skin_color: list[int] | None = _filter_field("skin_color")
    gender: list[int] | None = _filter_field("gender")
    glasser: list[int] | None = _filter_field("glasser")
    hair_cover: list[int] | None = _filter_field("hair_cover")
    makeup: list[int] | None = _filter_field("makeup")
    release: Literal["full", "mini"] | None = Field(
        None, description="Which release the root holds (full 320×240 or mini 80×60); recorded for provenance."
    )

    @model_validator(mode="after")
    def _known_codes(self) -> MmpdOptions:
        for attribute in ATTRIBUTES:
            allowed = getattr(self, attribute)
            unknown = sorted(set(allowed or ()) - set(ATTRIBUTE_CODES[attribute].values()))
            if unknown:
                raise ValueError(f"{attribute}: unknown code(s) {unknown}; known: {_codes_help(attribute)}")
        return self

    def filters(self) -> dict[str, set[int]]:
        """The attributes that are filtered, with their allowed codes."""
        return {a: set(getattr(self, a)) for a in ATTRIBUTES if getattr(self, a) is not None}


def _as_text(value: Any) -> str:
    """A loadmat value (char array, numeric array or scalar) as one stripped string."""
    arr = np.asarray(value)
    if arr.dtype.kind in "US":
        return "".join(str(x) for x in arr.ravel()).strip()
    if arr.size == 1:
        item = arr.ravel()[0]
        if isinstance(item, float | np.floating) and float(item).is_integer():
            item = int(item)
        return str(item).strip()
    raise ValueError(f"expected one value, got an array of shape {arr.shape}")


def _loadmat(path: Path, names: list[str]) -> dict[str, Any]:
    # Imported here: scipy.io costs ~0.3 s, and the registry imports every reader for every command.
    import scipy.io

    try:
        return scipy.io.loadmat(str(path), variable_names=names)
    except Exception as err:
        # scipy raises ValueError, OSError, EOFError, zlib.error, MatReadError... on damaged
        # files; every one of them means the same thing to the user.
        raise DataError(f"{path}: cannot read the .mat file ({type(err).__name__}: {err})") from err


@register_dataset("mmpd")
class MmpdReader(DatasetReader):
    """Reader for MMPD (33 subjects × 20 one-minute videos), full or mini release."""

    default_fps = 30.0
    # The toolbox resamples GT_ppg onto the frame count; with one sample per frame
    # that is a no-op, and a stretch keeps results comparable if a file differs.
    alignment = "linear_stretch"
    expected_sessions = 660
    Options = MmpdOptions
    access = (
        "MMPD is a manual download: request it through the licence form linked from "
        "https://github.com/McJackTang/MMPD_rPPG_dataset (research use only; cite Tang et al., "
        "'MMPD: Multi-Domain Mobile Video Physiology Dataset', IEEE EMBC 2023). Choose the full "
        "(320×240) or mini (80×60) release and record which in datasets.mmpd.options.release.\n"
        "Expected layout: <root>/subjectN/pN_M.mat (N = 1..33, M = 0..19), MATLAB v5 files with "
        "the keys video, GT_ppg, light, motion, exercise, skin_color, gender, glasser, hair_cover, makeup."
    )

    options: MmpdOptions

    def _find_sessions(self) -> list[Session]:
        sessions = []
        for folder in self.root.iterdir():
            subject = _SUBJECT_DIR.match(folder.name)
            if not (folder.is_dir() and subject):
                continue
            for path in folder.iterdir():
                match = _SESSION_FILE.match(path.name)
                if not match:
                    if path.suffix == ".mat":
                        log.warning("%s: ignoring %s (not pN_M.mat)", folder, path.name)
                    continue
                if int(match[1]) != int(subject[1]):
                    raise DataError(f"{path}: file of subject p{match[1]} inside {folder.name}/")
                sessions.append(self._session(path.stem, folder.name, match[2], path, path))
        filters = self.options.filters()
        if not filters or not sessions:
            return sessions
        kept = []
        for s in sessions:
            codes = self.attributes(s)
            if all(codes[a] in allowed for a, allowed in filters.items()):
                kept.append(s)
        rules = ", ".join(f"{a} in {sorted(c)}" for a, c in filters.items())
        log.info("%s: %d of %d session(s) filtered out (keeping %s)", self.name, len(sessions) - len(kept),
                 len(sessions), rules)  # fmt: skip
        if not kept:
            raise DataError(f"{self.name}: the condition filters ({rules}) leave no session under {self.root}")
        return kept

    def attributes(self, s: Session) -> dict[str, int]:
        """The session's recording condition as integer codes (see ``ATTRIBUTE_CODES``).

        Read with ``loadmat(variable_names=...)``, which skips the video.
        """
        path = Path(s.label_path)
        mat = _loadmat(path, list(ATTRIBUTES))
        missing = [a for a in ATTRIBUTES if a not in mat]
        if missing:
            raise DataError(f"{path}: missing attribute key(s) {', '.join(missing)}")
        codes = {}
        for attribute in ATTRIBUTES:
            try:
                text = _as_text(mat[attribute])
            except ValueError as err:
                raise DataError(f"{path}: attribute {attribute!r}: {err}") from err
            code = ATTRIBUTE_CODES[attribute].get(text)
            if code is None:
                known = ", ".join(repr(t) for t in ATTRIBUTE_CODES[attribute])
                raise DataError(f"{path}: attribute {attribute!r} has unknown value {text!r}; known: {known}")
            codes[attribute] = code
        return codes

    def session_files(self, s: Session) -> list[Path]:
        return [Path(s.video_path)]

    def _video(self, s: Session) -> MatVariable:
        path = Path(s.video_path)
        variables = scan(path)
        video = variables.get("video")
        if video is None:
            raise DataError(f"{path}: no 'video' variable (found: {', '.join(sorted(variables)) or 'none'})")
        if video.dtype is None or video.is_complex or len(video.dims) != 4 or video.dims[3] != 3:
            kind = f"{'complex ' if video.is_complex else ''}{video.mclass}"
            raise DataError(f"{path}: 'video' should be a real T×H×W×3 array, found {kind} of dims {video.dims}")
        if 0 in video.dims:
            raise DataError(f"{path}: 'video' is empty (dims {video.dims})")
        return video

    def frame_count(self, s: Session) -> int | None:
        return self._video(s).dims[0]

    def iter_frames(self, s: Session) -> Iterator[np.ndarray]:
        """Stream the frames as RGB uint8; see the module docstring for the memory bound."""
        path = Path(s.video_path)
        video = self._video(s)
        n_frames, height, width, _ = video.dims
        expected = RELEASE_SIZES.get(self.options.release or "")
        if expected and expected != (height, width):
            log.warning("%s: frames are %d×%d but release %r has %d×%d", path, width, height,
                        self.options.release, expected[1], expected[0])  # fmt: skip
        floats = video.mclass in ("double", "single")
        if not floats and video.mclass != "uint8":
            raise DataError(f"{path}: 'video' is {video.mclass}; expected floats in [0, 1] (or uint8)")
        # MATLAB is column-major, so time is the fastest axis: a frame's pixels lie T elements
        # apart across the whole variable. Reading whole columns (all T samples of k pixels) and
        # writing them transposed into a frame-major scratch file turns that into one sequential
        # pass; frames are then contiguous rows.
        n_pixels = height * width * 3
        per_chunk = max(1, _CHUNK_BYTES // (n_frames * video.dtype.itemsize))
        clipped = 0
        with tempfile.TemporaryFile(prefix="mmpd-frames-") as scratch:
            scratch.truncate(n_frames * n_pixels)
            frames = np.memmap(scratch, dtype=np.uint8, mode="r+", shape=(n_frames, n_pixels))
            col = 0
            for chunk in iter_real_part(path, video, per_chunk * n_frames):
                k = chunk.size // n_frames
                block = chunk.reshape(k, n_frames)
                if floats:
                    if not np.isfinite(block).all():
                        raise DataError(f"{path}: 'video' holds NaN/inf pixel values")
                    block = np.multiply(block, 255.0)  # a fresh array: the chunk's buffer is read-only
                    np.round(block, out=block)
                    out = (block < 0) | (block > 255)
                    if out.any():
                        clipped += int(out.sum())
                        np.clip(block, 0, 255, out=block)
                frames[:, col : col + k] = block.T
                col += k
            if clipped:
                log.warning("%s: %d pixel value(s) outside [0, 1] clipped", path, clipped)
            for t in range(n_frames):
                # Column index is h + H·w + H·W·c (MATLAB order), hence the reversed axes.
                yield np.ascontiguousarray(frames[t].reshape(3, width, height).transpose(2, 1, 0))
            del frames

    def read_label(self, s: Session) -> LabelSeries:
        path = Path(s.label_path)
        mat = _loadmat(path, ["GT_ppg"])
        if "GT_ppg" not in mat:
            names = ", ".join(sorted(scan(path))) or "none"
            raise DataError(f"{path}: no 'GT_ppg' variable (found: {names})")
        try:
            values = np.asarray(mat["GT_ppg"], dtype=np.float64).T.reshape(-1)
        except (TypeError, ValueError) as err:
            raise DataError(f"{path}: 'GT_ppg' is not numeric ({err})") from err
        return LabelSeries(check_label_values(values, str(path)), None, self.fps)
