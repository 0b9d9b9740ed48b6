"""Run a trained model over every chunk of a store and write the predictions (DESIGN §3).

The predictions file is long Parquet, one row per frame: ``session, chunk, frame, pred, label``
(``frame`` is the frame number in the video, ``label`` the store's raw aligned label), plus JSON
file metadata saying where it came from. Inputs are normalised exactly as in training, by the
same :class:`lqrppg.data.ChunkDataset`. Models trained on DiffNormalized frames predict a
derivative; their chunk outputs are concatenated per video in chunk order and cumulatively
summed, so ``pred`` is always in the signal domain (``pred_domain`` in the metadata says which).

:func:`predict_chunks` is also the trainer's validation pass, so validation and testing cannot
drift apart.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from lqrppg.data import ChunkDataset, chunk_length_of
from lqrppg.errors import ConfigError, DataError
from lqrppg.io import atomic_path
from lqrppg.objectives import Objective, prediction
from lqrppg.preprocess.store import ChunkStore

__all__ = [
    "COLUMNS",
    "METADATA_KEY",
    "assemble_predictions",
    "predict_chunks",
    "predict_store",
    "predictions_to_signals",
    "read_predictions",
    "resolve_device",
    "write_predictions",
]

log = logging.getLogger(__name__)

COLUMNS = ["session", "chunk", "frame", "pred", "label"]
METADATA_KEY = b"lqrppg.predictions"


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" → CUDA when available, else CPU; "cuda" without a GPU is a ConfigError."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available here (use 'auto' or 'cpu')")
    return torch.device(device)


@torch.no_grad()
def predict_chunks(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    objective: Objective | None = None,
    fs: float | None = None,
) -> tuple[dict[tuple[str, int], np.ndarray], float | None]:
    """Model output (T,) per (session, chunk), in eval mode; and the mean ``objective`` if given.

    The loss is averaged over batches weighted by their size (NaN when a batch lacks targets).
    """
    model.eval()
    preds: dict[tuple[str, int], np.ndarray] = {}
    loss_sum, count = 0.0, 0
    for batch in tqdm(loader, desc="predict", leave=False, disable=None):
        output = model(batch["frames"].to(device))
        if objective is not None:
            targets = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor) and k != "frames"}
            loss, _ = objective(output, targets, fs)
            loss_sum += float(loss) * len(batch["chunk"])
            count += len(batch["chunk"])
        for session, chunk, p in zip(batch["session"], batch["chunk"].tolist(), prediction(output).cpu().numpy()):
            preds[(session, int(chunk))] = p.astype(np.float64)
    return preds, (loss_sum / count if count else None)


def assemble_predictions(
    store: ChunkStore, preds: Mapping[tuple[str, int], np.ndarray], diff_domain: bool
) -> pd.DataFrame:
    """Long table (COLUMNS) of per-chunk predictions; cumsum per video when ``diff_domain``."""
    index = store.index[["session", "chunk", "start", "stop"]]
    bounds = {(s, int(c)): (int(a), int(b)) for s, c, a, b in index.itertuples(index=False)}
    by_session: dict[str, list[int]] = {}
    for session, chunk in preds:
        by_session.setdefault(session, []).append(chunk)
    frames: list[pd.DataFrame] = []
    for session, chunks in by_session.items():
        chunks = sorted(chunks)
        spans = [bounds[(session, c)] for c in chunks]
        pred = np.concatenate([preds[(session, c)] for c in chunks])
        if diff_domain:
            pred = np.cumsum(pred)  # per-frame derivative back to the signal, over the whole video
        frame = np.concatenate([np.arange(a, b) for a, b in spans])
        frames.append(pd.DataFrame({
            "session": session,
            "chunk": np.repeat(chunks, [b - a for a, b in spans]).astype(np.int64),
            "frame": frame.astype(np.int64),
            "pred": pred.astype(np.float64),
            "label": store.label(session)[frame].astype(np.float64),
        }))
    if not frames:
        dtypes = ["str", "int64", "int64", "float64", "float64"]
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(COLUMNS, dtypes, strict=True)})
    return pd.concat(frames, ignore_index=True)


def _check_model_fits_store(model_config: Mapping[str, int], store: ChunkStore, sessions: Sequence[str]) -> None:
    t = chunk_length_of(store)
    h, w = store.frames(sessions[0]).shape[1:3] if sessions else (store.settings.get("size"),) * 2
    got = {"frames": t, "height": int(h), "width": int(w)}
    want = {k: int(model_config[k]) for k in got}
    if got != want:
        raise ConfigError(f"model was trained on (frames, height, width) = {tuple(want.values())}, "
                          f"store {store.path} has {tuple(got.values())}")


def predict_store(
    model: nn.Module,
    checkpoint: Mapping[str, Any],
    store: ChunkStore | str | os.PathLike,
    sessions: Sequence[str] | None,
    batch_size: int,
    device: str | torch.device,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Predictions for every chunk of ``sessions`` (all sessions with chunks when None).

    Returns the long table (COLUMNS) and a provenance dict for the file metadata.
    """
    store = store if isinstance(store, ChunkStore) else ChunkStore(store)
    if sessions is None:
        sessions = list(dict.fromkeys(store.index["session"]))
    if not sessions:
        raise DataError(f"{store.path}: no session with a chunk to predict")
    _check_model_fits_store(checkpoint["model_config"], store, sessions)
    device = resolve_device(device)
    dataset = ChunkDataset(store, sessions, model.input_norm, targets="continuous", label_norm=model.label_norm)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    preds, _ = predict_chunks(model.to(device), loader, device)
    # A model trained on the differenced label predicts differences: integrate them back.
    diff_domain = model.label_norm == "diff_normalized"
    df = assemble_predictions(store, preds, diff_domain)
    provenance = {
        "model_name": checkpoint.get("model_name"),
        "selected_epoch": checkpoint.get("selected_epoch"),
        "criterion": checkpoint.get("criterion"),
        "criterion_value": checkpoint.get("criterion_value"),
        "train_prep_id": checkpoint.get("prep_id"),
        "run_info": checkpoint.get("run_info"),
        "store": str(store.path),
        "dataset": store.dataset,
        "prep_id": store.prep_id,
        "fps": store.fps,
        "input_norm": model.input_norm,
        "pred_domain": "cumsum_of_diff" if diff_domain else "signal",
        "label": "raw store label aligned to the frames",
        "n_sessions": len(sessions),
        "n_chunks": len(preds),
    }
    log.info("predicted %d chunks of %d sessions of %s", len(preds), len(sessions), store.path)
    return df, provenance


def write_predictions(df: pd.DataFrame, path: str | os.PathLike, metadata: Mapping[str, Any]) -> None:
    """Write the predictions table atomically to Parquet, ``metadata`` as JSON file metadata."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"predictions lack columns {missing}")
    table = pa.Table.from_pandas(df[COLUMNS], preserve_index=False)
    meta = {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(dict(metadata), default=str)}
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(meta), tmp)


def read_predictions(path: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(table, metadata) of a predictions file; DataError if it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: predictions file not found")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise DataError(f"{path}: unreadable predictions file ({err})") from err
    df = table.to_pandas()
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: not a predictions file (missing columns {missing})")
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    return df, (json.loads(raw) if raw else {})


def predictions_to_signals(df: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{session: (pred, label)} as float64 arrays, ordered by chunk, then frame."""
    out = {}
    for session, group in df.groupby("session", sort=True):
        group = group.sort_values(["chunk", "frame"], kind="stable")
        out[str(session)] = (group["pred"].to_numpy(np.float64), group["label"].to_numpy(np.float64))
    return out
