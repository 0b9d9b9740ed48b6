"""Aggregate HR metrics with their standard errors, as in ``reference/evaluation.md`` §2.

Standard errors use the population std (ddof=0), like the reference code, and every row
names the formula it used, because "±" values from different code versions differ.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["RMSE_SE_FORMULAS", "metric_table"]

log = logging.getLogger(__name__)

RmseSe = Literal["sqrt_std_sq_over_sqrt_n", "std_sq_over_sqrt_n"]

#: Readable formula of each RMSE standard-error option (see evaluation.md §2, history table).
RMSE_SE_FORMULAS: dict[str, str] = {
    "sqrt_std_sq_over_sqrt_n": "sqrt(std(e^2)/sqrt(n))",
    "std_sq_over_sqrt_n": "std(e^2)/sqrt(n)",
}

COLUMNS = ["metric", "value", "se", "se_formula", "n"]


def _mean_and_se(values: np.ndarray) -> tuple[float, float]:
    """Mean and std(ddof=0)/sqrt(n), NaN for an empty array (without numpy warnings)."""
    if values.size == 0:
        return float("nan"), float("nan")
    return float(np.mean(values)), float(np.std(values) / math.sqrt(values.size))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN when n < 2 or either input is constant."""
    if x.size < 2:
        return float("nan")
    xc, yc = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(np.dot(xc, xc)) * float(np.dot(yc, yc)))
    return float(np.dot(xc, yc) / denom) if denom > 0 else float("nan")


def _finite(values: npt.ArrayLike | None, name: str) -> np.ndarray | None:
    """Finite entries of an optional per-video column, logging how many were dropped."""
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64).ravel()
    keep = np.isfinite(arr)
    if not keep.all():
        log.warning("%s: ignoring %d non-finite of %d values", name, int((~keep).sum()), arr.size)
    return arr[keep]


def metric_table(
    hr_pred: npt.ArrayLike,
    hr_ref: npt.ArrayLike,
    snr: npt.ArrayLike | None = None,
    macc: npt.ArrayLike | None = None,
    rmse_se: RmseSe = "sqrt_std_sq_over_sqrt_n",
) -> pd.DataFrame:
    """MAE, RMSE, MAPE, Pearson (and SNR, MACC when given) with standard errors.

    Pairs where the predicted or reference HR is NaN are ignored; SNR and MACC ignore their
    own NaNs. Each row reports the ``n`` it actually used. Returns columns
    ``metric, value, se, se_formula, n``.
    """
    if rmse_se not in RMSE_SE_FORMULAS:
        raise ValueError(f"rmse_se must be one of {sorted(RMSE_SE_FORMULAS)}, got {rmse_se!r}")
    pred = np.asarray(hr_pred, dtype=np.float64).ravel()
    ref = np.asarray(hr_ref, dtype=np.float64).ravel()
    if pred.shape != ref.shape:
        raise ValueError(f"hr_pred and hr_ref differ in length: {pred.size} vs {ref.size}")
    keep = np.isfinite(pred) & np.isfinite(ref)
    if not keep.all():
        log.warning("ignoring %d of %d HR pairs with a NaN prediction or reference", int((~keep).sum()), pred.size)
    pred, ref = pred[keep], ref[keep]
    n = int(pred.size)
    err = pred - ref
    abs_err = np.abs(err)
    sq_err = np.square(err)

    mae, mae_se = _mean_and_se(abs_err)
    mse, _ = _mean_and_se(sq_err)
    rmse = math.sqrt(mse) if n else float("nan")
    if n == 0:
        rmse_error = float("nan")
    elif rmse_se == "sqrt_std_sq_over_sqrt_n":
        rmse_error = math.sqrt(float(np.std(sq_err)) / math.sqrt(n))
    else:
        rmse_error = float(np.std(sq_err)) / math.sqrt(n)
    mape, mape_se = _mean_and_se(100.0 * abs_err / ref)
    rho = _pearson(pred, ref)
    rho_se = math.sqrt((1.0 - rho**2) / (n - 2)) if n >= 3 and np.isfinite(rho) else float("nan")

    rows = [
        ("MAE", mae, mae_se, "std(|e|)/sqrt(n)", n),
        ("RMSE", rmse, rmse_error, RMSE_SE_FORMULAS[rmse_se], n),
        ("MAPE", mape, mape_se, "100*std(|e|/h)/sqrt(n)", n),
        ("Pearson", rho, rho_se, "sqrt((1-rho^2)/(n-2))", n),
    ]
    for name, values in (("SNR", _finite(snr, "SNR")), ("MACC", _finite(macc, "MACC"))):
        if values is not None:
            value, se = _mean_and_se(values)
            rows.append((name, value, se, f"std({name})/sqrt(n)", int(values.size)))
    return pd.DataFrame(rows, columns=COLUMNS)
