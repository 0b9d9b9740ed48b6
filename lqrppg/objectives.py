"""Training objectives, keyed by a model's ``loss`` attribute (so the trainer has no if-chain).

    "c2f"          LQ-rPPG's C2F loss (method.md §4): L_cls + L_rec over the five bit depths
    "neg_pearson"  negative Pearson between the model output and the (normalised) label (PhysNet)
    "mse"          mean squared error against the normalised label (DeepPhys, TS-CAN, EfficientPhys,
                   as the rPPG-Toolbox trains them)

A model without a ``loss`` attribute gets the one of its ``label_type``: "quantized" -> "c2f",
"continuous" -> "neg_pearson". Losses that live with their model (PhysFormer's curriculum loss,
RhythmMamba's hybrid loss) are registered with :func:`register_objective`.

Every objective is ``objective(output, batch, fs, progress=0.0) -> (loss, parts)``: ``loss`` a
scalar tensor to back-propagate, ``parts`` its components as floats for logging; ``progress`` is
the fraction of training done when the epoch started (0 at the first), for curriculum losses.
:func:`prediction` extracts the rPPG signal (B, T) from whatever a model's forward returns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from lqrppg.errors import ConfigError
from lqrppg.losses import hybrid_loss, neg_pearson

__all__ = [
    "DEFAULT_LOSS",
    "OBJECTIVES",
    "Objective",
    "c2f_loss",
    "get_objective",
    "loss_name",
    "mse_objective",
    "pearson_objective",
    "prediction",
    "register_objective",
]

Objective = Callable[..., tuple[Tensor, dict[str, float]]]
#: The loss of a model that names none, by its label_type.
DEFAULT_LOSS = {"quantized": "c2f", "continuous": "neg_pearson"}


def prediction(output: Any) -> Tensor:
    """The rPPG signal (B, T): ``output.rppg`` for models returning a structure, else the tensor."""
    return output.rppg if hasattr(output, "rppg") else output


def c2f_loss(output: Any, batch: Mapping[str, Tensor], fs: float, progress: float = 0.0) -> tuple[Tensor, dict[str, float]]:
    """L_cls + L_rec of method.md §4.

    L_cls = Σ_n CE(logits_n, k_n), each CE averaged over all (batch, time) steps;
    L_rec = Σ_n hybrid(r_n, q_n) = Σ_n 0.2·(1 − Pearson) + FreqCE. Level n = 1..5 (bits).
    """
    q, k = batch["q"], batch["k"]  # (B, 5, T)
    # Each supervised output names the bit depth of its label (ablations drop or cap levels).
    levels = getattr(output, "levels", None) or tuple(range(1, len(output.logits) + 1))
    if len(levels) != len(output.logits) or max(levels) > q.shape[1]:
        raise ValueError(f"model outputs levels {list(levels)}, pseudo labels have {q.shape[1]}")
    cls = sum(
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]), k[:, n - 1].reshape(-1))
        for n, logits in zip(levels, output.logits, strict=True)
    )
    rec = sum(hybrid_loss(recon, q[:, n - 1], fs) for n, recon in zip(levels, output.recon, strict=True))
    total = cls + rec
    return total, {"cls": float(cls.detach()), "rec": float(rec.detach())}


def pearson_objective(
    output: Any, batch: Mapping[str, Tensor], fs: float, progress: float = 0.0
) -> tuple[Tensor, dict[str, float]]:
    """Negative Pearson of the prediction against ``batch["label"]`` (mean of 1 − r over the batch)."""
    loss = neg_pearson(prediction(output), batch["label"])
    return loss, {"neg_pearson": float(loss.detach())}


def mse_objective(
    output: Any, batch: Mapping[str, Tensor], fs: float, progress: float = 0.0
) -> tuple[Tensor, dict[str, float]]:
    """Mean squared error of the prediction against ``batch["label"]`` (the toolbox's MSELoss)."""
    loss = F.mse_loss(prediction(output), batch["label"])
    return loss, {"mse": float(loss.detach())}


OBJECTIVES: dict[str, Objective] = {"c2f": c2f_loss, "neg_pearson": pearson_objective, "mse": mse_objective}


def register_objective(name: str, objective: Objective) -> Objective:
    """Make ``objective`` the loss of every model whose ``loss`` attribute is ``name``."""
    if name in OBJECTIVES and OBJECTIVES[name] is not objective:
        raise ValueError(f"objective {name!r} is already registered")
    OBJECTIVES[name] = objective
    return objective


def loss_name(model_cls: type) -> str:
    """The ``loss`` a model class trains with (its own attribute, else its label_type's default)."""
    name = getattr(model_cls, "loss", None)
    if name is None:
        name = DEFAULT_LOSS.get(getattr(model_cls, "label_type", None), "")
    return name


def get_objective(name: str) -> Objective:
    """The objective registered as ``name`` (a model's :func:`loss_name`); ConfigError listing the known ones."""
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise ConfigError(f"no objective named {name!r}; known: {', '.join(sorted(OBJECTIVES))}") from None
