"""Scoring a method's signals on a chunk store: per-video HR, metrics, provenance.

Shared by every method, supervised or not, so one evaluation chain produces every
number in every table. A synthetic dataset also has the true pulse, and each method is
scored twice: against the (noisy) contact-PPG label, as on real data, and against the
truth, which is how the benchmark shows whether a method learned the label's defects.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lqrppg.errors import DataError
from lqrppg.evaluation import aggregate, per_video_table, settings_record
from lqrppg.io import atomic_path
from lqrppg.preprocess.store import ChunkStore
from lqrppg.signal.chain import ChainSettings

log = logging.getLogger(__name__)


def load_truth(truth_dir: Path, session: str, n_frames: int) -> np.ndarray:
    """The clean pulse of the first ``n_frames`` frames of a synthetic session.

    Predictions cover whole chunks only (the remainder of a video is dropped), so the
    truth, one value per video frame, is cut to the frames that were scored.
    """
    path = Path(truth_dir) / f"{session}.parquet"
    if not path.is_file():
        raise DataError(f"true-pulse file missing for session {session}: {path}")
    bvp = pd.read_parquet(path, columns=["bvp_true"])["bvp_true"].to_numpy(np.float64)
    if len(bvp) < n_frames:
        raise DataError(f"{path}: {len(bvp)} true-pulse samples for {n_frames} scored frames")
    bvp = bvp[:n_frames]
    if not np.all(np.isfinite(bvp)):
        raise DataError(f"{path}: true pulse contains NaN or inf")
    return bvp


def score_store(
    store: ChunkStore,
    predict: Callable[[str], np.ndarray],
    settings: ChainSettings,
    truth_dir: Path | None,
) -> pd.DataFrame:
    """Per-video (or per-window) HR of ``predict(session)`` against label and truth."""
    signals: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    for row in store.sessions.itertuples():
        label = store.label(row.session).astype(np.float64)
        references = {"label": label}
        if truth_dir is not None:
            references["true"] = load_truth(truth_dir, row.session, len(label))
        signals[row.session] = (predict(row.session), references)
    return per_video_table(signals, store.fps, settings)


def metrics_long(per_video: pd.DataFrame, settings: ChainSettings, identity: Mapping[str, str]) -> pd.DataFrame:
    """Aggregate metrics for every reference present, with identity and eval settings as columns."""
    references = [c.removeprefix("hr_") for c in per_video.columns if c.startswith("hr_") and c != "hr_pred"]
    frames = [aggregate(per_video, ref, settings) for ref in references]
    table = pd.concat(frames, ignore_index=True)
    for key, value in identity.items():
        table.insert(0, key, value)
    return table


def write_results(
    per_video: pd.DataFrame,
    metrics: pd.DataFrame,
    out_csv: Path,
    out_per_video: Path,
    settings: ChainSettings,
    fps: float,
    provenance: Mapping[str, str],
) -> dict:
    """Write metrics CSV + per-video Parquet (both atomically) with the full eval config.

    The evaluation configuration goes into the Parquet file metadata and a JSON sidecar
    of the CSV, so every number can be traced to how it was computed.
    """
    record = {**settings_record(settings, fps), **provenance}
    table = pa.Table.from_pandas(per_video, preserve_index=False)
    meta = {**(table.schema.metadata or {}), b"lqrppg.evaluation": json.dumps(record, default=str).encode()}
    with atomic_path(out_per_video) as tmp:
        pq.write_table(table.replace_schema_metadata(meta), tmp)
    with atomic_path(out_csv) as tmp:
        metrics.to_csv(tmp, index=False)
    with atomic_path(out_csv.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str))
    return record


def mlflow_metrics(metrics: pd.DataFrame) -> dict[str, float]:
    """Flatten the long metrics table into MLflow metric names like ``mae_true``."""
    out = {}
    for row in metrics.itertuples():
        if np.isfinite(row.value):
            out[f"{row.metric.lower()}_{row.reference}"] = float(row.value)
        if np.isfinite(row.se):
            out[f"{row.metric.lower()}_se_{row.reference}"] = float(row.se)
    return out
