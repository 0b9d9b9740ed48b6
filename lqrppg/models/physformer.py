"""PhysFormer (Yu et al., CVPR 2022): a video transformer with temporal-difference attention.

This is rPPG-Toolbox's ``ViT_ST_ST_Compact3_TDC_gra_sharp`` with the toolbox's PhysFormer
settings (patches (4, 4, 4), dim 96, ff_dim 144, 4 heads, 12 layers, theta 0.7, dropout
0.1), with the same submodule names, so the toolbox's released PhysFormer weights load
(after stripping DataParallel's ``module.`` prefix). 7,380,865 parameters (method.md §7:
7.38 M), independent of the input size. For (B, 3, T, H, W) DiffNormalized frames:

    Stem0  Conv3d 3->24 k(1,5,5), BN, ReLU, pool(1,2,2)    24 x T   x H/2  x W/2
    Stem1  Conv3d 24->48 k3, BN, ReLU, pool(1,2,2)         48 x T   x H/4  x W/4
    Stem2  Conv3d 48->96 k3, BN, ReLU, pool(1,2,2)         96 x T   x H/8  x W/8
    patch_embedding Conv3d 96->96 k=s=(4,4,4)              96 x T/4 x H/32 x W/32  -> tokens
    transformer1..3, 4 blocks each, on the token grid (T/4, H/32, W/32):
        x = x + drop(proj(TDC-MHSA(norm1(x))))     q, k: temporal-difference Conv3d k3 + BN
                                                   v: Conv3d 1x1; softmax(q k^T / gra_sharp)
        x = x + drop(ST-FFN(norm2(x)))             Conv3d 1x1 96->144, BN, ELU;
                                                   depthwise Conv3d k3, BN, ELU; 1x1 144->96, BN
    upsample   nearest x2 in time, Conv3d k(3,1,1) 96->96, BN, ELU     96 x T/2
    upsample2  nearest x2 in time, Conv3d k(3,1,1) 96->48, BN, ELU     48 x T
    spatial mean, ConvBlockLast Conv1d 48->1                           (B, T)

The temporal-difference convolution (TDC, "CDC_T") is a 3x3x3 convolution minus theta times
the response of its temporal-neighbour weights summed into a 1x1x1 kernel:
y = conv(x) - theta * (sum_{hw} W[:, :, 0] + sum_{hw} W[:, :, 2]) * x, with theta = 0.7. The
attention scores are divided by the "gradient sharpness" temperature gra_sharp = 2.0 (the
toolbox trainer's value in training, validation and test), not by sqrt(head_dim).

Sources (facts read, code written anew):
- ubicomplab/rPPG-Toolbox @ d807b0174d7d1c371778042ec741e385861bbbf5:
  ``neural_methods/model/PhysFormer.py`` (layers, init: Linear xavier-uniform, bias N(0, 1e-6));
  ``neural_methods/trainer/PhysFormerTrainer.py`` (hyperparameters, gra_sharp = 2.0, the
  z-normalisation of the output, the loss and its a/b schedule);
  ``neural_methods/loss/PhysFormerLossComputer.py`` (frequency CE and DLDL KL, std = 1.0);
  ``configs/train_configs/*_PHYSFORMER_BASIC.yaml`` (DATA_TYPE DiffNormalized, LABEL_TYPE
  DiffNormalized, chunks of 160 frames at 128x128, DROP_RATE 0.1, 10 epochs).
- zizheng-guo/RhythmMamba @ 1533ad21 carries an older copy (``neural_methods/model/PhysFormer.py``,
  ``base/physformer_layer.py``) whose attention also holds an unused ``calv`` Conv2d and
  ``para`` scalar (+49,212 parameters, 7.43 M); the toolbox's current model, used here, does not.

Deviations: the toolbox reshapes tokens to a hard-coded 4x4 spatial grid (128x128 input); here
the grid follows from (height, width), so any H, W divisible by 32 work (32x32 gives a 1x1
grid). The attention maps the toolbox returns next to the signal are not returned.

Loss ("physformer", :func:`lqrppg.losses.physformer_loss`): a * NegPearson + b * (FreqCE +
KL) on the z-normalised output, frequency classes 40..179 bpm, label distribution std 1.0;
(a, b) = (1, 1) up to toolbox epoch 10 and (0.05, 5) after, with the toolbox's 10-epoch
clock (so (1, 1) throughout a run; see :func:`lqrppg.losses.physformer_weights`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from lqrppg.losses import physformer_loss
from lqrppg.models import register_model
from lqrppg.objectives import prediction, register_objective

__all__ = ["PhysFormer", "physformer_objective"]

DIM = 96  # token width
FF_DIM = 144  # width inside the spatio-temporal feed-forward
HEADS = 4
LAYERS = 12  # three transformers of 4 blocks
PATCH = 4  # tube size (t, h, w) of the patch embedding
THETA = 0.7  # weight of the temporal-difference term
DROPOUT = 0.1  # toolbox MODEL.DROP_RATE
GRA_SHARP = 2.0  # attention temperature
STEM_STRIDE = 8  # three (1, 2, 2) max-pools


class TemporalDifferenceConv3d(nn.Module):
    """The toolbox's ``CDC_T``: conv3d(x) - theta * conv3d(x, temporal-neighbour kernel sum).

    The weight lives in ``self.conv`` (state-dict key ``conv.weight``). Only kernels with a
    temporal extent of 3 have neighbours; others reduce to the plain convolution.
    """

    def __init__(self, c_in: int, c_out: int, theta: float) -> None:
        super().__init__()
        self.conv = nn.Conv3d(c_in, c_out, kernel_size=3, stride=1, padding=1, bias=False)
        self.theta = theta

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        if self.theta == 0.0:
            return out
        w = self.conv.weight  # (C_out, C_in, 3, 3, 3)
        neighbours = (w[:, :, 0].sum((2, 3)) + w[:, :, 2].sum((2, 3)))[:, :, None, None, None]
        return out - self.theta * F.conv3d(x, neighbours)


def _to_grid(tokens: Tensor, grid: tuple[int, int, int]) -> Tensor:
    """(B, P, C) tokens -> (B, C, t, h, w) feature volume (P = t*h*w, time slowest)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)


def _to_tokens(volume: Tensor) -> Tensor:
    return volume.flatten(2).transpose(1, 2)


class TDCAttention(nn.Module):
    """Multi-head self-attention whose q and k come from TDC convolutions on the token grid."""

    def __init__(self, dim: int, heads: int, dropout: float, theta: float) -> None:
        super().__init__()
        self.proj_q = nn.Sequential(TemporalDifferenceConv3d(dim, dim, theta), nn.BatchNorm3d(dim))
        self.proj_k = nn.Sequential(TemporalDifferenceConv3d(dim, dim, theta), nn.BatchNorm3d(dim))
        self.proj_v = nn.Sequential(nn.Conv3d(dim, dim, kernel_size=1, bias=False))
        self.drop = nn.Dropout(dropout)
        self.n_heads = heads

    def forward(self, x: Tensor, grid: tuple[int, int, int], gra_sharp: float) -> Tensor:
        b, p, c = x.shape
        volume = _to_grid(x, grid)
        q, k, v = (_to_tokens(proj(volume)) for proj in (self.proj_q, self.proj_k, self.proj_v))
        q, k, v = (t.reshape(b, p, self.n_heads, c // self.n_heads).transpose(1, 2) for t in (q, k, v))
        scores = self.drop(F.softmax(q @ k.transpose(-2, -1) / gra_sharp, dim=-1))  # (B, heads, P, P)
        return (scores @ v).transpose(1, 2).reshape(b, p, c)


class SpatioTemporalFeedForward(nn.Module):
    """1x1x1 expand, depthwise 3x3x3, 1x1x1 project, on the token grid (``PositionWiseFeedForward_ST``)."""

    def __init__(self, dim: int, ff_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Sequential(nn.Conv3d(dim, ff_dim, 1, bias=False), nn.BatchNorm3d(ff_dim), nn.ELU())
        self.STConv = nn.Sequential(
            nn.Conv3d(ff_dim, ff_dim, 3, padding=1, groups=ff_dim, bias=False), nn.BatchNorm3d(ff_dim), nn.ELU()
        )
        self.fc2 = nn.Sequential(nn.Conv3d(ff_dim, dim, 1, bias=False), nn.BatchNorm3d(dim))

    def forward(self, x: Tensor, grid: tuple[int, int, int]) -> Tensor:
        return _to_tokens(self.fc2(self.STConv(self.fc1(_to_grid(x, grid)))))


class Block(nn.Module):
    """Pre-norm transformer block: x + drop(proj(attn(norm1 x))), then x + drop(ffn(norm2 x))."""

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float, theta: float) -> None:
        super().__init__()
        self.attn = TDCAttention(dim, heads, dropout, theta)
        self.proj = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.pwff = SpatioTemporalFeedForward(dim, ff_dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, grid: tuple[int, int, int], gra_sharp: float) -> Tensor:
        x = x + self.drop(self.proj(self.attn(self.norm1(x), grid, gra_sharp)))
        return x + self.drop(self.pwff(self.norm2(x), grid))


class Transformer(nn.Module):
    """A stack of blocks (the toolbox groups its 12 blocks as three of these)."""

    def __init__(self, layers: int, dim: int, heads: int, ff_dim: int, dropout: float, theta: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, ff_dim, dropout, theta) for _ in range(layers))

    def forward(self, x: Tensor, grid: tuple[int, int, int], gra_sharp: float) -> Tensor:
        for block in self.blocks:
            x = block(x, grid, gra_sharp)
        return x


def _stem(c_in: int, c_out: int, kernel: tuple[int, int, int], padding: tuple[int, int, int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, kernel, stride=1, padding=padding),
        nn.BatchNorm3d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool3d((1, 2, 2), stride=(1, 2, 2)),
    )


def _upsample_time(c_in: int, c_out: int) -> nn.Sequential:
    """Nearest x2 in time, Conv3d k(3,1,1), BN, ELU."""
    return nn.Sequential(
        nn.Upsample(scale_factor=(2, 1, 1)),
        nn.Conv3d(c_in, c_out, (3, 1, 1), stride=1, padding=(1, 0, 0)),
        nn.BatchNorm3d(c_out),
        nn.ELU(),
    )


@register_model("physformer")
class PhysFormer(nn.Module):
    """PhysFormer; input (B, 3, T, H, W) DiffNormalized frames, output rPPG (B, T).

    ``layers`` (default 12, the published model) and ``dropout`` (default 0.1) are the
    toolbox's NUM_LAYERS and DROP_RATE; smaller values are for tests.
    """

    input_norm = "diff_normalized"  # toolbox PhysFormer configs: DATA_TYPE ['DiffNormalized']
    label_norm = "diff_normalized"  # LABEL_TYPE DiffNormalized
    label_type = "continuous"
    loss = "physformer"
    published_input = (160, 128, 128)  # toolbox configs: 160-frame chunks of 128x128 faces

    @classmethod
    def check_input(cls, frames: int, height: int, width: int) -> None:
        """Raise ValueError unless (frames, height, width) is a valid input size."""
        if frames < PATCH or frames % PATCH:
            raise ValueError(
                f"PhysFormer needs a frame count divisible by {PATCH} (temporal patches of {PATCH}, "
                f"upsampled x4 back), got {frames}"
            )
        step = STEM_STRIDE * PATCH
        if height < step or width < step or height % step or width % step:
            raise ValueError(
                f"PhysFormer needs height and width divisible by {step} (three 2x stem poolings, then "
                f"{PATCH}x{PATCH} patches), got {height}x{width}"
            )

    def __init__(
        self,
        frames: int = 160,
        height: int = 128,
        width: int = 128,
        *,
        layers: int = LAYERS,
        dropout: float = DROPOUT,
    ) -> None:
        super().__init__()
        self.check_input(frames, height, width)
        if layers < 3 or layers % 3:
            raise ValueError(f"PhysFormer needs a layer count divisible by 3 (three transformers), got {layers}")
        self.frames, self.height, self.width = frames, height, width
        self.dim = DIM
        self.gra_sharp = GRA_SHARP

        self.Stem0 = _stem(3, DIM // 4, (1, 5, 5), (0, 2, 2))
        self.Stem1 = _stem(DIM // 4, DIM // 2, (3, 3, 3), (1, 1, 1))
        self.Stem2 = _stem(DIM // 2, DIM, (3, 3, 3), (1, 1, 1))
        self.patch_embedding = nn.Conv3d(DIM, DIM, kernel_size=PATCH, stride=PATCH)
        self.transformer1 = Transformer(layers // 3, DIM, HEADS, FF_DIM, dropout, THETA)
        self.transformer2 = Transformer(layers // 3, DIM, HEADS, FF_DIM, dropout, THETA)
        self.transformer3 = Transformer(layers // 3, DIM, HEADS, FF_DIM, dropout, THETA)
        self.upsample = _upsample_time(DIM, DIM)
        self.upsample2 = _upsample_time(DIM, DIM // 2)
        self.ConvBlockLast = nn.Conv1d(DIM // 2, 1, kernel_size=1)

        self.apply(_init_weights)

    def forward(self, x: Tensor, gra_sharp: float | None = None) -> Tensor:
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"PhysFormer expects (B, 3, T, H, W) input, got {tuple(x.shape)}")
        self.check_input(*x.shape[2:])
        gra_sharp = self.gra_sharp if gra_sharp is None else gra_sharp
        x = self.Stem2(self.Stem1(self.Stem0(x)))  # (B, 96, T, H/8, W/8)
        x = self.patch_embedding(x)  # (B, 96, T/4, H/32, W/32)
        grid = tuple(x.shape[2:])
        tokens = _to_tokens(x)
        for transformer in (self.transformer1, self.transformer2, self.transformer3):
            tokens = transformer(tokens, grid, gra_sharp)
        x = self.upsample2(self.upsample(_to_grid(tokens, grid)))  # (B, 48, T, H/32, W/32)
        return self.ConvBlockLast(x.mean(dim=(3, 4))).squeeze(1)


@torch.no_grad()
def _init_weights(m: nn.Module) -> None:
    """The toolbox's init: Linear weights xavier-uniform, biases N(0, 1e-6²); the rest PyTorch defaults."""
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.normal_(m.bias, std=1e-6)


def physformer_objective(
    output: Any, batch: Mapping[str, Tensor], fs: float, progress: float = 0.0
) -> tuple[Tensor, dict[str, float]]:
    """The toolbox PhysFormer loss against ``batch["label"]`` (:func:`lqrppg.losses.physformer_loss`)."""
    return physformer_loss(prediction(output), batch["label"], fs, progress)


register_objective("physformer", physformer_objective)
