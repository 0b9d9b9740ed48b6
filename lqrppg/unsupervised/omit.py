"""OMIT, orthogonal matrix image transformation (Álvarez Casado & Bordallo López, IEEE JBHI 2023).

Face2PPG's OMIT as in rPPG-Toolbox ``OMIT.py`` (``reference/evaluation.md`` §5): the QR
decomposition C = QR of the raw 3×T RGB trace, the projector P = I - q₁q₁ᵀ onto the
complement of the first column of Q, and the green row of P·C as the pulse.

Note what q₁ is: Householder QR of a 3×T matrix makes q₁ the first column of C normalised,
i.e. the colour direction of the first frame (sign aside, which P ignores). That direction is
close to the skin tone, so the projection removes brightness changes as LGI does, but it
depends on one frame's noise rather than the whole trace. This is the method as published and
as the toolbox runs it, so it is kept.
"""

from __future__ import annotations

import numpy as np

from lqrppg.unsupervised import check_rgb_trace, register_method

__all__ = ["omit"]


@register_method("OMIT")
def omit(rgb: np.ndarray, fs: float) -> np.ndarray:
    """OMIT pulse signal, same length as ``rgb``. ``fs`` is unused (common signature)."""
    c = check_rgb_trace(rgb).T  # (3, T)
    q, _ = np.linalg.qr(c, mode="reduced")  # Q is 3×3, R is 3×T: O(T), no T×T factor
    q1 = q[:, 0]
    # Green row of (I - q₁q₁ᵀ)·C, without forming the 3×3 projector.
    return c[1] - q1[1] * (q1 @ c)
