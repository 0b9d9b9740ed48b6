"""PBV, blood-volume pulse signature (de Haan & van Leest, Physiol. Meas. 2014).

Follows rPPG-Toolbox ``PBV.py`` (``reference/evaluation.md`` §5) on the whole trace:

1. normalise each channel by its temporal mean: Cₙ (3×T, values around 1, not mean-removed);
2. signature p = per-channel std of Cₙ / sqrt(sum of the three variances) (unit norm);
3. W = (CₙCₙᵀ)⁻¹·p, the projection that has unit gain for p and least output energy;
4. pulse = CₙᵀW / (pᵀW).

Numerics: CₙCₙᵀ is dominated by the DC (every column is close to (1, 1, 1)), so it is badly
conditioned, and singular when the channels are linearly dependent (a constant or clipped
channel, or a trace that only changes in brightness). Instead of ``solve`` on CₙCₙᵀ, the
thin SVD Cₙ = UΣVᵀ gives CₙᵀW = V·Σ⁻¹Uᵀp and pᵀW = ‖Σ⁻¹Uᵀp‖² without squaring the condition
number; singular values at rounding level are dropped (pseudo-inverse), which is the
minimum-norm W when the matrix is singular and equals ``solve`` when it is not. pᵀW cannot
vanish for p ≠ 0: the mean column of Cₙ is (1, 1, 1), which lies in the kept subspace, and
p ≥ 0 is not orthogonal to it.

Caveat of the whole-trace form: p is estimated from the data, so when a brightness drift
dominates the channel variances p points along the skin tone rather than the pulse, and the
minimum-energy W can suppress the pulse. The paper uses a fixed signature on short band-passed
windows; the toolbox (and this project's reference) use this whole-trace form, kept as is.
"""

from __future__ import annotations

import numpy as np

from lqrppg.unsupervised import check_rgb_trace, register_method

__all__ = ["pbv"]


@register_method("PBV")
def pbv(rgb: np.ndarray, fs: float) -> np.ndarray:
    """PBV pulse signal, same length as ``rgb``. ``fs`` is unused (common signature).

    A trace with no temporal variation at all has no signature (p = 0/0); it gives zeros,
    as POS does for a constant window, rather than NaN.
    """
    c = check_rgb_trace(rgb).T  # (3, T)
    cn = c / c.mean(axis=1, keepdims=True)
    std = cn.std(axis=1)
    norm = np.sqrt(np.sum(std**2))
    if norm == 0.0:
        return np.zeros(c.shape[1])
    p = std / norm
    u, s, vt = np.linalg.svd(cn, full_matrices=False)
    tol = max(cn.shape) * np.finfo(np.float64).eps * s[0]
    keep = s > tol
    z = (u[:, keep].T @ p) / s[keep]  # Σ⁻¹Uᵀp on the kept singular directions
    return (vt[keep].T @ z) / (z @ z)
