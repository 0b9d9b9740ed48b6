"""Pseudo labels: frozen quantizers applied to y_bpf, and their long Parquet file (DESIGN §3).

The file has one row per frame of a chunk — ``session, chunk, frame, y_bpf, q1..qL, k1..kL`` —
so pandas and DuckDB read it as is, and file metadata under ``lqrppg.lq`` (JSON) naming the
quantizer run, its codebooks and settings. Stage 2 reads it back into (L, N, T) arrays.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from lqrppg.errors import DataError
from lqrppg.io import atomic_path
from lqrppg.lq.quantizer import LabelQuantizer

__all__ = ["METADATA_KEY", "apply_quantizers", "check_against_store", "read_pseudo_labels", "write_pseudo_labels"]

log = logging.getLogger(__name__)

#: Parquet file-metadata key of the JSON description of the quantizer run.
METADATA_KEY = b"lqrppg.lq"
#: Chunks per forward pass; bounds memory only.
APPLY_BATCH = 256


@torch.no_grad()
def apply_quantizers(
    quantizers: Sequence[LabelQuantizer], y: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo labels q (L, N, T) float32 and code indices k (L, N, T) int16 of y_bpf chunks (N, T).

    Every quantizer is switched to eval mode first: in training mode a forward pass would move
    its EMA codebook, and the indices would stop referring to the stored codebook.
    """
    if not quantizers:
        raise ValueError("apply_quantizers needs at least one quantizer")
    y_t = torch.as_tensor(np.asarray(y, dtype=np.float32))
    if y_t.ndim != 2:
        raise ValueError(f"y must be (N, T) chunks, got shape {tuple(y_t.shape)}")
    qs, ks = [], []
    for model in quantizers:
        model.eval()
        device = next(model.parameters()).device
        q_parts, k_parts = [], []
        for start in range(0, len(y_t), APPLY_BATCH):
            _, k, _ = model(y_t[start : start + APPLY_BATCH].to(device))
            # Read q from the codebook rather than the straight-through z + (q − z), which can
            # differ from the code by one rounding: pseudo labels must be exactly code values.
            q_parts.append(model.quantizer.codebook[k].cpu())
            k_parts.append(k.cpu())
        qs.append(torch.cat(q_parts) if q_parts else torch.empty(0, y_t.shape[1]))
        ks.append(torch.cat(k_parts) if k_parts else torch.empty(0, y_t.shape[1], dtype=torch.long))
    q_arr = torch.stack(qs).numpy().astype(np.float32)
    k_arr = torch.stack(ks).numpy().astype(np.int16)  # at most 2^8 codes: int16 is exact
    return q_arr, k_arr


def write_pseudo_labels(
    path: str | os.PathLike,
    ids: pd.DataFrame,
    y_bpf: np.ndarray,
    q: np.ndarray,
    k: np.ndarray,
    metadata: dict[str, Any],
) -> None:
    """Write the long pseudo-label Parquet atomically; ``metadata`` goes to the ``lqrppg.lq`` key."""
    y_bpf = np.asarray(y_bpf, dtype=np.float32)
    q = np.asarray(q, dtype=np.float32)
    k = np.asarray(k)
    if y_bpf.ndim != 2 or len(ids) != y_bpf.shape[0]:
        raise ValueError(f"y_bpf must be (N, T) with N = len(ids) = {len(ids)}, got {y_bpf.shape}")
    n, t = y_bpf.shape
    if q.ndim != 3 or q.shape[1:] != (n, t) or k.shape != q.shape:
        raise ValueError(f"q and k must be (L, {n}, {t}), got {q.shape} and {k.shape}")
    columns: dict[str, pa.Array] = {
        "session": pa.array(np.repeat(ids["session"].astype(str).to_numpy(), t), pa.string()),
        "chunk": pa.array(np.repeat(ids["chunk"].to_numpy(np.int32), t)),
        "frame": pa.array(np.tile(np.arange(t, dtype=np.int32), n)),
        "y_bpf": pa.array(y_bpf.reshape(-1)),
    }
    for level in range(q.shape[0]):
        columns[f"q{level + 1}"] = pa.array(q[level].reshape(-1))
    for level in range(k.shape[0]):
        columns[f"k{level + 1}"] = pa.array(k[level].reshape(-1).astype(np.int16))
    table = pa.table(columns)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY: json.dumps(metadata)})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    log.info("wrote %d chunks × %d frames of %d-level pseudo labels to %s", n, t, q.shape[0], path)


def read_pseudo_labels(
    path: str | os.PathLike,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """(ids, y_bpf (N, T), q (L, N, T), k (L, N, T), metadata) of a pseudo-label file.

    Chunks come back in file order. Every chunk must have the same frames 0…T−1; anything else
    (a truncated or hand-edited file) is a DataError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: pseudo-label file not found")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise DataError(f"{path}: unreadable pseudo-label file ({err})") from err
    raw_meta = (table.schema.metadata or {}).get(METADATA_KEY)
    metadata = json.loads(raw_meta) if raw_meta else {}
    df = table.to_pandas()
    base = ["session", "chunk", "frame", "y_bpf"]
    missing = [c for c in base if c not in df.columns]
    levels = 0
    while f"q{levels + 1}" in df.columns and f"k{levels + 1}" in df.columns:
        levels += 1
    if missing or levels == 0:
        raise DataError(f"{path}: not a pseudo-label file (missing {missing or ['q1', 'k1']})")

    group = df.groupby(["session", "chunk"], sort=False).ngroup().to_numpy()
    sizes = np.bincount(group)
    if sizes.size and (sizes != sizes[0]).any():
        raise DataError(
            f"{path}: chunks have different frame counts ({sorted(set(sizes.tolist()))}); "
            "every chunk must have the same number of frames"
        )
    n = sizes.size
    t = int(sizes[0]) if n else 0
    order = np.lexsort((df["frame"].to_numpy(), group))
    frames = df["frame"].to_numpy()[order].reshape(n, t)
    if n and (frames != np.arange(t)).any():
        raise DataError(f"{path}: chunk frames are not 0…{t - 1} in every chunk")

    first = order.reshape(n, t)[:, 0] if n else np.array([], dtype=int)
    ids = pd.DataFrame({
        "session": df["session"].to_numpy()[first].astype(str),
        "chunk": df["chunk"].to_numpy()[first].astype(np.int64),
    })
    y_bpf = df["y_bpf"].to_numpy(np.float32)[order].reshape(n, t)
    q = np.stack([df[f"q{i + 1}"].to_numpy(np.float32)[order].reshape(n, t) for i in range(levels)])
    k = np.stack([df[f"k{i + 1}"].to_numpy(np.int16)[order].reshape(n, t) for i in range(levels)])
    return ids, y_bpf, q, k, metadata


def check_against_store(
    ids: pd.DataFrame,
    chunk_length: int,
    store_index: pd.DataFrame,
    sessions: Sequence[str] | None = None,
) -> None:
    """Raise DataError unless the pseudo labels cover the store's chunks one to one.

    Compares, for ``sessions`` (all sessions of the store index when None): the session set, the
    chunk numbers of each session and the chunk length. With ``sessions`` given, pseudo labels
    for other sessions are allowed (a file may cover more than one training split).
    """
    index = store_index
    if sessions is not None:
        wanted = set(sessions)
        unknown = sorted(wanted - set(index["session"]))
        if unknown:
            raise DataError(f"sessions not in the chunk store: {', '.join(unknown)}")
        index = index[index["session"].isin(wanted)]
        ids = ids[ids["session"].isin(wanted)]
    store_sessions = set(index["session"].astype(str))
    label_sessions = set(ids["session"].astype(str))
    problems = []
    if missing := sorted(store_sessions - label_sessions):
        problems.append(f"sessions without pseudo labels: {', '.join(missing)}")
    if sessions is None and (extra := sorted(label_sessions - store_sessions)):
        problems.append(f"pseudo labels for sessions not in the store: {', '.join(extra)}")
    store_chunks = index.groupby("session")["chunk"].apply(lambda c: sorted(map(int, c)))
    label_chunks = ids.groupby("session")["chunk"].apply(lambda c: sorted(map(int, c)))
    for session in sorted(store_sessions & label_sessions):
        a, b = store_chunks[session], label_chunks[session]
        if len(a) != len(b):
            problems.append(f"session {session}: {len(b)} pseudo-label chunks, store has {len(a)}")
        elif a != b:
            problems.append(f"session {session}: chunk numbers differ from the store's")
    lengths = sorted(set((index["stop"] - index["start"]).astype(int)))
    if lengths and lengths != [int(chunk_length)]:
        problems.append(f"chunk length {chunk_length} in the pseudo labels, store chunks have {lengths}")
    if problems:
        raise DataError("pseudo labels do not match the chunk store: " + "; ".join(problems))
