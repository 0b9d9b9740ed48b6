"""Losses shared by the LQ module and the C2F model (``reference/method.md`` §2.4 and §4).

Everything works on (B, T) tensors on whatever device they live on; constants are built on
the input's device and dtype so nothing here assumes CUDA (the authors' version calls ``.cuda()``).

FreqCE is the authors' batched PSD cross-entropy, kept literally: the *normalised powers* are
used as logits. Because they lie in [0, 1] the softmax is nearly flat and the loss stays close
to log(105) ≈ 4.654; its gradient still pushes power towards the target's peak bin, which is
all it is meant to do. Changing it to log-powers would change the method.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["freq_ce", "hybrid_loss", "neg_pearson", "normalized_psd", "psd_bins"]

#: Integer heart rates of the FreqCE classes: 45…149 bpm, 105 classes (``range`` semantics).
BPM_RANGE = (45, 150)


def _as_fs(fs: float | torch.Tensor, batch: int | None, device, dtype) -> torch.Tensor:
    """Sampling rate(s) as a float tensor: shape () for a scalar, (B, 1) for one rate per sample."""
    fs_t = torch.as_tensor(fs, device=device, dtype=dtype)
    if fs_t.ndim == 0:
        return fs_t
    if fs_t.ndim != 1 or (batch is not None and fs_t.numel() != batch):
        raise ValueError(f"fs must be a scalar or a (B,) tensor with B={batch}, got shape {tuple(fs_t.shape)}")
    return fs_t[:, None]


def psd_bins(
    n: int,
    fs: float | torch.Tensor,
    bpm: tuple[int, int] = BPM_RANGE,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Fractional DFT bins k_b = (b/60) / (fs/n) of the integer rates b in ``range(*bpm)``.

    Returns shape (n_classes,) for a scalar ``fs`` and (B, n_classes) for a (B,) tensor of rates.
    """
    rates_hz = torch.arange(bpm[0], bpm[1], device=device, dtype=dtype) / 60.0
    fs_t = _as_fs(fs, None, device, dtype)
    return rates_hz / (fs_t / n)


def normalized_psd(x: torch.Tensor, fs: float | torch.Tensor, bpm: tuple[int, int] = BPM_RANGE) -> torch.Tensor:
    """Hann-windowed DFT power of each row of ``x`` (B, T) at the bins of ``psd_bins``, summing to 1.

    The window is numpy's symmetric ``np.hanning(T)`` (as in the authors' code), not torch's
    periodic default. Power = (Σ x_n sin(2πkn/N))² + (Σ x_n cos(2πkn/N))², evaluated directly
    because the bins are fractional and an FFT would not land on them.
    """
    if x.ndim != 2:
        raise ValueError(f"expected a (B, T) tensor, got shape {tuple(x.shape)}")
    batch, n = x.shape
    window = torch.hann_window(n, periodic=False, device=x.device, dtype=x.dtype)
    xw = x * window
    _as_fs(fs, batch, x.device, x.dtype)  # validates a per-sample fs against the batch size
    k = psd_bins(n, fs, bpm, device=x.device, dtype=x.dtype)
    phase_step = 2.0 * math.pi * torch.arange(n, device=x.device, dtype=x.dtype) / n
    angle = k[..., None] * phase_step  # (C, T) or (B, C, T)
    if angle.ndim == 2:
        re = xw @ torch.cos(angle).T
        im = xw @ torch.sin(angle).T
    else:
        re = torch.einsum("bt,bct->bc", xw, torch.cos(angle))
        im = torch.einsum("bt,bct->bc", xw, torch.sin(angle))
    power = re.square() + im.square()
    # A signal with no power in the band (e.g. all zeros) would divide 0 by 0; clamping the
    # denominator leaves every other case bit-identical and turns that one into flat logits.
    return power / power.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(power.dtype).tiny)


def freq_ce(pred: torch.Tensor, target: torch.Tensor, fs: float | torch.Tensor) -> torch.Tensor:
    """Batched PSD cross-entropy (method.md §2.4): normalised powers of ``pred`` used as logits,
    class = argmax of the normalised power of ``target`` over 45…149 bpm; mean over the batch."""
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    logits = normalized_psd(pred, fs)
    with torch.no_grad():
        classes = normalized_psd(target.to(pred.dtype), fs).argmax(dim=-1)
    return F.cross_entropy(logits, classes)


def neg_pearson(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean over the batch of 1 − r, r the Pearson correlation over time of each (centred) row."""
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(f"expected two (B, T) tensors of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    pc = pred - pred.mean(dim=-1, keepdim=True)
    tc = target - target.mean(dim=-1, keepdim=True)
    # vector_norm has a zero subgradient at 0, so a constant prediction gives r = 0, not NaN gradients.
    r = (pc * tc).sum(dim=-1) / (torch.linalg.vector_norm(pc, dim=-1) * torch.linalg.vector_norm(tc, dim=-1) + eps)
    return (1.0 - r).mean()


def hybrid_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    fs: float | torch.Tensor,
    pearson_weight: float = 0.2,
    freq_weight: float = 1.0,
) -> torch.Tensor:
    """0.2·neg_pearson + 1.0·freq_ce: the reconstruction term of the C2F loss (method.md §4).
    Both parts are scale-invariant, so ``pred`` needs no normalisation."""
    return pearson_weight * neg_pearson(pred, target) + freq_weight * freq_ce(pred, target, fs)
