"""Paper-style tables, built only from metrics files that rules wrote.

Every cell traces back to a metrics CSV: the table CSV carries the source file of each
row, and nothing here computes a metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lqrppg.errors import DataError
from lqrppg.io import atomic_path

METRIC_ORDER = ["MAE", "RMSE", "MAPE", "Pearson", "SNR", "MACC"]
REFERENCE_TITLE = {
    "label": "scored against the contact-PPG label",
    "true": "scored against the true pulse (synthetic data only)",
}


def read_metrics(paths: Sequence[Path]) -> pd.DataFrame:
    if not paths:
        raise DataError("no metrics files given to build a table from")
    frames = []
    for path in paths:
        try:
            frame = pd.read_csv(path)
        except (OSError, pd.errors.ParserError) as err:
            raise DataError(f"cannot read metrics file {path}: {err}") from None
        missing = {"reference", "metric", "value", "se", "n"} - set(frame.columns)
        if missing:
            raise DataError(f"metrics file {path} lacks columns {sorted(missing)}")
        frames.append(frame.assign(source=str(path)))
    return pd.concat(frames, ignore_index=True)


def wide_table(metrics: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per (keys..., reference), columns ``<metric>`` and ``<metric>_se``."""
    index = [*keys, "reference"]
    values = metrics.pivot_table(index=index, columns="metric", values="value", aggfunc="first")
    errors = metrics.pivot_table(index=index, columns="metric", values="se", aggfunc="first")
    meta = metrics.groupby(index)[["n", "source"]].first()
    order = [m for m in METRIC_ORDER if m in values.columns]
    wide = pd.concat(
        [values[order], errors[order].add_suffix("_se"), meta], axis=1
    ).reset_index()
    columns = [*index, *[c for m in order for c in (m, f"{m}_se")], "n", "source"]
    return wide[columns]


def _cell(value: float, se: float, digits: int) -> str:
    if not np.isfinite(value):
        return "–"
    text = f"{value:.{digits}f}"
    return f"{text} ± {se:.{digits}f}" if np.isfinite(se) else text


def markdown(wide: pd.DataFrame, keys: Sequence[str], title: str) -> str:
    """Markdown: one table per reference, metric cells as ``value ± SE``."""
    metrics = [m for m in METRIC_ORDER if m in wide.columns]
    lines = [f"# {title}", ""]
    for reference, block in wide.groupby("reference", sort=False):
        lines += [f"## {REFERENCE_TITLE.get(reference, reference)}", ""]
        header = [*keys, *[f"{m}{' (bpm)' if m in ('MAE', 'RMSE') else ''}" for m in metrics], "n"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for row in block.itertuples(index=False):
            r = row._asdict()
            cells = [str(r[k]) for k in keys]
            cells += [_cell(r[m], r[f"{m}_se"], 3 if m in ("Pearson", "MACC") else 2) for m in metrics]
            cells.append(str(int(r["n"])))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("Values are mean ± standard error over videos; SE formulas are named in the CSV's sources.")
    return "\n".join(lines) + "\n"


TABLES = {
    # kind: (identity columns of a row, title)
    "unsupervised": (["dataset", "method"], "Unsupervised methods: whole-video heart rate"),
    "intra": (["dataset", "protocol", "model"],
              "Intra-dataset: whole-video heart rate (k-fold: subject-wise folds pooled; published: the fixed split)"),
    "cross": (["train", "test", "model"], "Cross-dataset: whole-video heart rate"),
}


def _as_model_rows(unsupervised: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Unsupervised methods need no training: the same numbers stand in intra and cross rows."""
    rows = unsupervised.rename(columns={"method": "model"})
    if kind == "intra":
        return rows.assign(protocol="all videos")
    return rows.assign(train="(none)", test=rows["dataset"])


def write_table(kind: str, metric_files: Sequence[Path], out_prefix: Path,
                unsupervised_files: Sequence[Path] = ()) -> pd.DataFrame:
    keys, title = TABLES[kind]
    metrics = read_metrics(metric_files)
    if kind == "intra":
        # k-fold metrics files say "intra"; the table names the protocol a reader would look for.
        metrics = metrics.assign(dataset=metrics["test"], protocol=metrics["protocol"].replace({"intra": "k-fold"}))
    if unsupervised_files:
        metrics = pd.concat([metrics, _as_model_rows(read_metrics(unsupervised_files), kind)], ignore_index=True)
    missing = [k for k in keys if k not in metrics.columns]
    if missing:
        raise DataError(f"metrics files lack identity columns {missing}")
    wide = wide_table(metrics, keys).sort_values([*keys, "reference"], ignore_index=True)
    with atomic_path(out_prefix.with_suffix(".csv")) as tmp:
        wide.to_csv(tmp, index=False)
    with atomic_path(out_prefix.with_suffix(".md")) as tmp:
        tmp.write_text(markdown(wide, keys, title))
    return wide
