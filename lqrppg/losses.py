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


# -----------------------------------------------------------------------------
# Losses of the supervised baselines, as their reference trainers compute them.
#
#   PhysFormer   rPPG-Toolbox @ d807b01: neural_methods/trainer/PhysFormerTrainer.py and
#                neural_methods/loss/PhysFormerLossComputer.py
#   RhythmMamba  zizheng-guo/RhythmMamba @ 1533ad2: neural_methods/loss/TorchLossComputer.py
#                (Hybrid_Loss) and neural_methods/trainer/RhythmMambaTrainer.py
#
# Both trainers z-normalise the prediction over time (unbiased std) before the loss, both
# evaluate the loss per sample and average over the batch, and both take the frequency
# target from a heart rate estimated on the label with SciPy's Welch PSD (numpy, no
# gradient); the PSD "logits" are the same normalised powers as :func:`normalized_psd`.

__all__ += [
    "PHYSFORMER_BPM",
    "PHYSFORMER_EPOCHS",
    "RHYTHM_BPM",
    "label_distribution",
    "label_hr_bpm",
    "physformer_loss",
    "physformer_weights",
    "psd_cross_entropy",
    "rhythm_loss",
    "zscore_rows",
]

#: PhysFormer's frequency classes: integer rates 40..179 bpm (140 classes).
PHYSFORMER_BPM = (40, 180)
#: RhythmMamba's frequency classes: 45..149 bpm (105 classes), the range of :data:`BPM_RANGE`.
RHYTHM_BPM = BPM_RANGE
#: TRAIN.EPOCHS of every rPPG-Toolbox PhysFormer config: the clock of its loss curriculum.
PHYSFORMER_EPOCHS = 10


def zscore_rows(x: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std over time per row, std unbiased: what both trainers apply to the output.

    The std is clamped at 1e-12 so a constant row gives zeros instead of NaN (the reference
    divides by zero there).
    """
    return (x - x.mean(dim=-1, keepdim=True)) / x.std(dim=-1, keepdim=True).clamp_min(1e-12)


def _fs_list(fs: float | torch.Tensor, batch: int) -> list[float]:
    fs_t = torch.as_tensor(fs, dtype=torch.float64).detach().cpu()
    if fs_t.ndim == 0:
        return [float(fs_t)] * batch
    if fs_t.shape != (batch,):
        raise ValueError(f"fs must be a scalar or a (B,) tensor with B={batch}, got shape {tuple(fs_t.shape)}")
    return fs_t.tolist()


def label_hr_bpm(
    label: torch.Tensor, fs: float | torch.Tensor, band_bpm: tuple[float, float], *, filtered: bool
) -> list[float]:
    """Heart rate (bpm) of each label row: the Welch-PSD peak over the open band ``band_bpm``.

    ``filtered=False``: Welch on the label as it is (the toolbox PhysFormer trainer's
    ``get_hr``, band 30-180 bpm). ``filtered=True``: smoothness-priors detrend (λ = 100) and an
    order-1 Butterworth band-pass 0.75-2.5 Hz first (RhythmMamba's ``calculate_hr``, band
    45-150 bpm). Welch: Hann, segment min(T-1, 256), nfft = 1e5/fs (:func:`lqrppg.signal.hr.hr_welch`).
    """
    from lqrppg.signal.filters import bandpass, detrend  # scipy: imported only when a loss needs it
    from lqrppg.signal.hr import hr_welch

    rows = label.detach().to("cpu", torch.float64).numpy()
    rates = []
    for row, rate in zip(rows, _fs_list(fs, rows.shape[0]), strict=True):
        if filtered:
            row = bandpass(detrend(row, 100.0), rate, (0.75, 2.5), order=1)
        rates.append(hr_welch(row, rate, (band_bpm[0] / 60.0, band_bpm[1] / 60.0)))
    if not all(math.isfinite(r) for r in rates):
        raise ValueError(f"no label heart rate in {band_bpm} bpm for some rows (got {rates}): is the chunk too short?")
    return rates


def psd_cross_entropy(
    pred: torch.Tensor, classes: torch.Tensor, fs: float | torch.Tensor, bpm: tuple[int, int]
) -> torch.Tensor:
    """Cross-entropy of the normalised PSD of ``pred`` (used as logits) against rate classes
    (class c = rate bpm[0] + c); mean over the batch. :func:`freq_ce` with given classes."""
    return F.cross_entropy(normalized_psd(pred, fs, bpm), classes)


def label_distribution(
    hr_int: torch.Tensor, bpm: tuple[int, int], std: float, floor: float = 1e-15
) -> torch.Tensor:
    """DLDL targets: the Gaussian pdf N(k; hr, std²) at each class rate k, floored at 1e-15.

    Not renormalised, as in the reference (with std = 1 the values sum to 1 within 1e-6
    unless the rate sits at the edge of the range).
    """
    rates = torch.arange(bpm[0], bpm[1], device=hr_int.device, dtype=torch.float32)
    z = (rates - hr_int.to(torch.float32)[:, None]) / std
    pdf = torch.exp(-0.5 * z.square()) / (math.sqrt(2.0 * math.pi) * std)
    return pdf.clamp_min(floor)


def physformer_weights(progress: float, epochs: int = PHYSFORMER_EPOCHS) -> tuple[float, float]:
    """(a, b) of PhysFormer's loss a·NegPearson + b·(CE + KL), at ``progress`` of training.

    The toolbox rule, on its 0-based epoch e = progress·epochs: a = 1 and b = 1·1.0^(e/10)
    (exp_b = 1.0, so b stays 1) while e <= 10, then a = 0.05, b = 5. With the toolbox's own
    10-epoch configs (``epochs`` = 10, e <= 9) the switch is never reached: the weights are
    (1, 1) throughout. The original PhysFormer code (a = 0.1·0.5^(e/25), b = 5^(e/25)) ramps
    instead; the project follows the toolbox.
    """
    epoch = progress * epochs
    if epoch > 10:
        return 0.05, 5.0
    a_start, b_start, exp_b = 1.0, 1.0, 1.0
    return a_start, b_start * math.pow(exp_b, epoch / 10.0)


def physformer_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    fs: float | torch.Tensor,
    progress: float = 0.0,
    *,
    epochs: int = PHYSFORMER_EPOCHS,
    std: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The rPPG-Toolbox PhysFormer loss: a·NegPearson + b·(FreqCE + DLDL-KL), (a, b) by
    :func:`physformer_weights`; returns the loss and its parts (floats).

    Per sample, on the z-normalised prediction: HR = Welch peak of the raw label over 30-180
    bpm; CE of the normalised PSD over 40..179 bpm against class int(HR) - 40; KL (sum) from
    log_softmax(PSD) to the Gaussian label distribution around int(HR) with ``std`` = 1.
    Deviation: the class is clamped into 0..139 (a label HR of 30-40 bpm makes the reference
    index out of range).
    """
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(f"expected two (B, T) tensors of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    pred = zscore_rows(pred)
    n_classes = PHYSFORMER_BPM[1] - PHYSFORMER_BPM[0]
    hr = torch.tensor(label_hr_bpm(target, fs, (30, 180), filtered=False), device=pred.device)
    hr_int = hr.floor()  # int() of a positive rate
    classes = (hr_int - PHYSFORMER_BPM[0]).long().clamp(0, n_classes - 1)
    psd = normalized_psd(pred, fs, PHYSFORMER_BPM)  # the "ca" of the reference, sums to 1
    pearson = neg_pearson(pred, target)
    ce = F.cross_entropy(psd, classes)
    dist = label_distribution(hr_int, PHYSFORMER_BPM, std).to(psd.dtype)
    kl = F.kl_div(F.log_softmax(psd, dim=-1), dist, reduction="none").sum(-1).mean()
    a, b = physformer_weights(progress, epochs)
    total = a * pearson + b * (ce + kl)
    return total, {"neg_pearson": float(pearson.detach()), "freq_ce": float(ce.detach()), "kl": float(kl.detach())}


def rhythm_loss(
    pred: torch.Tensor, target: torch.Tensor, fs: float | torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """RhythmMamba's Hybrid_Loss: 0.2·NegPearson + 1.0·FreqCE; returns the loss and its parts.

    Per sample, on the z-normalised prediction: FreqCE is the CE of the normalised PSD over
    45..149 bpm against class int(HR) - 45, HR from the label by detrend, band-pass and Welch
    (:func:`label_hr_bpm` with ``filtered=True``). The DLDL KL that the reference computes
    alongside is not part of this loss (its weight is 0). Unlike :func:`hybrid_loss` (the C2F
    loss), whose class is the argmax of the label's own PSD, the class here comes from the
    label's filtered Welch HR.
    """
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(f"expected two (B, T) tensors of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    pred = zscore_rows(pred)
    hr = torch.tensor(label_hr_bpm(target, fs, RHYTHM_BPM, filtered=True), device=pred.device)
    classes = (hr.floor() - RHYTHM_BPM[0]).long().clamp(0, RHYTHM_BPM[1] - RHYTHM_BPM[0] - 1)
    pearson = neg_pearson(pred, target)
    ce = psd_cross_entropy(pred, classes, fs, RHYTHM_BPM)
    total = 0.2 * pearson + 1.0 * ce
    return total, {"neg_pearson": float(pearson.detach()), "freq_ce": float(ce.detach())}
