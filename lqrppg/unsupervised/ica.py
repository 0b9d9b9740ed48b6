"""ICA, blind source separation of the RGB trace (Poh, McDuff & Picard, Optics Express 2010).

Follows rPPG-Toolbox ``ICA_POH.py`` (``reference/evaluation.md`` §5):

1. per channel: smoothness-priors detrend (λ=100), then z-score;
2. JADE ICA (Cardoso & Souloumiac 1993) with 3 sources: whiten, estimate the fourth-order
   cumulant tensor, keep its m most significant eigen-matrices and jointly diagonalise them
   with Givens rotations; JADE is algebraic and needs no random start, so it is deterministic;
3. pick the source whose power spectrum (DC bin dropped, normalised to sum 1) has the
   largest peak;
4. Butterworth band-pass, order 3, 0.7-2.5 Hz, zero-phase (filtfilt). Like POS's post-filter,
   this band-pass is part of the method as published, not of the evaluation chain.

The toolbox runs the complex-valued JADE on real data; this is the real-valued form of the
same algorithm (for real data the complex conjugates are no-ops and the Givens rotations are
real), so the sources agree up to the order and sign that ICA leaves undetermined anyway.
"""

from __future__ import annotations

import math

import numpy as np

from lqrppg.signal.filters import bandpass, detrend, min_filtfilt_length
from lqrppg.unsupervised import check_rgb_trace, register_method

__all__ = ["ica", "jade", "select_pulse_source"]

DETREND_LAMBDA = 100.0
N_SOURCES = 3
BAND_HZ = (0.7, 2.5)
FILTER_ORDER = 3
#: Sweeps of the Jacobi joint diagonalisation before giving up; 3 sources converge in a handful.
MAX_SWEEPS = 100


def _whitener(x: np.ndarray, n_sources: int) -> np.ndarray:
    """Whitening matrix ``W`` (r×n) for the rows of ``x``: ``W x`` has identity covariance.

    With a full-rank covariance this is the symmetric ``R^-1/2`` the toolbox uses
    (``sqrtm`` then ``inv``). Eigenvalues below a relative tolerance are dropped instead of
    inverted: a channel that is constant or a linear combination of the others (a saturated
    or clipped channel) would otherwise blow its rounding noise up into a fake source.
    So ``r`` can be smaller than ``n_sources``.
    """
    n, t = x.shape
    cov = x @ x.T / t
    evals, evecs = np.linalg.eigh(cov)  # ascending
    tol = max(n, t) * np.finfo(np.float64).eps * max(evals[-1], 0.0)
    keep = np.flatnonzero(evals > tol)[::-1][:n_sources]  # largest first
    if keep.size == n == n_sources:
        return (evecs / np.sqrt(evals)) @ evecs.T
    # Rank-deficient (or fewer sources asked): PCA whitening onto the kept directions.
    return evecs[:, keep].T / np.sqrt(evals[keep])[:, None]


def _cumulant_eigenmatrices(y: np.ndarray, n_matrices: int) -> np.ndarray:
    """The ``n_matrices`` most significant eigen-matrices of the cumulant tensor of white ``y``.

    Returns ``(m, m·n_matrices)``: ``[λ₁Z₁, λ₂Z₂, ...]`` side by side, as JADE diagonalises them.
    For whitened real data the cumulant is Q_ijkl = E[y_i y_j y_k y_l] - R_ij R_kl - R_ik R_jl
    - R_il R_jk, with R the (identity up to rounding) covariance, seen as an m²×m² matrix.
    """
    m, t = y.shape
    r = y @ y.T / t
    pairs = (y[:, None, :] * y[None, :, :]).reshape(m * m, t)
    fourth = (pairs @ pairs.T / t).reshape(m, m, m, m)
    q = (
        fourth
        - np.einsum("ij,kl->ijkl", r, r)
        - np.einsum("ik,jl->ijkl", r, r)
        - np.einsum("il,jk->ijkl", r, r)
    ).reshape(m * m, m * m)
    q = 0.5 * (q + q.T)  # symmetric in exact arithmetic; make eigh see it so
    evals, evecs = np.linalg.eigh(q)
    order = np.argsort(np.abs(evals))[::-1][:n_matrices]
    blocks = []
    for k in order:
        z = evecs[:, k].reshape(m, m)
        blocks.append(evals[k] * 0.5 * (z + z.T))
    return np.concatenate(blocks, axis=1)


def _joint_diagonalise(cm: np.ndarray, tol: float) -> np.ndarray:
    """Orthogonal ``V`` that jointly diagonalises the m×m blocks of ``cm`` (Jacobi sweeps).

    Each Givens angle is the closed-form optimum of Cardoso & Souloumiac for one pair (p, q);
    sweeps stop when every angle is below ``tol``.
    """
    m = cm.shape[0]
    n_blocks = cm.shape[1] // m
    cm = cm.copy()
    v = np.eye(m)
    for _ in range(MAX_SWEEPS):
        rotated = False
        for p in range(m - 1):
            for q in range(p + 1, m):
                ip = np.arange(p, m * n_blocks, m)
                iq = np.arange(q, m * n_blocks, m)
                g_on = cm[p, ip] - cm[q, iq]
                g_off = cm[p, iq] + cm[q, ip]
                ton = g_on @ g_on - g_off @ g_off
                toff = 2.0 * (g_on @ g_off)
                theta = 0.5 * math.atan2(toff, ton + math.hypot(ton, toff))
                if abs(theta) <= tol:
                    continue
                rotated = True
                c, s = math.cos(theta), math.sin(theta)
                g = np.array([[c, -s], [s, c]])
                pair = [p, q]
                v[:, pair] = v[:, pair] @ g
                cm[pair, :] = g.T @ cm[pair, :]
                col_p, col_q = cm[:, ip].copy(), cm[:, iq].copy()
                cm[:, ip] = c * col_p + s * col_q
                cm[:, iq] = -s * col_p + c * col_q
        if not rotated:
            break
    return v


def jade(x: np.ndarray, n_sources: int = N_SOURCES) -> tuple[np.ndarray, np.ndarray]:
    """JADE ICA of the rows of ``x`` (n channels × T samples, zero-mean).

    Returns ``(unmixing, sources)`` with ``sources = unmixing @ x``: ``sources`` is
    ``(r, T)`` and ``unmixing`` is ``(r, n)``, where r = min(n_sources, n, rank of x). Sources
    come out with unit variance, in no particular order and with arbitrary sign.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"JADE input must be 2-D (channels × samples), got shape {x.shape}")
    n, t = x.shape
    if n > t:
        raise ValueError(f"JADE input has more channels ({n}) than samples ({t}); transpose it")
    if not np.all(np.isfinite(x)):
        raise ValueError("JADE input contains NaN or inf")
    n_sources = min(n_sources, n)
    whiten = _whitener(x, n_sources)
    m = whiten.shape[0]
    if m == 0:
        return np.zeros((0, n)), np.zeros((0, t))
    y = whiten @ x
    cm = _cumulant_eigenmatrices(y, m)
    v = _joint_diagonalise(cm, tol=1.0 / math.sqrt(t) / 100.0)  # the toolbox's threshold
    unmixing = v.T @ whiten
    return unmixing, v.T @ y


def select_pulse_source(sources: np.ndarray) -> int:
    """Index of the source with the largest normalised spectral peak (Poh et al.'s rule).

    Power of the FFT bins 1..floor((T-1)/2), i.e. DC dropped, each spectrum normalised to sum
    1, over all frequencies (the toolbox does not restrict this search to the HR band).
    """
    t = sources.shape[1]
    power = np.abs(np.fft.rfft(sources, axis=1)[:, 1 : 1 + (t - 1) // 2]) ** 2
    total = power.sum(axis=1, keepdims=True)
    # An all-zero source (degenerate input) has no peak; give it 0 instead of 0/0.
    normalised = np.divide(power, total, out=np.zeros_like(power), where=total > 0)
    return int(np.argmax(normalised.max(axis=1)))


@register_method("ICA")
def ica(rgb: np.ndarray, fs: float) -> np.ndarray:
    """ICA pulse signal, same length as ``rgb``."""
    rgb = check_rgb_trace(rgb, min_frames=min_filtfilt_length(FILTER_ORDER))
    norm = np.empty_like(rgb)
    for c in range(3):
        d = detrend(rgb[:, c], DETREND_LAMBDA)
        d -= d.mean()
        std = d.std()
        # A constant channel detrends to rounding noise (~1e-13 of its level); z-scoring that
        # would turn noise into a unit-variance "source", so it is zeroed instead and the
        # whitening below drops it.
        norm[:, c] = d / std if std > 1e-9 * np.abs(rgb[:, c]).mean() else 0.0
    _, sources = jade(norm.T, N_SOURCES)
    if sources.shape[0] == 0:
        return np.zeros(rgb.shape[0])
    chosen = sources[select_pulse_source(sources)]
    return bandpass(chosen, fs, BAND_HZ, FILTER_ORDER)
