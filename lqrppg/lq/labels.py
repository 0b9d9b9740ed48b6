"""Label preprocessing for the LQ module (``reference/method.md`` §1).

The chain is: per-video z-score of the frame-aligned label ("Standardized") → non-overlapping
chunks → per chunk, a zero-phase 1st-order Butterworth band-pass and a second z-score over time.
The result, y_bpf, is the LQ input and target, and the input to the frozen quantizers in stage 2.
There is deliberately no detrending here; the λ-detrend belongs to the HR chain only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lqrppg.errors import DataError
from lqrppg.signal.filters import bandpass

__all__ = [
    "CHUNK_EPS",
    "bandpass_chunks",
    "chunk_labels",
    "labels_from_store",
    "standardize_video_label",
    "zscore_chunks",
]

log = logging.getLogger(__name__)

#: Added to the per-chunk standard deviation, as in the reference trainers.
CHUNK_EPS = 1e-6


def standardize_video_label(label: np.ndarray) -> np.ndarray:
    """z-score over the whole video (population std), NaN → 0, as rPPG-Toolbox ``Standardized``.

    The NaN → 0 step is the toolbox's guard for a constant label (0/0); NaN *inputs* should be
    rejected before this (``labels_from_store`` does).
    """
    x = np.asarray(label, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (x - np.mean(x)) / np.std(x)
    z[np.isnan(z)] = 0.0
    return z


def chunk_labels(label: np.ndarray, chunk_length: int) -> np.ndarray:
    """(N, chunk_length) non-overlapping chunks of a 1-D label; the remainder is dropped."""
    x = np.asarray(label)
    if x.ndim != 1:
        raise ValueError(f"label must be 1-D, got shape {x.shape}")
    if chunk_length < 1:
        raise ValueError(f"chunk_length must be >= 1, got {chunk_length}")
    n = x.size // chunk_length
    return x[: n * chunk_length].reshape(n, chunk_length)


def zscore_chunks(chunks: np.ndarray, eps: float = CHUNK_EPS) -> np.ndarray:
    """z-score each row over time: (x − mean) / (std + eps), population std."""
    x = np.asarray(chunks, dtype=np.float64)
    return (x - x.mean(axis=-1, keepdims=True)) / (x.std(axis=-1, keepdims=True) + eps)


def bandpass_chunks(
    chunks: np.ndarray, fs: float, band_hz: tuple[float, float] = (0.75, 2.5), order: int = 1
) -> np.ndarray:
    """y_bpf: filtfilt band-pass of each chunk on its own, then a per-chunk z-score (float32, (N, T)).

    Filtering per chunk (not per video) is what the authors' trainer does on every batch, so the
    edge transients of filtfilt are part of the targets the quantizers learn.
    """
    x = np.asarray(chunks, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"chunks must be (N, T), got shape {x.shape}")
    filtered = np.stack([bandpass(row, fs, band_hz, order) for row in x]) if len(x) else x.copy()
    return zscore_chunks(filtered).astype(np.float32)


def labels_from_store(
    store: Any, sessions: Sequence[str] | None, band_hz: tuple[float, float] = (0.75, 2.5), order: int = 1
) -> tuple[pd.DataFrame, np.ndarray]:
    """y_bpf of every indexed chunk of ``sessions`` (all sessions of the store when None).

    ``store`` is a :class:`lqrppg.preprocess.store.ChunkStore` (anything with ``.index`` and
    ``.label(session)``). Chunks are cut from the per-video standardized label by the store's own
    index rows [start, stop), so the pseudo labels line up with the frames the video models see.
    Returns ``ids`` (columns session, chunk; one row per chunk, in index order) and y_bpf (N, T).
    """
    index = store.index
    if sessions is None:
        sessions = list(dict.fromkeys(index["session"]))
    else:
        sessions = list(sessions)
        unknown = sorted(set(sessions) - set(index["session"]))
        if unknown:
            raise DataError(f"sessions not in the chunk store index: {', '.join(map(str, unknown))}")
    lengths = (index["stop"] - index["start"]).unique()
    if len(lengths) > 1:
        raise DataError(f"chunk store index has chunks of several lengths {sorted(map(int, lengths))}; LQ needs one")

    ids, blocks = [], []
    for session in sessions:
        rows = index[index["session"] == session].sort_values("chunk")
        if rows.empty:
            log.warning("session %s has no chunk in the store index; skipped", session)
            continue
        label = np.asarray(store.label(session), dtype=np.float64)
        if not np.all(np.isfinite(label)):
            raise DataError(f"session {session}: label has {int(np.sum(~np.isfinite(label)))} NaN/inf samples")
        if int(rows["stop"].max()) > label.size:
            raise DataError(
                f"session {session}: index chunk ends at frame {int(rows['stop'].max())} "
                f"but the label has {label.size} samples"
            )
        z = standardize_video_label(label)
        chunks = np.stack([z[int(r.start) : int(r.stop)] for r in rows.itertuples()])
        fs = float(rows["fps"].iloc[0]) if "fps" in rows else float(store.fps)
        blocks.append(bandpass_chunks(chunks, fs, band_hz, order))
        ids.append(pd.DataFrame({"session": session, "chunk": rows["chunk"].to_numpy(np.int64)}))
    if not blocks:
        raise DataError(f"no chunk found for sessions {list(sessions)}")
    return pd.concat(ids, ignore_index=True), np.concatenate(blocks).astype(np.float32)
