"""Chunks of a chunk store as training/inference samples, normalised at load time.

The store holds uint8 crops (DESIGN §3); this module turns one indexed chunk into what a
model eats. Normalisation follows rPPG-Toolbox exactly but never materialises a float
copy of a video:

    standardized     (x − mean) / std, one scalar mean/std over the WHOLE video (all pixels
                     and channels); computed once per session by streaming the memmap
    diff_normalized  d[t] = (x[t+1] − x[t]) / (x[t+1] + x[t] + 1e-7) / std(d over the video),
                     a zero frame appended at the end of the video, NaN → 0; d is computed per
                     chunk from frames [start, stop] (one frame past the chunk), the std once
    diff_and_standardized  both, stacked as 6 channels (DiffNormalized first): the two-branch
                     input of DeepPhys and TS-CAN (motion branch, appearance branch)

Labels: the per-video z-score (toolbox ``Standardized``), then for diff-normalised models the
toolbox ``DiffNormalized`` of it (scale-invariant, so identical to diff-normalising the raw label);
``bandpassed`` is y_bpf of method.md §1 (per chunk: zero-phase band-pass, then z-score), exactly
what the LQ quantizers take, for models trained on the continuous label in its place.

Quantized targets (LQ-rPPG) come from the pseudo-label Parquet of :mod:`lqrppg.lq`: ``q`` (5, T)
code values and ``k`` (5, T) code indices per chunk, checked one-to-one against the store.

Augmentation (method.md §6, RhythmFormer-style), seeded per (seed, epoch, item): with p = 0.5 a
clip whose label HR is > 90 bpm is stretched ×2 (HR halves), < 75 bpm compressed ×2 (HR
doubles); independently a horizontal flip with p = 0.5.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from lqrppg.errors import ConfigError, DataError
from lqrppg.lq.labels import bandpass_chunks
from lqrppg.lq.pseudo_labels import check_against_store, read_pseudo_labels
from lqrppg.models import INPUT_NORMS, LABEL_NORMS
from lqrppg.preprocess.store import ChunkStore
from lqrppg.signal.chain import ChainSettings, estimate_hr, process_signal

__all__ = [
    "DIFF_EPS",
    "N_LEVELS",
    "ChunkDataset",
    "chunk_length_of",
    "compress_time",
    "diff_normalize",
    "diff_normalize_label",
    "standardize_label",
    "stretch_time",
    "temporal_augment",
]

log = logging.getLogger(__name__)

DIFF_EPS = 1e-7  # the toolbox's denominator guard in DiffNormalized
N_LEVELS = 5  # LQ bit depths 1..5
STATS_BLOCK = 64  # frames per block when streaming a video's statistics (bounds memory only)
STRETCH_ABOVE_BPM, COMPRESS_BELOW_BPM = 90.0, 75.0  # method.md §6
#: HR of a clip for the augmentation decision: detrend, band-pass, Welch peak (method.md §6).
AUGMENT_CHAIN = ChainSettings(hr_method="welch")


# ----------------------------------------------------------------------------- normalisation


def diff_normalize(x: np.ndarray, std: float, pad_end: bool) -> np.ndarray:
    """Toolbox DiffNormalized of frames ``x`` (n+1 frames → n differences), float32.

    ``pad_end`` appends the zero frame the toolbox adds at the end of a video.
    """
    x = x.astype(np.float32)
    d = (x[1:] - x[:-1]) / (x[1:] + x[:-1] + DIFF_EPS)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = d / np.float32(std)
    if pad_end:
        d = np.concatenate([d, np.zeros_like(x[:1])])
    d[np.isnan(d)] = 0.0
    return d


def standardize_label(label: np.ndarray) -> np.ndarray:
    """Per-video z-score (population std), NaN → 0: the toolbox ``Standardized`` label."""
    x = np.asarray(label, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (x - x.mean()) / x.std()
    z[np.isnan(z)] = 0.0
    return z.astype(np.float32)


def diff_normalize_label(label: np.ndarray) -> np.ndarray:
    """Toolbox ``DiffNormalized`` label: diff / std(diff), a zero appended, NaN → 0."""
    d = np.diff(np.asarray(label, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        d = d / d.std()
    d = np.append(d, 0.0)
    d[np.isnan(d)] = 0.0
    return d.astype(np.float32)


def _video_stats(frames: np.ndarray) -> tuple[float, float]:
    """Mean and population std over every value of a uint8 video, exact (integer sums)."""
    total, total_sq, count = 0, 0, 0
    for start in range(0, len(frames), STATS_BLOCK):
        block = np.asarray(frames[start : start + STATS_BLOCK], dtype=np.int64)
        total += int(block.sum())
        total_sq += int(np.square(block).sum())
        count += block.size
    if count == 0:
        return 0.0, 0.0
    mean = total / count
    return mean, float(np.sqrt(max(total_sq / count - mean * mean, 0.0)))


def _diff_std(frames: np.ndarray) -> float:
    """Population std of the (unpadded) frame differences d over a whole video, streamed."""
    total, total_sq, count = 0.0, 0.0, 0
    for start in range(0, max(len(frames) - 1, 0), STATS_BLOCK):
        d = diff_normalize(frames[start : start + STATS_BLOCK + 1], 1.0, pad_end=False).astype(np.float64)
        total += float(d.sum())
        total_sq += float(np.square(d).sum())
        count += d.size
    if count == 0:
        return 0.0
    mean = total / count
    return float(np.sqrt(max(total_sq / count - mean * mean, 0.0)))


# ----------------------------------------------------------------------------- augmentation


def stretch_time(x: np.ndarray, offset: int, axis: int = 0) -> np.ndarray:
    """×2 slow-down (HR halves): output t is source (offset + t) / 2, odd t linearly interpolated.

    As RhythmFormer: the neighbour index wraps around (``% T``) at the very end.
    """
    x = np.moveaxis(x, axis, 0)
    t = len(x)
    pos = np.arange(offset, offset + t)
    lo, hi = pos // 2, (pos // 2 + 1) % t
    out = np.where((pos % 2 == 0).reshape(-1, *[1] * (x.ndim - 1)), x[lo], (x[lo] + x[hi]) / 2)
    return np.moveaxis(out.astype(x.dtype, copy=False), 0, axis)


def compress_time(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """×2 speed-up (HR doubles): every 2nd sample for the first T/2 outputs, then tiled to T."""
    x = np.moveaxis(x, axis, 0)
    t = len(x)
    half = x[0 : 2 * ((t + 1) // 2) : 2]
    out = np.concatenate([half, half])[:t]
    return np.moveaxis(out, 0, axis)


def temporal_augment(
    frames: np.ndarray,
    label: np.ndarray,
    hr_bpm: float,
    rng: np.random.Generator,
    discrete: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], str]:
    """Method.md §6 temporal augmentation of one clip; returns (frames, label, discrete, action).

    ``frames`` is (C, T, H, W), ``label`` (T,), ``discrete`` holds (L, T) targets that must stay
    code values (pseudo labels q, indices k): where the stretch interpolates, they take the
    earlier sample (floor) instead, so a staircase stays a staircase. ``action`` is
    "stretch", "compress" or "none".
    """
    discrete = dict(discrete or {})
    t = label.shape[0]
    offset = int(rng.integers(0, max(t // 2, 1)))  # drawn always, so the stream does not depend on HR
    if rng.random() >= 0.5 or not np.isfinite(hr_bpm):
        return frames, label, discrete, "none"
    if hr_bpm > STRETCH_ABOVE_BPM:
        pos = np.arange(offset, offset + t) // 2
        discrete = {k: v[:, pos] for k, v in discrete.items()}
        return stretch_time(frames, offset, axis=1), stretch_time(label, offset), discrete, "stretch"
    if hr_bpm < COMPRESS_BELOW_BPM:
        discrete = {k: compress_time(v, axis=1) for k, v in discrete.items()}
        return compress_time(frames, axis=1), compress_time(label), discrete, "compress"
    return frames, label, discrete, "none"


# ----------------------------------------------------------------------------- dataset


def chunk_length_of(store: ChunkStore) -> int:
    """The store's single chunk length, checked against its settings; DataError otherwise."""
    index = store.index
    lengths = sorted(set((index["stop"] - index["start"]).astype(int)))
    if len(lengths) != 1:
        raise DataError(f"{store.path}: expected one chunk length in the index, found {lengths or 'no chunks'}")
    declared = store.settings.get("chunk_length")
    if declared is not None and int(declared) != lengths[0]:
        raise DataError(f"{store.path}: index chunks have {lengths[0]} frames, settings say {declared}")
    return lengths[0]


class ChunkDataset(Dataset):
    """One item per indexed chunk of ``sessions``, in (session order, chunk order).

    Item: ``frames`` float32 (C, T, H, W) (C = 6 for diff_and_standardized, else 3), ``label`` float32 (T,), ``session`` str, ``chunk``
    int, and for ``targets="quantized"`` ``q`` float32 (5, T) and ``k`` int64 (5, T).
    """

    def __init__(
        self,
        store: ChunkStore | str | os.PathLike,
        sessions: Sequence[str],
        input_norm: str,
        targets: str = "continuous",
        pseudo_labels: str | os.PathLike | None = None,
        augment: bool = False,
        seed: int = 0,
        *,
        label_norm: str | None = None,
        min_label_quality: float = 0.0,
    ) -> None:
        self.store = store if isinstance(store, ChunkStore) else ChunkStore(store)
        if input_norm not in INPUT_NORMS:
            raise ConfigError(f"input_norm must be one of {INPUT_NORMS}, got {input_norm!r}")
        # Default: the label normalised like the frames (the two-branch input's motion branch).
        label_norm = label_norm or (input_norm if input_norm in LABEL_NORMS else "diff_normalized")
        if label_norm not in LABEL_NORMS:
            raise ConfigError(f"label_norm must be one of {LABEL_NORMS}, got {label_norm!r}")
        if targets not in ("continuous", "quantized"):
            raise ConfigError(f"targets must be 'continuous' or 'quantized', got {targets!r}")
        self.input_norm, self.label_norm, self.targets = input_norm, label_norm, targets
        self.augment, self.seed, self.epoch = augment, int(seed), 0
        self.fps = self.store.fps
        self.chunk_length = chunk_length_of(self.store)

        sessions = list(dict.fromkeys(sessions))
        index = self.store.index
        unknown = sorted(set(sessions) - set(index["session"]))
        if unknown:
            raise DataError(f"{self.store.path}: sessions without chunks in the store: {', '.join(unknown)}")
        index = index[index["session"].isin(sessions)]
        index = index.assign(_order=index["session"].map({s: i for i, s in enumerate(sessions)}))
        self.index = index.sort_values(["_order", "chunk"]).drop(columns="_order").reset_index(drop=True)
        self.sessions = sessions
        self._items = [(str(r.session), int(r.chunk), int(r.start), int(r.stop)) for r in self.index.itertuples()]

        # Per-video quantities, computed once: the normalisation constant of the frames and
        # the normalised label (labels are small; frames stay memory-mapped).
        self._frame_stats: dict[str, tuple[float, float]] = {}  # (mean, std) of the frames
        self._diff_std: dict[str, float] = {}  # std of the frame differences
        self._labels: dict[str, np.ndarray] = {}
        self._hr: dict[int, float] = {}
        for session in sessions:
            frames = self.store.frames(session)
            if input_norm != "diff_normalized":
                self._frame_stats[session] = _video_stats(frames)
            if input_norm != "standardized":
                self._diff_std[session] = _diff_std(frames)
            label = standardize_label(self.store.label(session))
            self._labels[session] = diff_normalize_label(label) if label_norm == "diff_normalized" else label

        self._q = self._k = None
        self._rows: dict[tuple[str, int], int] = {}
        if targets == "quantized":
            self._load_pseudo_labels(pseudo_labels)

        # Chunks whose label the dataset grades as bad (iBVP's SQ columns) are left out whole, after
        # the per-video statistics: time inside every kept chunk stays continuous.
        keep = self.index["label_quality"].to_numpy() >= min_label_quality
        self.masked_chunks = [(str(r.session), int(r.chunk)) for r in self.index[~keep].itertuples()]
        if self.masked_chunks:
            log.info("%s: %d of %d chunks left out (label quality < %g)", self.store.path,
                     len(self.masked_chunks), len(keep), min_label_quality)
            self.index = self.index[keep].reset_index(drop=True)
            self._items = [item for item, k in zip(self._items, keep, strict=True) if k]

    def _load_pseudo_labels(self, path: str | os.PathLike | None) -> None:
        if path is None:
            raise ConfigError("quantized targets need a pseudo-label file (lqrppg quantize apply)")
        ids, _, q, k, _ = read_pseudo_labels(path)
        if q.shape[0] != N_LEVELS:
            raise DataError(f"{path}: {q.shape[0]} quantization levels, the C2F model needs {N_LEVELS} (1..5 bits)")
        if q.shape[2] != self.chunk_length:
            raise DataError(f"{path}: chunks of {q.shape[2]} frames, the store's chunks have {self.chunk_length}")
        try:
            check_against_store(ids, q.shape[2], self.store.index, self.sessions)
        except DataError as err:
            raise DataError(f"{path} vs {self.store.path}: {err}") from None
        bad = [n + 1 for n in range(N_LEVELS) if k[n].size and (k[n].min() < 0 or k[n].max() >= 2 ** (n + 1))]
        if bad:
            raise DataError(f"{path}: code indices out of range for the {bad}-bit codebooks")
        self._rows = {(s, int(c)): i for i, (s, c) in enumerate(zip(ids["session"], ids["chunk"], strict=True))}
        self._q, self._k = q, k.astype(np.int64)
        self.pseudo_label_path = Path(path)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (each epoch sees different, reproducible draws)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.index)

    def pseudo_labels(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(q, k) arrays (5, N, T) of the pseudo-label file, or None for continuous targets."""
        return None if self._q is None else (self._q, self._k)

    def _frames(self, session: str, start: int, stop: int) -> np.ndarray:
        """(T, H, W, C) float32 chunk in the dataset's input normalisation (C = 3, or 6)."""
        video = self.store.frames(session)
        parts = []
        if self.input_norm != "standardized":
            # One frame past the chunk gives its last difference; the video's last frame has none
            # (the toolbox appends a zero frame there).
            parts.append(diff_normalize(video[start : stop + 1], self._diff_std[session], pad_end=stop >= len(video)))
        if self.input_norm != "diff_normalized":
            mean, std = self._frame_stats[session]
            with np.errstate(divide="ignore", invalid="ignore"):
                x = (np.asarray(video[start:stop], dtype=np.float32) - np.float32(mean)) / np.float32(std)
            x[np.isnan(x)] = 0.0
            parts.append(x)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)

    def _clip_hr(self, i: int, label: np.ndarray) -> float:
        if i not in self._hr:
            chain = AUGMENT_CHAIN.model_copy(update={"diff_signal": self.label_norm == "diff_normalized"})
            try:
                self._hr[i] = estimate_hr(process_signal(label, self.fps, chain), self.fps, chain)
            except ValueError:
                self._hr[i] = float("nan")  # too short or degenerate: never augmented
        return self._hr[i]

    def __getitem__(self, i: int) -> dict[str, Any]:
        session, chunk, start, stop = self._items[i]
        frames = self._frames(session, start, stop).transpose(3, 0, 1, 2)  # (T,H,W,C) -> (C,T,H,W)
        label = self._labels[session][start:stop]
        if self.label_norm == "bandpassed":
            label = bandpass_chunks(label[None], self.fps)[0]
        discrete: dict[str, np.ndarray] = {}
        if self._q is not None:
            row_id = self._rows.get((session, chunk))
            if row_id is None:
                raise DataError(f"{self.pseudo_label_path}: no pseudo labels for session {session!r} chunk {chunk}")
            discrete = {"q": self._q[:, row_id], "k": self._k[:, row_id]}
        if self.augment:
            # One generator per (seed, epoch, item): draws do not depend on order or batch size.
            rng = np.random.default_rng([self.seed, self.epoch, i])
            frames, label, discrete, _ = temporal_augment(frames, label, self._clip_hr(i, label), rng, discrete)
            if rng.random() < 0.5:
                frames = frames[..., ::-1]  # horizontal flip (W is the last axis)
        item = {
            "frames": torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)),
            "label": torch.from_numpy(np.ascontiguousarray(label, dtype=np.float32)),
            "session": session,
            "chunk": chunk,
        }
        if discrete:
            item["q"] = torch.from_numpy(np.ascontiguousarray(discrete["q"], dtype=np.float32))
            item["k"] = torch.from_numpy(np.ascontiguousarray(discrete["k"], dtype=np.int64))
        return item
