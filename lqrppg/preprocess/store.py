"""The chunk store: uint8 face crops, aligned labels and per-chunk index on disk.

Layout of ``<store>/``::

    store.json           format version, prep_id, settings, dtype, dataset, fps
    sessions.parquet     one row per session (SESSION_COLUMNS)
    index.parquet        one row per chunk (INDEX_COLUMNS)
    frames/<s>.npy       (T, H, W, 3) uint8 face crops, memory-mappable
    labels/<s>.npy       (T,) float32 label aligned to the frames
    boxes/<s>.npy        (T, 4) int32 crop box (x, y, w, h) in the source frame
    rgb/<s>.npy          (T, 3) float32 spatial mean RGB of the crop (unsupervised methods)
    label_mask/<s>.npy   (T,) bool, True where the label is good (format 2; all True when the
                         dataset grades no label quality)

Crops are stored as uint8, not float: normalisation (Standardized,
DiffNormalized) is cheap and applied when loading, while storing it as float64,
as the rPPG-Toolbox does, costs 8× in disk and I/O.

Format 2 added ``label_mask``, the index column ``label_quality`` (fraction of
good-label frames in the chunk) and the session columns after ``video_path``.
Format 1 stores still open: their masks read as all good and the new columns
get those defaults, so readers of the tables see one shape.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from lqrppg.errors import DataError

log = logging.getLogger(__name__)

STORE_FORMAT_VERSION = 2
#: Formats this code opens; older ones get the newer columns and arrays filled with defaults.
READABLE_FORMATS = (1, 2)
SESSION_COLUMNS = [
    "session", "subject", "task", "n_frames", "fps", "alignment",
    "face_fallback", "n_detections", "label_path", "video_path",
    "n_detection_misses", "has_label_quality", "n_masked_frames", "n_masked_chunks",
]  # fmt: skip
#: Defaults of the session columns that a writer (or a format-1 store) may leave out.
SESSION_DEFAULTS: dict[str, Any] = {
    "n_detection_misses": 0, "has_label_quality": False, "n_masked_frames": 0, "n_masked_chunks": 0,
}  # fmt: skip
INDEX_COLUMNS = ["session", "subject", "chunk", "start", "stop", "fps", "label_quality"]
#: Per-session arrays: folder name -> (dtype, shape of one frame's entry, or None for the crops).
ARRAYS: dict[str, tuple[str, tuple[int, ...] | None]] = {
    "frames": ("uint8", None),
    "labels": ("float32", ()),
    "boxes": ("int32", (4,)),
    "rgb": ("float32", (3,)),
    "label_mask": ("bool", ()),
}
#: Arrays that format-1 stores lack.
_ADDED_IN_FORMAT_2 = ("label_mask",)
_REQUIRED_FILES = ("store.json", "sessions.parquet", "index.parquet")

#: Bytes reserved for the .npy magic and header of a streamed array. 128 holds the
#: header of any shape up to 10-digit lengths and keeps the data 64-byte aligned.
_NPY_HEADER_BYTES = 128


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """A version 1.0 .npy header padded with spaces to exactly _NPY_HEADER_BYTES."""
    text = f"{{'descr': {np.lib.format.dtype_to_descr(dtype)!r}, 'fortran_order': False, 'shape': {shape!r}, }}"
    pad = _NPY_HEADER_BYTES - 10 - len(text) - 1
    if pad < 0:
        raise ValueError(f"shape {shape} does not fit the reserved .npy header")
    header = (text + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


class NpyStreamWriter:
    """Append equal-shaped items to a .npy file without holding them in memory.

    A fixed-size placeholder header is written first and the raw bytes of each
    item follow; :meth:`close` seeks back and writes the real header with the
    final length. Memory stays flat however long the stream is.
    """

    def __init__(self, path: Path, dtype: str | np.dtype, item_shape: tuple[int, ...]) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.item_shape = tuple(item_shape)
        self.count = 0
        self._fh: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115 (closed by close())
        self._fh.write(b"\0" * _NPY_HEADER_BYTES)

    def append(self, item: np.ndarray) -> None:
        arr = np.ascontiguousarray(item, dtype=self.dtype)
        if arr.shape != self.item_shape:
            raise ValueError(f"{self.path}: item of shape {arr.shape}, expected {self.item_shape}")
        if self._fh is None:
            raise ValueError(f"{self.path}: append after close")
        self._fh.write(arr.data)
        self.count += 1

    def close(self) -> None:
        """Write the final header and close (idempotent)."""
        if self._fh is None:
            return
        try:
            self._fh.seek(0)
            self._fh.write(_npy_header(self.dtype, (self.count, *self.item_shape)))
        finally:
            self._fh.close()
            self._fh = None


def _check_session_name(session: str) -> None:
    """Session names become file names; refuse anything that could leave the store."""
    if not session or session in {".", ".."} or "/" in session or "\\" in session:
        raise DataError(f"session name {session!r} cannot be used as a file name in the store")


class SessionWriter:
    """Streams one session's crops, boxes and mean RGB into a store folder.

    Use as a context manager: ``append`` per frame, then ``finish(label, good)``
    once the label (and its good-frame mask) has been aligned to :attr:`n_frames`.
    On an exception the files are closed and left for the caller's temporary
    directory to remove.
    """

    def __init__(self, store_dir: Path, session: str, size: int) -> None:
        _check_session_name(session)
        self.store_dir = Path(store_dir)
        self.session = session
        for folder in ARRAYS:
            (self.store_dir / folder).mkdir(parents=True, exist_ok=True)
        name = f"{session}.npy"
        self._frames = NpyStreamWriter(self.store_dir / "frames" / name, "uint8", (size, size, 3))
        self._boxes = NpyStreamWriter(self.store_dir / "boxes" / name, "int32", (4,))
        self._rgb = NpyStreamWriter(self.store_dir / "rgb" / name, "float32", (3,))

    @property
    def n_frames(self) -> int:
        return self._frames.count

    def append(self, crop: np.ndarray, box: tuple[int, int, int, int], mean_rgb: np.ndarray) -> None:
        """Add one frame's crop (uint8), crop box and mean RGB."""
        self._frames.append(crop)
        self._boxes.append(np.asarray(box))
        self._rgb.append(mean_rgb)

    def finish(self, label: np.ndarray, good: np.ndarray | None = None) -> None:
        """Write the final headers, the aligned label and its good-frame mask (None: all good)."""
        label = np.asarray(label, dtype=np.float32)
        if label.shape != (self.n_frames,):
            raise ValueError(f"session {self.session}: label of shape {label.shape} for {self.n_frames} frames")
        good = np.ones(self.n_frames, dtype=bool) if good is None else np.asarray(good, dtype=bool)
        if good.shape != (self.n_frames,):
            raise ValueError(f"session {self.session}: label mask of shape {good.shape} for {self.n_frames} frames")
        self.close()
        np.save(self.store_dir / "labels" / f"{self.session}.npy", label)
        np.save(self.store_dir / "label_mask" / f"{self.session}.npy", good)

    def close(self) -> None:
        for stream in (self._frames, self._boxes, self._rgb):
            stream.close()

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def chunk_index(
    sessions: pd.DataFrame, chunk_length: int, good: Mapping[str, np.ndarray] | None = None
) -> pd.DataFrame:
    """Non-overlapping chunks of ``chunk_length`` frames; each session's remainder is dropped.

    ``label_quality`` is the fraction of the chunk's frames whose label is good
    according to the session's mask in ``good`` (1.0 for a session without one).
    Chunks stay contiguous in time: a loader drops or down-weights whole chunks
    by this column rather than cutting frames out, which would splice the pulse.
    """
    rows = []
    good = good or {}
    for s in sessions.itertuples(index=False):
        n_chunks = int(s.n_frames) // chunk_length
        if n_chunks == 0:
            log.warning("session %s: %d frames is shorter than one chunk (%d); it yields no chunk",
                        s.session, s.n_frames, chunk_length)
        mask = good.get(s.session)
        if mask is None:
            quality = np.ones(n_chunks)
        else:
            quality = np.asarray(mask[: n_chunks * chunk_length], dtype=np.float64).reshape(n_chunks, chunk_length)
            quality = quality.mean(axis=1)
        rows += [
            (s.session, s.subject, k, k * chunk_length, (k + 1) * chunk_length, float(s.fps), float(quality[k]))
            for k in range(n_chunks)
        ]
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    return index.astype(
        {"chunk": "int64", "start": "int64", "stop": "int64", "fps": "float64", "label_quality": "float64"}
    )


def write_store_tables(
    store_dir: Path,
    *,
    dataset: str,
    fps: float,
    prep_id: str,
    settings: dict[str, Any],
    chunk_length: int,
    sessions: list[dict[str, Any]],
) -> None:
    """Write sessions.parquet, index.parquet and store.json for finished session arrays.

    The label masks are read back from ``label_mask/`` to fill the index's
    ``label_quality`` and the sessions' masked frame and chunk counts; a chunk is
    masked when any of its frames has a bad label. Session columns of
    :data:`SESSION_DEFAULTS` that a row leaves out get their defaults.
    """
    store_dir = Path(store_dir)
    rows = [{**SESSION_DEFAULTS, **row} for row in sessions]
    good: dict[str, np.ndarray] = {}
    for row in rows:
        path = store_dir / "label_mask" / f"{row['session']}.npy"
        mask = np.load(path) if path.is_file() else np.ones(int(row["n_frames"]), dtype=bool)
        good[row["session"]] = mask
        row["n_masked_frames"] = int((~mask).sum())
    index = chunk_index(pd.DataFrame(rows, columns=SESSION_COLUMNS), chunk_length, good)
    masked = index.loc[index["label_quality"] < 1.0, "session"].value_counts()
    for row in rows:
        row["n_masked_chunks"] = int(masked.get(row["session"], 0))
    table = pd.DataFrame(rows, columns=SESSION_COLUMNS)
    table.to_parquet(store_dir / "sessions.parquet", index=False)
    index.to_parquet(store_dir / "index.parquet", index=False)
    meta = {
        "format_version": STORE_FORMAT_VERSION,
        "prep_id": prep_id,
        "settings": settings,
        "dtype": "uint8",
        "dataset": dataset,
        "fps": float(fps),
        # Sessions with chunks whose label is partly bad, and how many: the loader leaves those out.
        "masked_chunks": {str(name): int(n) for name, n in masked.items()},
    }
    (store_dir / "store.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


class ChunkStore:
    """Read access to a finished chunk store; validated when opened.

    Arrays are memory-mapped by default, so a training loader touches only the
    chunks it reads. Normalisation is the loader's job, not the store's.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        missing = [name for name in _REQUIRED_FILES if not (self.path / name).is_file()]
        if missing:
            raise DataError(f"{self.path}: not a complete chunk store, missing {', '.join(missing)}")
        try:
            self._meta = json.loads((self.path / "store.json").read_text())
        except json.JSONDecodeError as err:
            raise DataError(f"{self.path / 'store.json'}: malformed JSON ({err})") from err
        version = self._meta.get("format_version")
        if version not in READABLE_FORMATS:
            raise DataError(
                f"{self.path}: store format {version}, this lqrppg reads formats "
                f"{', '.join(map(str, READABLE_FORMATS))}; re-run preprocessing"
            )
        self.format_version = int(version)
        self._sessions = pd.read_parquet(self.path / "sessions.parquet")
        for column, default in SESSION_DEFAULTS.items():
            if column not in self._sessions:
                self._sessions[column] = default
        self._index = pd.read_parquet(self.path / "index.parquet")
        if "label_quality" not in self._index:
            self._index["label_quality"] = 1.0
        self._chunks = {
            (row.session, int(row.chunk)): (int(row.start), int(row.stop)) for row in self._index.itertuples()
        }
        self._validate_arrays()

    def _array_path(self, kind: str, session: str) -> Path:
        return self.path / kind / f"{session}.npy"

    def _validate_arrays(self) -> None:
        """Every session has all four arrays, with the lengths and dtypes the tables promise."""
        missing, wrong = [], []
        size = int(self.settings.get("size", 0))
        for session, n in zip(self._sessions["session"], self._sessions["n_frames"], strict=True):
            for kind, (dtype, item_shape) in ARRAYS.items():
                if self.format_version < 2 and kind in _ADDED_IN_FORMAT_2:
                    continue
                path = self._array_path(kind, session)
                if not path.is_file():
                    missing.append(str(path.relative_to(self.path)))
                    continue
                arr = np.load(path, mmap_mode="r")
                expected = (int(n), *(item_shape if item_shape is not None else (size, size, 3)))
                if arr.shape != expected or arr.dtype != np.dtype(dtype):
                    wrong.append(f"{path.relative_to(self.path)} is {arr.dtype}{arr.shape}, expected {dtype}{expected}")
        if missing:
            raise DataError(f"{self.path}: incomplete chunk store, missing {', '.join(missing)}")
        if wrong:
            raise DataError(f"{self.path}: inconsistent chunk store: {'; '.join(wrong)}")

    @property
    def settings(self) -> dict[str, Any]:
        """The preprocessing settings that produced the store."""
        return dict(self._meta.get("settings", {}))

    @property
    def prep_id(self) -> str:
        return str(self._meta["prep_id"])

    @property
    def dataset(self) -> str:
        return str(self._meta["dataset"])

    @property
    def fps(self) -> float:
        return float(self._meta["fps"])

    @property
    def sessions(self) -> pd.DataFrame:
        """One row per session (SESSION_COLUMNS); a copy, so callers may modify it."""
        return self._sessions.copy()

    @property
    def index(self) -> pd.DataFrame:
        """One row per chunk (INDEX_COLUMNS); a copy."""
        return self._index.copy()

    def _load(self, kind: str, session: str, mmap: bool) -> np.ndarray:
        path = self._array_path(kind, session)
        if not path.is_file():
            raise DataError(f"{self.path}: no session {session!r} in this store")
        return np.load(path, mmap_mode="r" if mmap else None)

    def frames(self, session: str, mmap: bool = True) -> np.ndarray:
        """(T, H, W, 3) uint8 face crops, read-only memory map unless ``mmap=False``."""
        return self._load("frames", session, mmap)

    def label(self, session: str) -> np.ndarray:
        """(T,) float32 label aligned to the frames."""
        return self._load("labels", session, mmap=False)

    def boxes(self, session: str) -> np.ndarray:
        """(T, 4) int32 crop boxes (x, y, w, h) in source-frame pixels."""
        return self._load("boxes", session, mmap=False)

    def mean_rgb(self, session: str) -> np.ndarray:
        """(T, 3) float32 spatial mean RGB of each crop."""
        return self._load("rgb", session, mmap=False)

    def label_mask(self, session: str) -> np.ndarray:
        """(T,) bool, True where the label is good (all True for a format-1 store)."""
        if self.format_version < 2:
            return np.ones(len(self._load("labels", session, mmap=True)), dtype=bool)
        return self._load("label_mask", session, mmap=False)

    def chunk(self, session: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Frames (memory-mapped) and label of chunk ``k`` of ``session``."""
        try:
            start, stop = self._chunks[(session, int(k))]
        except KeyError:
            raise DataError(f"{self.path}: no chunk {k} of session {session!r} in the index") from None
        return self.frames(session)[start:stop], self.label(session)[start:stop]
