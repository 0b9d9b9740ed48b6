"""Training and selection of the n-bit label quantizers (``reference/method.md`` §2.4-2.5, §9).

One quantizer per bit depth, trained one after another on y_bpf chunks of the training split with
L = α·MSE(q, y) + commitment + β·FreqCE(q, y), AdamW and a per-batch OneCycleLR. After every epoch
the quantizer is run in eval mode on the *validation* chunks and the mean absolute difference
between the HR of q and the HR of y_val is recorded; the state of the best epoch (among epochs ≥
``min_epoch``) is kept. The authors selected on the training set (method.md §9 row 3); selecting on
validation is this project's rule.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tqdm.auto import tqdm

from lqrppg.errors import DataError
from lqrppg.io import atomic_path, write_text
from lqrppg.losses import freq_ce
from lqrppg.lq.quantizer import LabelQuantizer
from lqrppg.signal.chain import ChainSettings, estimate_hr, process_signal

__all__ = [
    "CRITERION",
    "BitFit",
    "FitResult",
    "LQSettings",
    "codebooks_json",
    "fit_quantizers",
    "load_codebooks",
    "load_quantizers",
    "read_quantizer_info",
    "save_codebooks",
    "save_quantizers",
]

log = logging.getLogger(__name__)

#: Name of the selection criterion, written next to its values.
CRITERION = "val_hr_mae_bpm"
#: Format tag of the quantizer file, checked on load.
FILE_FORMAT = "lqrppg.lq.quantizers/1"
#: Chunks per forward pass when evaluating; bounds memory, does not change results.
EVAL_BATCH = 256


class LQSettings(BaseModel):
    """Hyper-parameters of stage 1 (defaults = the authors' released configs, method.md §2.4-2.5)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bits: list[int] = Field(
        [1, 2, 3, 4, 5], description="Bit depths to train, one quantizer each with 2^bits codes; C2F needs 1-5."
    )
    epochs: int = Field(30, ge=1, description="Training epochs per quantizer.")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate, also OneCycleLR's max_lr.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    batch_size: int = Field(16, ge=1, description="Chunks per training batch.")
    min_epoch: int = Field(
        5,
        ge=1,
        description=(
            "Epochs are selected only among epochs >= this (1-based, as the authors). "
            "Clamped to `epochs` when training is shorter."
        ),
    )
    codebook: Literal["learned", "uniform", "kmeans"] = Field(
        "learned",
        description="learned: the paper's encoder + EMA codebook; uniform / kmeans (ablations): no encoder, "
        "y_bpf quantized directly with 2^bits equal-width cells or a Lloyd-Max (1-D k-means) codebook of "
        "the training labels.",
    )
    alpha: float = Field(1.0, ge=0, description="Weight of the reconstruction MSE(q, y_bpf).")
    beta: float = Field(1.0, ge=0, description="Weight of FreqCE(q, y_bpf).")
    decay: float = Field(0.99, gt=0, lt=1, description="EMA decay of the codebook and cluster sizes.")
    eps: float = Field(1e-5, gt=0, description="Laplace smoothing constant of the EMA cluster sizes.")

    @field_validator("bits")
    @classmethod
    def _bits_valid(cls, bits: list[int]) -> list[int]:
        if not bits:
            raise ValueError("bits must name at least one bit depth")
        if len(set(bits)) != len(bits) or any(not 1 <= b <= 8 for b in bits):
            raise ValueError(f"bits must be distinct integers in 1..8, got {bits}")
        return bits


@dataclass
class BitFit:
    """The outcome of training one quantizer."""

    bits: int
    selected_epoch: int  # 1-based
    criterion: float  # validation HR MAE (bpm) of the selected epoch
    min_epoch: int  # first eligible epoch actually used (after clamping)
    train_loss: list[float]  # mean training loss per epoch
    val_mae: list[float]  # validation HR MAE per epoch (the selection curve)
    val_mse: list[float]  # validation MSE(q, y) per epoch, eval mode
    state_dict: dict[str, torch.Tensor]  # weights and codebook of the selected epoch
    codebook: torch.Tensor  # (2^bits,) codes of the selected epoch


@dataclass
class FitResult:
    """All quantizers of one run, in the order of ``settings.bits``."""

    settings: LQSettings
    chain: ChainSettings
    fs: float
    length: int
    seed: int
    fits: list[BitFit] = field(default_factory=list)

    def by_bits(self, bits: int) -> BitFit:
        for fit in self.fits:
            if fit.bits == bits:
                return fit
        raise KeyError(f"no {bits}-bit quantizer in this result (have {[f.bits for f in self.fits]})")


def _bit_seed(seed: int, bits: int) -> int:
    """Independent, reproducible seed per (run seed, bit depth): each quantizer's initialisation
    then depends neither on the order of ``bits`` nor on which other depths are trained."""
    return int(np.random.SeedSequence([int(seed), int(bits)]).generate_state(1)[0])


def _as_chunks(y: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(y, dtype=np.float32))
    if t.ndim != 2:
        raise DataError(f"{name} must be (N, T) chunks, got shape {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise DataError(f"{name} is empty: LQ epoch selection needs a non-empty {name} split")
    if not torch.isfinite(t).all():
        raise DataError(f"{name} contains NaN or inf")
    return t


def _chunk_hrs(x: np.ndarray, fs: float, chain: ChainSettings) -> np.ndarray:
    """HR (bpm) of every row through the evaluation chain (detrend, band-pass, estimator)."""
    return np.array([estimate_hr(process_signal(row, fs, chain), fs, chain) for row in x], dtype=np.float64)


@torch.no_grad()
def _quantize_eval(model: LabelQuantizer, y: torch.Tensor, device: torch.device) -> torch.Tensor:
    """q for every chunk in eval mode (the codebook cannot move), in batches; returns a CPU tensor."""
    was_training = model.training
    model.eval()
    out = [model(y[i : i + EVAL_BATCH].to(device))[0].cpu() for i in range(0, len(y), EVAL_BATCH)]
    model.train(was_training)
    return torch.cat(out)


def _validate(
    model: LabelQuantizer, y_val: torch.Tensor, hr_ref: np.ndarray, fs: float, chain: ChainSettings, device
) -> tuple[float, float]:
    q = _quantize_eval(model, y_val, device)
    hr_q = _chunk_hrs(q.double().numpy(), fs, chain)
    errors = np.abs(hr_q - hr_ref)
    mae = float(np.nanmean(errors)) if np.isfinite(errors).any() else math.inf
    return mae, float(F.mse_loss(q, y_val))


def fit_quantizers(
    y_train: np.ndarray | torch.Tensor,
    y_val: np.ndarray | torch.Tensor,
    fs: float,
    settings: LQSettings,
    chain: ChainSettings,
    seed: int,
    device: str | torch.device = "cpu",
) -> FitResult:
    """Train one quantizer per bit depth of ``settings.bits`` and keep each one's best validation epoch.

    ``y_train`` (N, T) and ``y_val`` (M, T) are y_bpf chunks (see :mod:`lqrppg.lq.labels`). Runs
    are deterministic on the CPU for a given ``seed``.
    """
    device = torch.device(device)
    y_tr = _as_chunks(y_train, "training labels")
    y_va = _as_chunks(y_val, "validation labels")
    if y_tr.shape[1] != y_va.shape[1]:
        raise DataError(f"training chunks have {y_tr.shape[1]} samples but validation chunks {y_va.shape[1]}")
    n, length = y_tr.shape
    fs = float(fs)
    min_epoch = min(settings.min_epoch, settings.epochs)
    if min_epoch < settings.min_epoch:
        log.warning(
            "LQ: only %d epochs < min_epoch %d; selecting among epochs >= %d",
            settings.epochs, settings.min_epoch, min_epoch,
        )
    hr_ref = _chunk_hrs(y_va.double().numpy(), fs, chain)  # the targets of the criterion, computed once
    steps_per_epoch = math.ceil(n / settings.batch_size)
    log.info("LQ: %d training / %d validation chunks of %d samples at %.3g fps, bits %s",
             n, len(y_va), length, fs, settings.bits)

    result = FitResult(settings=settings, chain=chain, fs=fs, length=length, seed=seed)
    if settings.codebook != "learned":
        for bits in settings.bits:
            result.fits.append(_fixed_codebook_fit(bits, y_tr, y_va, hr_ref, fs, settings, chain, device))
        return result
    for bits in settings.bits:
        bit_seed = _bit_seed(seed, bits)
        torch.manual_seed(bit_seed)
        model = LabelQuantizer(bits, length, decay=settings.decay, eps=settings.eps).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=settings.lr, total_steps=settings.epochs * steps_per_epoch
        )
        shuffle = torch.Generator().manual_seed(bit_seed)

        train_loss, val_mae, val_mse = [], [], []
        best: tuple[int, float, dict[str, torch.Tensor]] | None = None
        for epoch in tqdm(range(1, settings.epochs + 1), desc=f"LQ {bits}-bit", leave=False, disable=None):
            model.train()
            order = torch.randperm(n, generator=shuffle)
            total = 0.0
            for start in range(0, n, settings.batch_size):
                y = y_tr[order[start : start + settings.batch_size]].to(device)
                q, _, commitment = model(y)
                loss = settings.alpha * F.mse_loss(q, y) + commitment + settings.beta * freq_ce(q, y, fs)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += loss.item() * len(y)
            train_loss.append(total / n)
            mae, mse = _validate(model, y_va, hr_ref, fs, chain, device)
            val_mae.append(mae)
            val_mse.append(mse)
            log.info("LQ %d-bit epoch %d/%d: train loss %.4f, val MSE %.4f, val HR MAE %.3f bpm",
                     bits, epoch, settings.epochs, train_loss[-1], mse, mae)
            # Strict '<' keeps the earlier epoch on ties; NaN never wins (mae is inf when all HRs are NaN).
            if epoch >= min_epoch and (best is None or mae < best[1]):
                best = (epoch, mae, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})

        assert best is not None  # min_epoch <= epochs guarantees one eligible epoch
        epoch, criterion, state = best
        fit = BitFit(
            bits=bits,
            selected_epoch=epoch,
            criterion=criterion,
            min_epoch=min_epoch,
            train_loss=train_loss,
            val_mae=val_mae,
            val_mse=val_mse,
            state_dict=state,
            codebook=state["quantizer.embeddings.weight"][:, 0].clone(),
        )
        log.info("LQ %d-bit: selected epoch %d (%s %.3f), codebook %s",
                 bits, epoch, CRITERION, criterion, np.round(fit.codebook.numpy(), 3).tolist())
        result.fits.append(fit)
    return result


# ----------------------------------------------------------------------------- fixed codebooks (ablations)

LLOYD_MAX_ITERATIONS = 100
UNIFORM_RANGE_PERCENTILES = (0.5, 99.5)  # robust to the rare spikes of a noisy label


def uniform_codebook(values: np.ndarray, codes: int) -> np.ndarray:
    """Centres of ``codes`` equal-width cells over the 0.5-99.5 percentile range of ``values``."""
    lo, hi = np.percentile(np.asarray(values, dtype=np.float64), UNIFORM_RANGE_PERCENTILES)
    edges = np.linspace(lo, hi, codes + 1)
    return (edges[:-1] + edges[1:]) / 2


def lloyd_max_codebook(values: np.ndarray, codes: int, iterations: int = LLOYD_MAX_ITERATIONS) -> np.ndarray:
    """The minimum-MSE scalar quantizer of ``values`` (Lloyd-Max = 1-D k-means), deterministic.

    Starts from the quantiles at the cell centres and alternates nearest-code assignment and
    centroid update until nothing moves; an empty cell keeps its value.
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if x.size == 0:
        raise DataError("no training label values to fit a codebook to")
    c = np.quantile(x, (np.arange(codes) + 0.5) / codes)
    for _ in range(iterations):
        edges = (c[:-1] + c[1:]) / 2
        cells = np.searchsorted(edges, x)
        sums = np.bincount(cells, weights=x, minlength=codes)
        counts = np.bincount(cells, minlength=codes)
        new = np.where(counts > 0, sums / np.maximum(counts, 1), c)
        if np.allclose(new, c, rtol=0, atol=1e-12):
            break
        c = new
    return np.sort(c)


def _fixed_codebook_fit(bits, y_tr, y_va, hr_ref, fs, settings, chain, device) -> BitFit:
    """A LabelQuantizer that quantizes y_bpf itself with a fixed codebook (no training).

    Every encoder weight is zero: the convolutions and the Mamba block then add nothing and the
    encoder's residual paths pass y_bpf through unchanged, so the file format, loading and
    ``quantize apply`` are those of the learned quantizers.
    """
    torch.manual_seed(_bit_seed(0, bits))
    model = LabelQuantizer(bits, y_tr.shape[1], decay=settings.decay, eps=settings.eps)
    make = uniform_codebook if settings.codebook == "uniform" else lloyd_max_codebook
    values = torch.as_tensor(make(y_tr.numpy(), 2**bits), dtype=torch.float32)
    with torch.no_grad():
        for param in model.encoder.parameters():
            param.zero_()
        model.quantizer.embeddings.weight.copy_(values[:, None])
        model.quantizer.ema_w.copy_(values[:, None])
    model.to(device).eval()
    mae, mse = _validate(model, y_va, hr_ref, fs, chain, device)
    log.info("LQ %d-bit %s codebook %s: val MSE %.4f, val HR MAE %.3f bpm",
             bits, settings.codebook, np.round(values.numpy(), 3).tolist(), mse, mae)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return BitFit(bits=bits, selected_epoch=0, criterion=mae, min_epoch=0, train_loss=[], val_mae=[mae],
                  val_mse=[mse], state_dict=state, codebook=values.clone())


# ----------------------------------------------------------------------------- files


def save_quantizers(result: FitResult, path: str | os.PathLike) -> None:
    """Write every selected quantizer and its curves to ``path`` (torch.save of plain tensors and
    containers only, so it loads with ``weights_only=True``), atomically."""
    payload = {
        "format": FILE_FORMAT,
        "length": result.length,
        "fs": result.fs,
        "seed": result.seed,
        "criterion_name": CRITERION,
        "settings": result.settings.model_dump(mode="json"),
        "chain": result.chain.model_dump(mode="json"),
        "quantizers": [
            {
                "bits": f.bits,
                "selected_epoch": f.selected_epoch,
                "criterion": f.criterion,
                "min_epoch": f.min_epoch,
                "train_loss": list(f.train_loss),
                "val_mae": list(f.val_mae),
                "val_mse": list(f.val_mse),
                "state_dict": dict(f.state_dict),
            }
            for f in result.fits
        ],
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _read_payload(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: quantizer file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise DataError(f"{path}: not a readable quantizer file ({err})") from err
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise DataError(f"{path}: not an lqrppg quantizer file (format {found!r}, expected {FILE_FORMAT!r})")
    return payload


def read_quantizer_info(path: str | os.PathLike) -> dict[str, Any]:
    """Everything in a quantizer file except the weights: settings, selection, curves, codebooks.
    JSON-serialisable, for run metadata (e.g. the pseudo-label file's ``lqrppg.lq`` key)."""
    payload = _read_payload(path)
    info = {k: v for k, v in payload.items() if k != "quantizers"}
    info["quantizers"] = [
        {
            **{k: v for k, v in q.items() if k != "state_dict"},
            "codebook": q["state_dict"]["quantizer.embeddings.weight"][:, 0].tolist(),
        }
        for q in payload["quantizers"]
    ]
    return info


def load_quantizers(path: str | os.PathLike) -> list[LabelQuantizer]:
    """The selected quantizers of a file written by :func:`save_quantizers`, in EVAL mode, in the
    order they were trained (normally bits 1…5)."""
    payload = _read_payload(path)
    settings = payload["settings"]
    modules = []
    for entry in payload["quantizers"]:
        # Building a module draws its random initial weights; fork the RNG so that loading
        # quantizers never shifts the caller's random stream (and thus its results).
        with torch.random.fork_rng(devices=[]):
            model = LabelQuantizer(int(entry["bits"]), int(payload["length"]), settings["decay"], settings["eps"])
        try:
            model.load_state_dict(entry["state_dict"], strict=True)
        except RuntimeError as err:
            raise DataError(f"{path}: {entry['bits']}-bit quantizer does not match the model ({err})") from err
        modules.append(model.eval())
    return modules


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def codebooks_json(result: FitResult) -> dict[str, Any]:
    """{"1": [2 codes], …, "5": [32 codes], "selected_epoch": {...}, "criterion": {...}, ...}.

    Codes are kept in index order (not sorted): the pseudo-label indices k refer to positions.
    """
    out: dict[str, Any] = {str(f.bits): [float(v) for v in f.codebook.tolist()] for f in result.fits}
    out["selected_epoch"] = {str(f.bits): f.selected_epoch for f in result.fits}
    out["criterion"] = {str(f.bits): _finite_or_none(f.criterion) for f in result.fits}
    out["criterion_name"] = CRITERION
    return out


def save_codebooks(result: FitResult, path: str | os.PathLike) -> None:
    """Write :func:`codebooks_json` to ``path`` atomically."""
    write_text(path, json.dumps(codebooks_json(result), indent=2) + "\n")


def load_codebooks(path: str | os.PathLike, bits: Sequence[int] = (1, 2, 3, 4, 5)) -> list[torch.Tensor]:
    """Codebooks for ``bits`` from a codebooks JSON file, as float32 tensors of size 2^bits each."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: codebook file not found") from None
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable codebook file ({err})") from err
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object of codebooks")
    books = []
    for b in bits:
        values = data.get(str(b))
        if values is None:
            raise DataError(f"{path}: no {b}-bit codebook (keys present: {sorted(data)})")
        if not isinstance(values, list) or len(values) != 2**b:
            size = len(values) if isinstance(values, list) else type(values).__name__
            raise DataError(f"{path}: {b}-bit codebook has {size} values, expected {2**b}")
        try:
            book = torch.tensor([float(v) for v in values], dtype=torch.float32)
        except (TypeError, ValueError) as err:
            raise DataError(f"{path}: {b}-bit codebook has non-numeric values ({err})") from err
        if not torch.isfinite(book).all():
            raise DataError(f"{path}: {b}-bit codebook has non-finite values")
        books.append(book)
    return books
