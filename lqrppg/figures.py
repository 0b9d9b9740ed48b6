"""Paper-style figures, drawn only from files that rules wrote.

Each figure is written with the data it plots: ``<name>.csv`` (every point, with the file it
came from), ``<name>.png`` (for reading) and ``<name>.pdf`` (vector, for a paper). Nothing here
computes a metric: the points are cells of an ablation table or rows of a per-video results file.

* :func:`ablation_curves`: an ablation group with a numeric ``curve`` axis (config/ablations.yaml:
  the label-noise level of each dataset, the bit depth of each model entry) as metric-vs-axis
  lines with ± SE bars, one panel per reference (true pulse, contact-PPG label).
* :func:`bland_altman`: per-video heart rate against a reference, as the rPPG literature shows
  it: the difference (estimate − reference) against their mean, with the bias and the 95% limits
  of agreement (bias ± 1.96 SD of the differences).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lqrppg.errors import DataError
from lqrppg.io import atomic_path

log = logging.getLogger(__name__)

__all__ = ["ablation_curve_points", "ablation_curves", "bland_altman", "bland_altman_points"]

REFERENCE_TITLE = {"true": "against the true pulse", "label": "against the contact-PPG label"}
FIGURE_FORMATS = ("png", "pdf")
LOA_Z = 1.96  # limits of agreement: bias ± 1.96 SD (Bland & Altman 1986)


def _pyplot():
    """matplotlib with the file-only Agg backend: rules run without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, points: pd.DataFrame, out_prefix: Path) -> list[Path]:
    """Write ``<prefix>.csv`` and each figure format atomically; returns the paths written."""
    paths = [out_prefix.with_suffix(".csv")]
    with atomic_path(paths[0]) as tmp:
        points.to_csv(tmp, index=False)
    for fmt in FIGURE_FORMATS:
        path = out_prefix.with_suffix(f".{fmt}")
        metadata = {"CreationDate": None} if fmt == "pdf" else None  # the same points give the same PDF
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- ablation curves


def ablation_curve_points(table: pd.DataFrame, group, metric: str = "MAE") -> pd.DataFrame:
    """The points of one group's curve from the ablation table CSV (``lqrppg tables ablation``).

    ``group`` is a config :class:`~lqrppg.config.AblationGroup` with a ``curve``: its axis runs
    along ``curve.of`` (``dataset`` or ``model``) at ``curve.values``; the other key column names
    the series. Returns columns series, x, key, reference, metric, value, se, n, source, sorted by
    series (in the group's order), reference and x.
    """
    of, values = group.curve.of, group.curve.values
    for column in ("group", "dataset", "model", "reference", metric, f"{metric}_se", "n", "source"):
        if column not in table.columns:
            raise DataError(f"ablation table lacks column {column!r} (written by `lqrppg tables ablation`?)")
    rows = table[table["group"] == group.name]
    if rows.empty:
        raise DataError(f"ablation table has no rows of group {group.name!r}")
    missing = sorted(set(values) - set(rows[of]))
    if missing:
        raise DataError(f"ablation table: group {group.name!r} has no rows for {of} {missing}")
    rows = rows[rows[of].isin(values)]
    series_of, order = ("model", group.models) if of == "dataset" else ("dataset", group.datasets)
    points = pd.DataFrame({
        "series": rows[series_of].astype(str), "x": rows[of].map(values).astype(float), "key": rows[of].astype(str),
        "reference": rows["reference"].astype(str), "metric": metric, "value": rows[metric].astype(float),
        "se": rows[f"{metric}_se"].astype(float), "n": rows["n"], "source": rows["source"],
    })
    return points.sort_values(["series", "reference", "x"], ignore_index=True,
                              key=lambda c: c.map(order.index) if c.name == "series" else c)


def ablation_curves(table_csv: Path, groups: Sequence, out_dir: Path, metric: str = "MAE") -> list[Path]:
    """``<out_dir>/ablation-<group>.{csv,png,pdf}`` for every group with a ``curve``; the paths written.

    ``groups`` are the config's :class:`~lqrppg.config.AblationGroup` entries (groups without a
    curve are skipped).
    """
    try:
        table = pd.read_csv(table_csv)
    except (OSError, pd.errors.ParserError) as err:
        raise DataError(f"cannot read ablation table {table_csv}: {err}") from None
    plt = _pyplot()
    written: list[Path] = []
    for group in groups:
        if group.curve is None:
            continue
        curve = group.curve
        points = ablation_curve_points(table, group, metric)
        references = [r for r in REFERENCE_TITLE if r in set(points["reference"])]
        fig, axes = plt.subplots(1, len(references), figsize=(4.2 * len(references), 3.4), squeeze=False,
                                 sharey=True)
        for ax, reference in zip(axes[0], references, strict=True):
            for series, line in points[points["reference"] == reference].groupby("series", sort=False):
                ax.errorbar(line["x"], line["value"], yerr=line["se"], marker="o", capsize=3, label=series)
            ax.set_title(f"{metric} {REFERENCE_TITLE[reference]}", fontsize=10)
            ax.set_xlabel(curve.label + "\n(bars: ± SE over videos)")
            ax.set_xticks(sorted(set(points["x"])))
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel(f"{metric} (bpm)" if metric in ("MAE", "RMSE") else metric)
        axes[0][-1].legend(fontsize=8)
        fig.suptitle(f"Ablation '{group.name}': {group.description}" if group.description else group.name,
                     fontsize=10)
        written += _save(fig, points, out_dir / f"ablation-{group.name}")
        plt.close(fig)
        log.info("ablation %s: %d points -> %s", group.name, len(points), out_dir / f"ablation-{group.name}.png")
    return written


# ----------------------------------------------------------------------------- Bland-Altman


def bland_altman_points(per_video: pd.DataFrame, reference: str) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-video (mean, difference) of ``hr_pred`` and ``hr_<reference>``, and the agreement summary.

    The summary: n, bias (mean difference), sd of the differences, and the limits of agreement.
    Videos whose reference heart rate is missing (e.g. no true pulse on a real dataset) are dropped.
    """
    column = f"hr_{reference}"
    for c in ("session", "hr_pred", column):
        if c not in per_video.columns:
            raise DataError(f"per-video results lack column {c!r}")
    rows = per_video.dropna(subset=["hr_pred", column])
    if dropped := len(per_video) - len(rows):
        log.warning("Bland-Altman against %s: %d of %d videos lack a heart rate and are left out",
                    reference, dropped, len(per_video))
    if len(rows) < 2:
        raise DataError(f"Bland-Altman against {reference!r} needs at least 2 videos with both heart rates, "
                        f"got {len(rows)}")
    diff = rows["hr_pred"].to_numpy(float) - rows[column].to_numpy(float)
    points = pd.DataFrame({"session": rows["session"].astype(str).to_numpy(),
                           "mean": (rows["hr_pred"].to_numpy(float) + rows[column].to_numpy(float)) / 2,
                           "difference": diff, "hr_pred": rows["hr_pred"].to_numpy(float),
                           f"hr_{reference}": rows[column].to_numpy(float)})
    bias, sd = float(diff.mean()), float(diff.std(ddof=1))
    summary = {"n": len(diff), "bias": bias, "sd": sd, "loa_low": bias - LOA_Z * sd, "loa_high": bias + LOA_Z * sd}
    return points, summary


def bland_altman(per_video_files: Sequence[Path], out_prefix: Path, title: str = "") -> list[Path]:
    """``<out_prefix>.{csv,png,pdf}``: one panel per reference the results have (true pulse, label)."""
    frames = []
    for path in per_video_files:
        try:
            frames.append(pd.read_parquet(path).assign(source=str(path)))
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read per-video results {path}: {err}") from None
    if not frames:
        raise DataError("no per-video results files given")
    per_video = pd.concat(frames, ignore_index=True)
    if "window" in per_video.columns and per_video["window"].nunique() > 1:
        raise DataError(f"{per_video_files[0]}: windowed results; a Bland-Altman plot here is per whole video")
    references = [r for r in REFERENCE_TITLE if f"hr_{r}" in per_video.columns and per_video[f"hr_{r}"].notna().any()]
    if not references:
        raise DataError(f"{per_video_files[0]}: no reference heart rate (hr_true or hr_label) to compare with")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(references), figsize=(4.4 * len(references), 3.6), squeeze=False)
    tables = []
    for ax, reference in zip(axes[0], references, strict=True):
        points, s = bland_altman_points(per_video, reference)
        ax.scatter(points["mean"], points["difference"], s=18, alpha=0.8)
        for y, style, text in ((s["bias"], "-", f"bias = {s['bias']:+.2f}"),
                               (s["loa_high"], "--", f"bias + 1.96 SD = {s['loa_high']:+.2f}"),
                               (s["loa_low"], "--", f"bias − 1.96 SD = {s['loa_low']:+.2f}")):
            ax.axhline(y, color="0.3", linestyle=style, linewidth=1)
            ax.annotate(text, (1.0, y), xycoords=("axes fraction", "data"), ha="right", va="bottom", fontsize=7)
        ax.set_xlabel(f"mean of estimate and reference HR (bpm), n = {s['n']}")
        ax.set_ylabel("estimate − reference HR (bpm)")
        ax.set_title(f"Bland-Altman {REFERENCE_TITLE[reference]}", fontsize=10)
        ax.grid(alpha=0.3)
        tables.append(points.rename(columns={f"hr_{reference}": "hr_reference"}).assign(reference=reference, **s))
    if title:
        fig.suptitle(title, fontsize=10)
    sources = "; ".join(dict.fromkeys(per_video["source"]))
    written = _save(fig, pd.concat(tables, ignore_index=True).assign(source=sources), out_prefix)
    plt.close(fig)
    return written
