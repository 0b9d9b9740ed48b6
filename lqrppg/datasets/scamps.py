"""SCAMPS (synthetic): ``P<id>.mat`` MATLAB v7.3 files, optionally sorted into ``Train/``, ``Val/``, ``Test/``.

A v7.3 .mat file is HDF5 behind a 512-byte MATLAB header; it is read lazily with
h5py. ``Xsub`` is the face-centred crop (floats in [0, 1]; round(x·255) to uint8)
and ``d_ppg`` the PPG, one sample per frame (600 frames at 30 fps). Every video is
its own subject; the official split folder, where present, stays in the session
name (``Train/P000001``) and is the session's task.

Axis order: HDF5 stores MATLAB's column-major arrays with the dimensions reversed.
The SCAMPS README lists ``Xsub`` as ``[c, w, h, t]`` as h5py shows it, and
rPPG-Toolbox (mat73, which transposes back to MATLAB order) uses it as
(T, H, W, 3); so h5py sees (3, W, H, T). A file written from an H×W×3×T MATLAB
array would show (T, 3, W, H) instead. Both are recognised by where the size-3
colour axis is (with ``d_ppg``'s length deciding if the shape is ambiguous).

Streaming: with time the fastest-varying axis, one frame's pixels are scattered
through the whole dataset (and through every compressed chunk). So the reader
makes one pass over the dataset, chunk by chunk as stored, converting each to
uint8 into a frame-major scratch file (T·H·W·3 bytes, 104 MB for a 240×240×600
crop, in ``TMPDIR``), then yields frames from it. Memory is one HDF5 chunk (or a
slab of at most ``_CHUNK_BYTES`` for an unchunked dataset).
"""

from __future__ import annotations

import logging
import math
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from lqrppg.datasets import register_dataset
from lqrppg.datasets.base import DatasetReader, LabelSeries, Session, check_label_values
from lqrppg.errors import DataError

log = logging.getLogger(__name__)

VIDEO_KEY = "Xsub"
LABEL_KEY = "d_ppg"
SPLITS = ("Train", "Val", "Test")
_FILE = re.compile(r"^P\d+\.mat$")
#: Float bytes read per step from an unchunked (contiguous) dataset.
_CHUNK_BYTES = 32 << 20
#: Axis order of ``Xsub`` as h5py sees it: positions of (time, height, width, channel).
_LAYOUTS = {"cwht": (3, 2, 1, 0), "tcwh": (0, 3, 2, 1)}


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as err:
        try:
            head = path.read_bytes()[:128] if path.is_file() else b""
        except OSError:
            head = b""
        hint = " (it is a MATLAB v5 file; SCAMPS files are v7.3/HDF5)" if head.startswith(b"MATLAB 5.0") else ""
        raise DataError(f"{path}: cannot open as a MATLAB v7.3 (HDF5) file{hint}: {err}") from err


def _dataset(f: h5py.File, key: str, path: Path) -> h5py.Dataset:
    node = f.get(key)
    if not isinstance(node, h5py.Dataset):
        present = ", ".join(k for k in sorted(f.keys()) if not k.startswith("#")) or "none"
        raise DataError(f"{path}: no {key!r} dataset (keys present: {present})")
    return node


def _layout(shape: tuple[int, ...], n_label: int | None, path: Path) -> tuple[int, int, int, int]:
    """Positions of (time, height, width, channel) in the h5py shape of ``Xsub``."""
    if len(shape) != 4:
        raise DataError(f"{path}: {VIDEO_KEY!r} has shape {shape}; expected 4 axes (frames, colour, width, height)")
    fits = [name for name, axes in _LAYOUTS.items() if shape[axes[3]] == 3]
    if len(fits) > 1 and n_label is not None:
        fits = [name for name in fits if shape[_LAYOUTS[name][0]] == n_label] or fits
    if len(fits) != 1:
        raise DataError(
            f"{path}: cannot tell the axes of {VIDEO_KEY!r} with h5py shape {shape}: expected (3, W, H, T) "
            "(MATLAB T×H×W×3) or (T, 3, W, H) (MATLAB H×W×3×T)"
        )
    return _LAYOUTS[fits[0]]


def _to_uint8(block: np.ndarray, floats: bool, path: Path) -> np.ndarray:
    if not floats:
        return block.astype(np.uint8, copy=False)
    if not np.isfinite(block).all():
        raise DataError(f"{path}: {VIDEO_KEY!r} holds NaN/inf pixel values")
    block = np.multiply(block, 255.0)
    np.round(block, out=block)
    return np.clip(block, 0, 255, out=block).astype(np.uint8)


def _selections(ds: h5py.Dataset) -> Iterator[tuple[slice, ...]]:
    """Selections that cover the dataset, each read from disk (and decompressed) once."""
    if ds.chunks is not None:
        yield from ds.iter_chunks()
        return
    # Contiguous storage: C-order slabs along the first axes are contiguous on disk.
    shape = ds.shape
    row = math.prod(shape[2:]) * ds.dtype.itemsize
    step = max(1, _CHUNK_BYTES // max(row, 1))
    for i in range(shape[0]):
        for j in range(0, shape[1], step):
            yield (slice(i, i + 1), slice(j, min(j + step, shape[1])), slice(None), slice(None))


@register_dataset("scamps")
class ScampsReader(DatasetReader):
    """Reader for SCAMPS (2,800 synthetic videos × 600 frames, MATLAB v7.3)."""

    default_fps = 30.0
    alignment = "sample_count"
    expected_sessions = 2800
    access = (
        "SCAMPS is a free download (research use; cite McDuff et al., 'SCAMPS: Synthetics for Camera "
        "Measurement of Physiological Signals', NeurIPS 2022) linked from "
        "https://github.com/danmcduff/scampsdataset (scamps_videos.tar.gz, about 600 GB), with the "
        "official Train/Validation/Test split CSV.\n"
        "Expected layout: <root>/P<id>.mat, or sorted by the official split into <root>/Train/P<id>.mat, "
        "<root>/Val/P<id>.mat and <root>/Test/P<id>.mat; MATLAB v7.3 files with the keys Xsub and d_ppg."
    )

    def _find_sessions(self) -> list[Session]:
        sessions = []
        for split in ("", *SPLITS):
            folder = self.root / split if split else self.root
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if not _FILE.match(path.name):
                    if path.suffix == ".mat":
                        log.warning("%s: ignoring %s (not P<id>.mat)", folder, path.name)
                    continue
                name = f"{split}/{path.stem}" if split else path.stem
                sessions.append(self._session(name, path.stem, split, path, path))
        seen: dict[str, str] = {}
        for s in sessions:
            if s.subject in seen:
                raise DataError(f"{self.name}: {s.subject} appears twice: {seen[s.subject]} and {s.video_path}")
            seen[s.subject] = s.video_path
        return sessions

    def session_files(self, s: Session) -> list[Path]:
        return [Path(s.video_path)]

    def _label_length(self, f: h5py.File, path: Path) -> int | None:
        node = f.get(LABEL_KEY)
        return int(node.size) if isinstance(node, h5py.Dataset) else None

    def frame_count(self, s: Session) -> int | None:
        path = Path(s.video_path)
        with _open(path) as f:
            ds = _dataset(f, VIDEO_KEY, path)
            return ds.shape[_layout(ds.shape, self._label_length(f, path), path)[0]]

    def iter_frames(self, s: Session) -> Iterator[np.ndarray]:
        path = Path(s.video_path)
        with _open(path) as f:
            ds = _dataset(f, VIDEO_KEY, path)
            axes = _layout(ds.shape, self._label_length(f, path), path)
            n_frames, height, width, _ = (ds.shape[a] for a in axes)
            floats = ds.dtype.kind == "f"
            if not floats and ds.dtype != np.uint8:
                raise DataError(f"{path}: {VIDEO_KEY!r} is {ds.dtype}; expected floats in [0, 1] (or uint8)")
            with tempfile.TemporaryFile(prefix="scamps-frames-") as scratch:
                scratch.truncate(n_frames * height * width * 3)
                frames = np.memmap(scratch, dtype=np.uint8, mode="r+", shape=(n_frames, height, width, 3))
                for sel in _selections(ds):
                    try:
                        block = ds[sel]
                    except OSError as err:  # h5py's error for a damaged or truncated chunk
                        raise DataError(f"{path}: cannot read {VIDEO_KEY!r} ({err})") from err
                    frames[tuple(sel[a] for a in axes)] = _to_uint8(block, floats, path).transpose(axes)
                for t in range(n_frames):
                    yield np.array(frames[t])
                del frames

    def read_label(self, s: Session) -> LabelSeries:
        path = Path(s.label_path)
        with _open(path) as f:
            try:
                values = np.asarray(_dataset(f, LABEL_KEY, path)[()], dtype=np.float64).ravel()
            except OSError as err:
                raise DataError(f"{path}: cannot read {LABEL_KEY!r} ({err})") from err
            except (TypeError, ValueError) as err:
                raise DataError(f"{path}: {LABEL_KEY!r} is not numeric ({err})") from err
        return LabelSeries(check_label_values(values, str(path)), None, self.fps)
