"""RhythmMamba (Zou et al., AAAI 2025): multi-temporal Mamba blocks with a frequency-domain FFN.

Pipeline, for a clip (B, 3, T, H, W) of Standardized frames (embed dim 96, depth 24):

    Fusion_Stem (per frame; the diff-fusion stem, dim 24)  (B*T, 24, H/8, W/8)
    stem3  Conv3d 24->96 k(2,5,5) s(2,1,1) p(0,2,2) + BN3d  (B, 96, T/2, H/8, W/8)
    sigmoid attention mask (mean 0.5 per channel & frame), spatial mean   (B, T/2, 96)
    24 x multi-temporal Mamba block:
        y = average over the scans that cover each quarter (see below) of Mamba(LayerNorm(x))
        x = x + drop_path(norm1(y))
        x = x + drop_path(FreqFFN(norm2(x)))
    upsample nearest x2 in time, ConvBlockLast Conv1d 96->1           (B, T)

Multi-temporal parallelisation: the L = T/2 tokens are cut into 4 quarters of s = L // 4.
Four copies of the sequence go through the one Mamba as one batch: copy 0 is the sequence,
copy i (i = 1..3) starts at quarter i (its last i*s places are refilled with the original's
tail, as upstream does). Quarter q of the output is the mean of copy 0 and of copies 1..q
at the places where they cover quarter q, i.e. of scans that began 0, 1, ..., q quarters
before it; quarter 0 is copy 0 alone.

Frequency-domain FFN (``Frequencydomain_FFN``, mlp_ratio 2): Conv1d 96->192 + BN + ReLU; FFT over
time (ortho); real' = ReLU(Re*r - Im*i + rb), imag' = ReLU(Im*r + Re*i + ib); inverse FFT, real
part; Conv1d 192->96 + BN. Upstream writes the products as ``einsum('bnc,cc->bnc', X, r)``; a
repeated index in one operand is a diagonal, so only the diagonals of the 192x192 matrices r and
i act (the off-diagonal entries are parameters that get zero gradients). They are kept as full
matrices here so the parameter count and state dict match upstream.

Mamba: upstream calls ``mamba_ssm.modules.mamba_simple.Mamba(d_model=96, d_state=48, d_conv=4,
expand=2)`` from its vendored mamba-ssm (``setup/mamba``), which is unidirectional; this file's
:class:`Mamba` is that mixer on :func:`lqrppg.models.mamba.selective_scan` (the mamba-ssm CUDA
kernel when installed, else the PyTorch scan). ``bidirectional=True`` uses
:class:`lqrppg.models.mamba.BiMamba` instead (what a VideoMamba-style fork installed as
mamba-ssm would do). Trainable parameters at any input size: 4,922,125 unidirectional (method.md
§7: 4.92 M), 5,673,229 bidirectional (5.67 M).

Initialisation as upstream: Linear weights truncated normal σ = 0.02 with zero biases (this also
overwrites Mamba's Δ-projection init, so its bias starts at 0), Conv2d LeCun normal, LayerNorm and
BatchNorm2d weight 1 / bias 0 (:func:`lqrppg.models.lqc2f._init_weights`, the same routine), then
each Mamba's out_proj is re-drawn kaiming-uniform(a=√5) and divided by √depth. Drop path grows
linearly to 0.1 (block i uses linspace(0, 0.1, 24)[i - 1], block 0 none).

Sources (facts read, code written anew): zizheng-guo/RhythmMamba @
1533ad21cb4ae0d31e9dbb9afb0b1eefbed54aed: ``neural_methods/model/RhythmMamba.py`` (architecture,
init), ``neural_methods/trainer/RhythmMambaTrainer.py`` (input layout (B, T, C, H, W), output
z-normalised before the loss, Hybrid_Loss per sample), ``neural_methods/loss/TorchLossComputer.py``
(Hybrid_Loss = 0.2 NegPearson + 1.0 FreqCE), ``evaluation/post_process.py`` (``calculate_hr``:
the label HR behind the CE class), ``configs/train_configs/intra/*_RHYTHMMAMBA.yaml`` (DATA_TYPE
Standardized, LABEL_TYPE Standardized, 160-frame chunks at 128x128),
``setup/mamba/mamba_ssm/modules/mamba_simple.py`` (the unidirectional Mamba).

Deviations: the input is (B, 3, T, H, W) as for every model here, permuted inside; the model
works for any even T >= 8 and H, W divisible by 8.

Loss ("rhythm", :func:`lqrppg.losses.rhythm_loss`): 0.2 * NegPearson + 1.0 * FreqCE on the
z-normalised output, CE over 45..149 bpm against the label's detrended, band-passed Welch HR.
The repo's RhythmFormer_Loss adds an HR-distribution KL term; RhythmMamba's trainer uses
Hybrid_Loss, which does not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from lqrppg.losses import rhythm_loss
from lqrppg.models import register_model
from lqrppg.models.lqc2f import FusionStem
from lqrppg.models.lqc2f import _init_weights as segm_init_weights
from lqrppg.models.mamba import BiMamba, selective_scan
from lqrppg.objectives import prediction, register_objective

__all__ = ["FrequencyFFN", "Mamba", "MultiTemporalMambaBlock", "RhythmMamba", "rhythm_objective"]

EMBED_DIM = 96
DEPTH = 24
MLP_RATIO = 2
D_STATE, D_CONV, EXPAND = 48, 4, 2
DROP_PATH = 0.1  # stochastic depth of the last block
SEGMENTS = 4  # multi-temporal parallelisation: 2 ** (path - 1) with path = 3


class Mamba(nn.Module):
    """Unidirectional Mamba-1 mixer (mamba-ssm's ``Mamba``): (B, L, d_model) -> (B, L, d_model).

    Same parameter names and shapes as mamba-ssm; :class:`lqrppg.models.mamba.BiMamba` is the
    bidirectional version of the same computation.
    """

    fused_kernel = True  # one fused CUDA kernel in mamba-ssm: cost profilers cannot see inside

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2) -> None:
        super().__init__()
        self.d_state = d_state
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)
        #: The scan implementation, swappable like BiMamba's (the cost benchmark wraps it to count it).
        self.scan_fn: Callable[..., Tensor] = selective_scan
        # mamba-ssm's Δ init: weight U(±dt_rank^-0.5); softplus(bias) log-uniform in [1e-3, 1e-1].
        nn.init.uniform_(self.dt_proj.weight, -(self.dt_rank**-0.5), self.dt_rank**-0.5)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)).clamp(min=1e-4)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def forward(self, x: Tensor) -> Tensor:
        length = x.shape[1]
        u, z = self.in_proj(x).transpose(1, 2).chunk(2, dim=1)  # (B, d_inner, L) each
        u = F.silu(self.conv1d(u)[..., :length])  # causal depthwise conv
        dt, B, C = torch.split(self.x_proj(u.transpose(1, 2)), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        y = self.scan_fn(
            u, F.linear(dt, self.dt_proj.weight).transpose(1, 2), -torch.exp(self.A_log.float()),
            B.transpose(1, 2), C.transpose(1, 2), self.D, z=z, delta_bias=self.dt_proj.bias, delta_softplus=True,
        )  # fmt: skip
        return self.out_proj(y.transpose(1, 2))


class MambaLayer(nn.Module):
    """LayerNorm then Mamba (upstream ``MambaLayer``; no residual here, the block adds it)."""

    def __init__(self, dim: int, bidirectional: bool = False) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        mixer = BiMamba if bidirectional else Mamba
        self.mamba = mixer(dim, d_state=D_STATE, d_conv=D_CONV, expand=EXPAND)

    def forward(self, x: Tensor) -> Tensor:
        return self.mamba(self.norm(x))


class FrequencyFFN(nn.Module):
    """Expand, filter in the frequency domain over time, project back (``Frequencydomain_FFN``)."""

    def __init__(self, dim: int, mlp_ratio: int) -> None:
        super().__init__()
        hidden = dim * mlp_ratio
        # Full matrices as upstream; only their diagonals act (see the module docstring).
        self.r = nn.Parameter(0.02 * torch.randn(hidden, hidden))
        self.i = nn.Parameter(0.02 * torch.randn(hidden, hidden))
        self.rb = nn.Parameter(0.02 * torch.randn(hidden))
        self.ib = nn.Parameter(0.02 * torch.randn(hidden))
        self.fc1 = nn.Sequential(nn.Conv1d(dim, hidden, 1, bias=False), nn.BatchNorm1d(hidden), nn.ReLU())
        self.fc2 = nn.Sequential(nn.Conv1d(hidden, dim, 1, bias=False), nn.BatchNorm1d(dim))

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc1(x.transpose(1, 2)).transpose(1, 2)  # (B, L, hidden)
        spec = torch.fft.fft(x.float(), dim=1, norm="ortho")
        r, i = self.r.diagonal(), self.i.diagonal()
        real = F.relu(spec.real * r - spec.imag * i + self.rb)
        imag = F.relu(spec.imag * r + spec.real * i + self.ib)
        x = torch.fft.ifft(torch.complex(real, imag), dim=1, norm="ortho").real
        return self.fc2(x.transpose(1, 2)).transpose(1, 2)


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a sample's branch with probability p, else scale by 1/(1-p)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class MultiTemporalMambaBlock(nn.Module):
    """Upstream ``Block_mamba``: multi-temporal Mamba then the frequency FFN, both post-normed."""

    def __init__(self, dim: int, mlp_ratio: int, drop_path: float = 0.0, bidirectional: bool = False) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn = MambaLayer(dim, bidirectional)
        self.mlp = FrequencyFFN(dim, mlp_ratio)
        self.drop_path = DropPath(drop_path)

    def multi_temporal(self, x: Tensor) -> Tensor:
        """Mamba over the sequence and over its copies starting at quarters 1..3, averaged."""
        b, length, _ = x.shape
        s = length // SEGMENTS
        copies = [x] + [torch.cat([x[:, i * s :], x[:, length - i * s :]], dim=1) for i in range(1, SEGMENTS)]
        y = self.attn(torch.cat(copies, dim=0)).split(b, dim=0)  # SEGMENTS x (B, L, C)
        quarters = [y[0][:, :s]]
        for q in range(1, SEGMENTS):
            # copy j + 1 began (j + 1) quarters late: its quarter q - j - 1 is our quarter q
            covering = [y[0][:, q * s : (q + 1) * s]] + [y[j + 1][:, (q - j - 1) * s : (q - j) * s] for j in range(q)]
            quarters.append(torch.stack(covering).sum(0) / (q + 1))
        quarters.append(y[0][:, SEGMENTS * s :])  # the remainder when L is not a multiple of 4
        return torch.cat(quarters, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.norm1(self.multi_temporal(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def _rescale_out_proj(module: nn.Module, n_layer: int) -> None:
    """Upstream's GPT-2-style residual scaling: each Mamba's out_proj kaiming-uniform / √n_layer."""
    for name, p in module.named_parameters():
        if name == "out_proj.weight":
            nn.init.kaiming_uniform_(p, a=math.sqrt(5))
            with torch.no_grad():
                p /= math.sqrt(n_layer)


@register_model("rhythmmamba")
class RhythmMamba(nn.Module):
    """RhythmMamba; input (B, 3, T, H, W) Standardized frames, output rPPG (B, T).

    ``bidirectional=True`` swaps each unidirectional Mamba for :class:`BiMamba` (5.67 M
    parameters instead of 4.92 M). ``depth`` (default 24, the published model) and
    ``drop_path`` (default 0.1) are upstream's; smaller values are for tests.
    """

    input_norm = "standardized"  # RhythmMamba configs: DATA_TYPE ['Standardized']
    label_norm = "standardized"  # LABEL_TYPE Standardized
    label_type = "continuous"
    loss = "rhythm"
    published_input = (160, 128, 128)  # 160-frame chunks of 128x128 faces

    @classmethod
    def check_input(cls, frames: int, height: int, width: int) -> None:
        """Raise ValueError unless (frames, height, width) is a valid input size."""
        if frames < 2 * SEGMENTS or frames % 2:
            raise ValueError(
                f"RhythmMamba needs an even frame count of at least {2 * SEGMENTS} (stem3 halves T and the "
                f"output is upsampled x2; {SEGMENTS} multi-temporal segments of T/2), got {frames}"
            )
        if height < 8 or width < 8 or height % 8 or width % 8:
            raise ValueError(
                f"RhythmMamba needs height and width divisible by 8 (the fusion stem downsamples by 8), "
                f"got {height}x{width}"
            )

    def __init__(
        self,
        frames: int = 160,
        height: int = 128,
        width: int = 128,
        *,
        bidirectional: bool = False,
        depth: int = DEPTH,
        drop_path: float = DROP_PATH,
    ) -> None:
        super().__init__()
        self.check_input(frames, height, width)
        self.frames, self.height, self.width = frames, height, width
        self.embed_dim = EMBED_DIM
        self.bidirectional = bidirectional

        self.Fusion_Stem = FusionStem(EMBED_DIM // 4)
        self.stem3 = nn.Sequential(
            nn.Conv3d(EMBED_DIM // 4, EMBED_DIM, kernel_size=(2, 5, 5), stride=(2, 1, 1), padding=(0, 2, 2)),
            nn.BatchNorm3d(EMBED_DIM),
        )
        if depth < 1:
            raise ValueError(f"RhythmMamba needs at least one block, got depth={depth}")
        rates = [0.0] + torch.linspace(0, drop_path, depth).tolist()  # upstream's inter_dpr
        self.blocks = nn.ModuleList(
            MultiTemporalMambaBlock(EMBED_DIM, MLP_RATIO, rates[i], bidirectional) for i in range(depth)
        )
        self.upsample = nn.Upsample(scale_factor=2)
        self.ConvBlockLast = nn.Conv1d(EMBED_DIM, 1, kernel_size=1)

        self.apply(segm_init_weights)
        self.apply(partial(_rescale_out_proj, n_layer=depth))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"RhythmMamba expects (B, 3, T, H, W) input, got {tuple(x.shape)}")
        b, _, t, h, w = x.shape
        self.check_input(t, h, w)
        f = self.Fusion_Stem(x.permute(0, 2, 1, 3, 4))  # (B*T, 24, H/8, W/8)
        f = f.reshape(b, t, EMBED_DIM // 4, h // 8, w // 8).permute(0, 2, 1, 3, 4)
        f = self.stem3(f)  # (B, 96, T/2, H/8, W/8)
        mask = torch.sigmoid(f)
        mask = mask / mask.sum(dim=(3, 4), keepdim=True) * (mask.shape[3] * mask.shape[4] * 0.5)
        tokens = (f * mask).mean(dim=(3, 4)).transpose(1, 2)  # (B, T/2, 96)
        for block in self.blocks:
            tokens = block(tokens)
        rppg = self.upsample(tokens.transpose(1, 2))  # (B, 96, T)
        return self.ConvBlockLast(rppg).squeeze(1)


def rhythm_objective(
    output: Any, batch: Mapping[str, Tensor], fs: float, progress: float = 0.0
) -> tuple[Tensor, dict[str, float]]:
    """RhythmMamba's Hybrid_Loss against ``batch["label"]`` (:func:`lqrppg.losses.rhythm_loss`)."""
    return rhythm_loss(prediction(output), batch["label"], fs)


register_objective("rhythm", rhythm_objective)
