"""Training objectives, keyed by a model's ``label_type`` (so the trainer has no if-chain).

    "quantized"   LQ-rPPG's C2F loss (method.md §4): L_cls + L_rec over the five bit depths
    "continuous"  negative Pearson between the model output and the (normalised) label

Every objective is ``objective(output, batch, fs) -> (loss, parts)``: ``loss`` a scalar tensor to
back-propagate, ``parts`` its components as floats for logging. :func:`prediction` extracts the
rPPG signal (B, T) from whatever a model's forward returns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from lqrppg.errors import ConfigError
from lqrppg.losses import hybrid_loss, neg_pearson

__all__ = ["OBJECTIVES", "Objective", "c2f_loss", "get_objective", "pearson_objective", "prediction"]

Objective = Callable[[Any, Mapping[str, Tensor], float], tuple[Tensor, dict[str, float]]]


def prediction(output: Any) -> Tensor:
    """The rPPG signal (B, T): ``output.rppg`` for models returning a structure, else the tensor."""
    return output.rppg if hasattr(output, "rppg") else output


def c2f_loss(output: Any, batch: Mapping[str, Tensor], fs: float) -> tuple[Tensor, dict[str, float]]:
    """L_cls + L_rec of method.md §4.

    L_cls = Σ_n CE(logits_n, k_n), each CE averaged over all (batch, time) steps;
    L_rec = Σ_n hybrid(r_n, q_n) = Σ_n 0.2·(1 − Pearson) + FreqCE. Level n = 1..5 (bits).
    """
    q, k = batch["q"], batch["k"]  # (B, 5, T)
    if len(output.logits) != q.shape[1]:
        raise ValueError(f"model has {len(output.logits)} levels, pseudo labels have {q.shape[1]}")
    cls = sum(
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]), k[:, n].reshape(-1))
        for n, logits in enumerate(output.logits)
    )
    rec = sum(hybrid_loss(recon, q[:, n], fs) for n, recon in enumerate(output.recon))
    total = cls + rec
    return total, {"cls": float(cls.detach()), "rec": float(rec.detach())}


def pearson_objective(output: Any, batch: Mapping[str, Tensor], fs: float) -> tuple[Tensor, dict[str, float]]:
    """Negative Pearson of the prediction against ``batch["label"]`` (mean of 1 − r over the batch)."""
    loss = neg_pearson(prediction(output), batch["label"])
    return loss, {"neg_pearson": float(loss.detach())}


OBJECTIVES: dict[str, Objective] = {"quantized": c2f_loss, "continuous": pearson_objective}


def get_objective(label_type: str) -> Objective:
    """The objective for a model's ``label_type``; ConfigError listing the known ones."""
    try:
        return OBJECTIVES[label_type]
    except KeyError:
        raise ConfigError(f"no objective for label_type {label_type!r}; known: {', '.join(OBJECTIVES)}") from None
