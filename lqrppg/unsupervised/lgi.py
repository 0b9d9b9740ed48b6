"""LGI, local group invariance (Pilz, Zaunseder, Krajewski & Blazek, CVPRW 2018).

Follows rPPG-Toolbox ``LGI.py`` (``reference/evaluation.md`` §5): take the SVD of the raw
3×T RGB trace, project every frame onto the plane orthogonal to the first left singular
vector u₁ (P = I - u₁u₁ᵀ) and return the green row of P·C. u₁ is the dominant colour
direction of the trace (skin tone times brightness), so the projection removes intensity
changes, which scale all channels together, and keeps the chromatic part where the pulse is.
"""

from __future__ import annotations

import numpy as np

from lqrppg.unsupervised import check_rgb_trace, register_method

__all__ = ["lgi"]


@register_method("LGI")
def lgi(rgb: np.ndarray, fs: float) -> np.ndarray:
    """LGI pulse signal, same length as ``rgb``. ``fs`` is unused (common signature).

    The toolbox calls ``np.linalg.svd`` with full matrices, which builds the T×T right factor
    (2.6 GB for a 10-minute video). Only u₁ is needed and it is the top eigenvector of the 3×3
    matrix C·Cᵀ; the thin SVD of C gives it without squaring C's condition number.
    """
    c = check_rgb_trace(rgb).T  # (3, T)
    u, _, _ = np.linalg.svd(c, full_matrices=False)
    u1 = u[:, 0]
    # Green row of (I - u₁u₁ᵀ)·C, without forming the 3×3 projector: g - u₁[G]·(u₁ᵀC).
    return c[1] - u1[1] * (u1 @ c)
