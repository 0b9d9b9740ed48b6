"""The n-bit label quantizer: a tiny 1-channel encoder and an EMA scalar codebook (method.md §2.2-2.3).

An n-bit label is a learned codebook of 2ⁿ scalars. The encoder maps y_bpf (B, T) to one latent
scalar per time step, the quantizer snaps each latent to its nearest code, and the codebook follows
the latents by exponential moving averages (VQ-VAE-EMA) instead of by gradient descent.

The codebook tensors are *buffers*, not parameters: no gradient ever reaches them (the commitment
loss stops gradients at q), and as buffers the optimizer cannot touch them, weight decay included.
Their state-dict names follow the authors' checkpoints: ``quantizer.embeddings.weight``,
``quantizer.ema_w`` and ``quantizer.ema_cluster_size``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lqrppg.models.mamba import BiMambaBlock

__all__ = ["EMAScalarQuantizer", "LQEncoder", "LabelQuantizer"]

#: Weight of the commitment term 0.5·MSE(sg(q), z) (the authors' commitment cost).
COMMITMENT_COST = 0.5


class LQEncoder(nn.Module):
    """Five dilated 1→1 convolutions (k5, dilations 1…16) with a residual, a learnable positional
    embedding and one bidirectional-Mamba block with d_model = 1 (method.md §2.2 table)."""

    def __init__(self, length: int) -> None:
        super().__init__()
        self.length = length
        # Padding = 2·dilation keeps the length; together the five layers see ±124 samples,
        # most of a 160-sample chunk, which is what lets one scalar per step carry pulse shape.
        self.convs = nn.ModuleList(
            nn.Conv1d(1, 1, kernel_size=5, dilation=d, padding=2 * d) for d in (1, 2, 4, 8, 16)
        )
        self.act = nn.GELU()
        self.pos_embedding = nn.Parameter(torch.zeros(length, 1))
        self.mamba = BiMambaBlock(d_model=1, d_state=48, d_conv=4, expand=2)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """(B, T) → latents z (B, T); T must equal the length the encoder was built for."""
        if y.ndim != 2 or y.shape[1] != self.length:
            raise ValueError(f"LQEncoder expects (B, {self.length}) input, got {tuple(y.shape)}")
        x = y[:, None, :]
        h = x
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if i < len(self.convs) - 1:  # no activation after the last convolution
                h = self.act(h)
        h = (h + x).transpose(1, 2) + self.pos_embedding  # (B, T, 1)
        return self.mamba(h)[..., 0]


class _Codebook(nn.Module):
    """Holds the code values as a buffer named ``weight``, so the state-dict key is
    ``embeddings.weight`` as in the authors' ``nn.Embedding`` without making it a parameter."""

    def __init__(self, num_codes: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.empty(num_codes, 1).uniform_(-1.0 / num_codes, 1.0 / num_codes))


class EMAScalarQuantizer(nn.Module):
    """Nearest-value scalar quantizer with an EMA-updated codebook (method.md §2.3).

    forward(z) → (straight-through q, indices, commitment loss). In training mode each forward
    also moves the codebook towards the mean of the latents assigned to each code; in eval mode
    it never changes, which is what keeps frozen quantizers frozen in stage 2.
    """

    def __init__(self, num_codes: int, decay: float = 0.99, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_codes = num_codes
        self.decay = decay
        self.eps = eps
        self.embeddings = _Codebook(num_codes)
        # The accumulator is drawn independently of the codebook, as in the authors' code.
        self.register_buffer("ema_w", torch.empty(num_codes, 1).uniform_(-1.0 / num_codes, 1.0 / num_codes))
        self.register_buffer("ema_cluster_size", torch.zeros(num_codes))

    @property
    def codebook(self) -> torch.Tensor:
        """The K code values, shape (K,)."""
        return self.embeddings.weight[:, 0]

    def assign(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for every latent (ties → the lower index)."""
        return (z[..., None] - self.codebook).abs().argmin(dim=-1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        indices = self.assign(z.detach())
        # q is read from the codebook *before* this batch's EMA step, as in the VQ-VAE-EMA reference.
        q = self.codebook[indices]
        commitment = COMMITMENT_COST * F.mse_loss(q.detach(), z)
        if self.training:
            self._ema_update(z.detach(), indices)
        q_st = z + (q - z).detach()  # straight-through: forward value q, gradient identity to z
        return q_st, indices, commitment

    @torch.no_grad()
    def _ema_update(self, z: torch.Tensor, indices: torch.Tensor) -> None:
        flat_z = z.reshape(-1).to(self.ema_w.dtype)
        # A one-hot matmul instead of index_add/bincount: same numbers, and deterministic on GPU too.
        onehot = F.one_hot(indices.reshape(-1), self.num_codes).to(flat_z.dtype)  # (M, K)
        counts = onehot.sum(dim=0)
        sums = onehot.T @ flat_z
        gamma = self.decay
        size = gamma * self.ema_cluster_size + (1.0 - gamma) * counts
        # Laplace smoothing keeps every cluster size > 0 (no division by zero for unused codes)
        # while preserving the total.
        total = size.sum()
        size = (size + self.eps) / (total + self.num_codes * self.eps) * total
        self.ema_cluster_size.copy_(size)
        self.ema_w.mul_(gamma).add_((1.0 - gamma) * sums[:, None])
        self.embeddings.weight.copy_(self.ema_w / size[:, None])


class LabelQuantizer(nn.Module):
    """Encoder + EMA quantizer for one bit depth: y_bpf (B, T) → (q (B, T), k (B, T), commitment)."""

    def __init__(self, bits: int, length: int, decay: float = 0.99, eps: float = 1e-5) -> None:
        super().__init__()
        if not 1 <= bits <= 16:
            raise ValueError(f"bits must be in 1..16, got {bits}")
        self.bits = bits
        self.length = length
        self.encoder = LQEncoder(length)
        self.quantizer = EMAScalarQuantizer(2**bits, decay=decay, eps=eps)

    @property
    def codebook(self) -> torch.Tensor:
        """The 2^bits code values (detached copy, shape (K,)); index k of the pseudo labels refers to it."""
        return self.quantizer.codebook.detach().clone()

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.quantizer(self.encoder(y))

    def num_parameters(self) -> int:
        """Encoder parameters + codebook + EMA accumulator: the tensors the authors' count of
        814–874 covers (the cluster sizes are counters, not weights, and are left out)."""
        encoder = sum(p.numel() for p in self.encoder.parameters())
        return encoder + self.quantizer.embeddings.weight.numel() + self.quantizer.ema_w.numel()
