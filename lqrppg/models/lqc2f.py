"""The LQ-rPPG coarse-to-fine (C2F) video model (method.md §3).

Pipeline, for a clip (B, 3, T, H, W) of Standardized frames:

    diff-fusion stem (per frame)       (B*T, 16, H/8, W/8)       §3.2
    Conv3d 16->64 k(3,5,5) + BN3d      (B, 64, T, H/8, W/8)      §3.3, stride 1: keeps all T
    sigmoid attention mask, mean pool  (B, T, 64) + pos. emb.    §3.3
    4 x [Bi-Mamba block -> head -> n-bit soft quantisation -> projection], dense residual  §3.4
    final estimator -> 5-bit soft quantisation -> z-normalise    §3.5

Stage n is supervised with n-bit pseudo labels: its head gives one scalar per frame, the
logits are minus its distance to each of the 2**n frozen codebook values, and the soft
reconstruction (softmax-weighted codebook mean) is projected back to 64 channels and fed
forward to every later stage. The 2+4+8+16+32 = 62 codebook scalars are buffers (saved in
the state dict, never trained), set with :meth:`LQC2F.set_codebooks` from the LQ stage.

With T = 160 and 128x128 input the model has 405,453 trainable parameters, the count of
the authors' released checkpoint (method.md §7).

Two options (``models.<entry>.options`` in the config) exist for the ablations; the defaults are
the paper's model:

    bits          labels of at most this many bits: stage n uses the min(n, bits)-bit codebook and
                  pseudo label, the final estimator the ``bits``-bit one (5 = the paper)
    hierarchical  false: only the final estimator is supervised (the stages still run and feed
                  their reconstructions forward, but get no loss of their own)

``c2f-continuous`` (:class:`C2FContinuous`) is the same backbone trained on the continuous label
instead of pseudo labels: no codebooks, every head's raw score is its reconstruction, and each
supervised output gets the hybrid loss against y_bpf (the band-passed, chunk-z-scored label the
quantizers would have quantized). It isolates what quantization adds.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn as nn
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from lqrppg.losses import hybrid_loss
from lqrppg.models import register_model
from lqrppg.models.mamba import BiMambaBlock
from lqrppg.objectives import register_objective

__all__ = ["C2FContinuous", "C2FOptions", "C2FOutput", "LQC2F", "c2f_continuous_loss", "soft_quantize"]

DIM = 64  # token width of the Mamba stages
STEM_DIM = DIM // 4  # width of the diff-fusion stem, as in RhythmMamba
N_STAGES = 4  # Bi-Mamba stages, supervised by the 1..4-bit labels; the estimator takes 5 bits
N_LEVELS = 5
CODEBOOK_SIZES = tuple(2**n for n in range(1, N_LEVELS + 1))  # 2, 4, 8, 16, 32
Z_EPS = 1e-6  # added to the std in the per-chunk z-normalisation of the output
CHANNELS_LAST = torch.channels_last


class C2FOutput(NamedTuple):
    """What :class:`LQC2F` returns; the lists are ordered by bit depth, 1 bit first."""

    rppg: Tensor  # (B, T): the 5-bit soft reconstruction, z-normalised per chunk
    logits: list[Tensor]  # 5 x (B, T, 2**n): distance logits -|s - c_k|, targets of the CE loss
    recon: list[Tensor]  # 5 x (B, T): soft reconstructions r_n, targets of the hybrid loss
    levels: tuple[int, ...] | None = None  # bit depth of each supervised output (None: 1, 2, ... in order)


class C2FOptions(BaseModel):
    """Ablation switches of the C2F model (the defaults are the paper's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bits: int = Field(5, ge=1, le=5, description="Most bits of any label used: stage n uses min(n, bits) bits.")
    hierarchical: bool = Field(True, description="Supervise every stage (true) or the final estimator only.")


def soft_quantize(score: Tensor, codebook: Tensor) -> tuple[Tensor, Tensor]:
    """Distance logits -|s - c_k| (no temperature) and the soft reconstruction sum_k p_k c_k."""
    logits = -(score.unsqueeze(-1) - codebook).abs()  # (B, T, K)
    recon = (logits.softmax(-1) * codebook).sum(-1)  # (B, T)
    return logits, recon


class DifferenceConv2d(nn.Conv2d):
    """The stem's 7x7 convolution of four stacked frame differences, fed the differences once each.

    RhythmMamba convolves, for every frame t, the 12 channels [d[t], d[t+1], d[t+2], d[t+3]]
    (four consecutive 3-channel differences). Convolution is linear, so that equals
    bias + sum_j conv_j(d[t+j]), where conv_j holds the weight's input channels 3j..3j+2: each
    difference frame is convolved once with all four (a 3 -> 4*C_out convolution of T+3 frames) and
    the shifted results are added. Same layer, same weights and state-dict keys, same values up to
    float rounding; without the 12-channel tensor, whose channels-last copy cost more than the
    convolution itself (CPU, 128x128, 160 frames: stem 0.39 s -> 0.25 s).
    """

    thop_as = nn.Conv2d  # what a profiler sees on the authors' code: a Conv2d of the 12 stacked channels

    def forward(self, d: Tensor) -> Tensor:
        """(B, T + n - 1, H, W, C) differences in frame-major, channels-last memory -> (B*T, C_out, H', W')."""
        b, padded_t, h, w, c = d.shape
        n_shift = self.in_channels // c
        t = padded_t - n_shift + 1
        weight = torch.cat(self.weight.split(c, dim=1))  # (n_shift*C_out, C, k, k): conv_0, ..., conv_{n-1}
        y = self._conv_forward(channels_last_frames(d), weight, None)
        y = y.reshape(b, padded_t, n_shift, self.out_channels, *y.shape[-2:])
        out = sum(y[:, j : j + t, j] for j in range(n_shift)) + self.bias.view(1, 1, -1, 1, 1)
        return out.reshape(b * t, self.out_channels, *y.shape[-2:])


def channels_last_frames(a: Tensor) -> Tensor:
    """(B, T, H, W, C) -> (B*T, C, H, W) in channels-last memory (a view when ``a`` is contiguous)."""
    b, t, h, w, c = a.shape
    return a.reshape(b * t, h, w, c).permute(0, 3, 1, 2)


def _conv_bn_relu_pool(c_in: int, c_out: int, stride: int, conv: type[nn.Conv2d] = nn.Conv2d) -> nn.Sequential:
    return nn.Sequential(
        conv(c_in, c_out, kernel_size=7, stride=stride, padding=3),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=2, stride=2),
    )


class FusionStem(nn.Module):
    """RhythmMamba's diff-fusion stem: (B, T, 3, H, W) -> (B*T, dim, H/8, W/8).

    Submodule names (stem11/12/21/22) follow RhythmMamba's ``Fusion_Stem``.
    """

    def __init__(self, dim: int = STEM_DIM) -> None:
        super().__init__()
        self.stem11 = _conv_bn_relu_pool(3, dim // 2, stride=2)  # raw frame -> H/4
        self.stem12 = _conv_bn_relu_pool(12, dim // 2, stride=2, conv=DifferenceConv2d)  # 4 differences -> H/4
        self.stem21 = _conv_bn_relu_pool(dim // 2, dim, stride=1)  # path 1: raw + diff -> H/8
        self.stem22 = _conv_bn_relu_pool(dim // 2, dim, stride=1)  # path 2: diff only -> H/8

    def forward(self, x: Tensor) -> Tensor:
        t = x.shape[1]
        # Frames are handled in channels-last (B, T, H, W, C) memory: the 7x7 convolutions on few
        # channels run ~4x faster in that layout on the CPU (oneDNN; stem12 at 160x12x128x128:
        # 0.21 s -> 0.05 s).
        frames = x.permute(0, 1, 3, 4, 2)  # a view
        # Repeat each edge frame twice, so padded[i] = x(clamp(i - 2)); then
        # d[i] = padded[i + 1] - padded[i] = x(i - 1) - x(i - 2), and the four differences
        # x(t-1)-x(t-2), x(t)-x(t-1), x(t+1)-x(t), x(t+2)-x(t+1) are d[t], ..., d[t + 3].
        index = torch.arange(-2, t + 2, device=x.device).clamp_(0, t - 1)
        padded = frames.index_select(1, index)  # (B, T + 4, H, W, C)
        diff = self.stem12(padded[:, 1:] - padded[:, :-1])  # DifferenceConv2d takes the T + 3 differences
        raw = self.stem11(channels_last_frames(padded[:, 2 : t + 2]))
        path1 = self.stem21(0.5 * raw + 0.5 * diff)
        path2 = self.stem22(diff)
        return (0.5 * path1 + 0.5 * path2).contiguous()


def _lecun_normal_(weight: Tensor) -> None:
    """timm's lecun_normal_: truncated normal (±2σ) with variance 1/fan_in after truncation."""
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978  # std of N(0,1) truncated at ±2
    nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


def _init_weights(m: nn.Module) -> None:
    """The authors' init (method.md §3.6), applied after the Mamba blocks are built.

    It therefore also overwrites Mamba's own init of its Linear layers: the Δ-projection
    bias becomes 0 (Δ starts near softplus(0) = 0.69 instead of in [1e-3, 1e-1]). Conv1d,
    Conv3d and BatchNorm3d keep PyTorch's defaults; A_log and D are not touched.
    """
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        _lecun_normal_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def _recheck_codebooks(module: LQC2F, _incompatible_keys: object) -> None:
    """After load_state_dict the codebooks may have changed: check them again on next forward."""
    module._codebooks_checked = False


@register_model("lqrppg")
class LQC2F(nn.Module):
    """LQ-rPPG's C2F model. Input (B, 3, T, H, W) float, Standardized frames.

    ``frames`` fixes T (the positional embedding is T x 64); H and W must be multiples of 8.
    Call :meth:`set_codebooks` (or load a state dict that holds them) before ``forward``.
    """

    input_norm = "standardized"  # frames z-scored over the whole video (method.md §3.1)
    label_norm = "standardized"
    label_type = "quantized"  # trained on the frozen LQ pseudo labels, never the raw PPG
    published_input = (160, 128, 128)  # method.md §3.1 and §7
    Options = C2FOptions
    quantized = True

    @classmethod
    def check_input(cls, frames: int, height: int, width: int) -> None:
        """Raise ValueError unless (frames, height, width) is a valid input size."""
        if frames < 2:
            raise ValueError(f"LQC2F needs at least 2 frames per chunk (it z-scores over time), got {frames}")
        if height < 8 or width < 8 or height % 8 or width % 8:
            raise ValueError(
                f"LQC2F needs height and width divisible by 8 (the stem downsamples by 8), got {height}x{width}"
            )

    def __init__(self, frames: int = 160, height: int = 128, width: int = 128, **options: Any) -> None:
        super().__init__()
        self.check_input(frames, height, width)
        self.frames, self.height, self.width = frames, height, width
        self.options = C2FOptions(**options)
        # Bit depth of each stage's label and of the final estimator's (the paper: 1, 2, 3, 4 | 5).
        self.stage_bits = tuple(min(n, self.options.bits) for n in range(1, N_STAGES + 1))
        self.final_bits = self.options.bits

        self.stem = FusionStem(STEM_DIM)
        self.stem3 = nn.Sequential(  # stride 1 in time: all T steps are kept (unlike RhythmMamba)
            nn.Conv3d(STEM_DIM, DIM, kernel_size=(3, 5, 5), stride=1, padding=(1, 2, 2)),
            nn.BatchNorm3d(DIM),
        )
        self.pos_embed = nn.Parameter(torch.zeros(1, frames, DIM))
        self.blocks = nn.ModuleList(BiMambaBlock(DIM, d_state=48, d_conv=4, expand=2) for _ in range(N_STAGES))
        self.heads = nn.ModuleList(nn.Conv1d(DIM, 1, kernel_size=1) for _ in range(N_STAGES))
        self.projections = nn.ModuleList(nn.Conv1d(1, DIM, kernel_size=1) for _ in range(N_STAGES))
        self.estimator = nn.Sequential(
            nn.Conv1d(DIM, DIM, 3, padding=1),
            nn.GELU(),
            nn.Conv1d(DIM, DIM, 3, padding=1),
            nn.GELU(),
            nn.Conv1d(DIM, DIM, 3, padding=1),
            nn.Conv1d(DIM, 1, 3, padding=1),
        )
        # Frozen codebooks: buffers, so they travel with the state dict but are never trained.
        # NaN until set: forgetting set_codebooks must fail loudly, not train on a made-up grid.
        for n, size in enumerate(CODEBOOK_SIZES, start=1):
            self.register_buffer(f"codebook_{n}", torch.full((size,), float("nan")))
        self._codebooks_checked = False
        self.register_load_state_dict_post_hook(_recheck_codebooks)

        self.apply(_init_weights)

    # -- codebooks ---------------------------------------------------------------

    def codebooks(self) -> list[Tensor]:
        """The five codebook buffers, 1 bit first."""
        return [getattr(self, f"codebook_{n}") for n in range(1, N_LEVELS + 1)]

    def set_codebooks(self, codebooks: list[Tensor]) -> None:
        """Copy the frozen LQ codebooks in, in the quantizers' own code order.

        Accepts shapes (K,) or (K, 1) (the LQ embedding weight). The order is kept, not
        sorted: the pseudo-label indices k_n refer to it.
        """
        if len(codebooks) != N_LEVELS:
            raise ValueError(f"set_codebooks needs {N_LEVELS} codebooks (1..5 bits), got {len(codebooks)}")
        values = [torch.as_tensor(c).detach().reshape(-1) for c in codebooks]
        for n, (c, size) in enumerate(zip(values, CODEBOOK_SIZES, strict=True), start=1):
            if c.numel() != size:
                raise ValueError(f"codebook {n} ({n}-bit) needs {size} values, got {c.numel()}")
            if not torch.isfinite(c).all():
                raise ValueError(f"codebook {n} ({n}-bit) has non-finite values")
        with torch.no_grad():
            for buffer, c in zip(self.codebooks(), values, strict=True):
                buffer.copy_(c.to(buffer))
        self._codebooks_checked = True

    def _check_codebooks(self) -> None:
        if self._codebooks_checked or not self.quantized:
            return
        for n, c in enumerate(self.codebooks(), start=1):
            if not torch.isfinite(c).all():
                raise RuntimeError(
                    f"LQC2F codebook_{n} is not set: call set_codebooks() with the 5 frozen LQ "
                    "codebooks, or load a state dict that contains them"
                )
        self._codebooks_checked = True

    # -- forward -----------------------------------------------------------------

    def forward(self, x: Tensor) -> C2FOutput:
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"LQC2F expects (B, 3, T, H, W) input, got {tuple(x.shape)}")
        b, _, t, h, w = x.shape
        if t != self.frames:
            raise ValueError(f"LQC2F was built for {self.frames} frames (positional embedding), got {t}")
        self.check_input(t, h, w)
        self._check_codebooks()

        # Stem and spatio-temporal embedding (§3.2-3.3).
        f = self.stem(x.permute(0, 2, 1, 3, 4))  # (B*T, 16, H/8, W/8)
        f = f.reshape(b, t, STEM_DIM, h // 8, w // 8).permute(0, 2, 1, 3, 4)
        f = self.stem3(f)  # (B, 64, T, H/8, W/8)
        mask = torch.sigmoid(f)  # soft spatial attention, normalised to mean 0.5 per channel & frame
        mask = mask / mask.sum(dim=(3, 4), keepdim=True) * (mask.shape[3] * mask.shape[4] * 0.5)
        tokens = (f * mask).mean(dim=(3, 4)).transpose(1, 2)  # (B, T, 64)

        # Coarse-to-fine stages with the cumulative dense residual (§3.4):
        # h_n = M_n(h_{n-1}) + P_n + ... + P_1.
        hidden = tokens + self.pos_embed
        dense = torch.zeros_like(hidden)
        logits, recon = [], []
        for block, head, project, bits in zip(self.blocks, self.heads, self.projections, self.stage_bits):
            mixed = block(hidden)
            score = head(mixed.transpose(1, 2)).squeeze(1)  # (B, T)
            level_logits, level_recon = self._quantize(score, bits)
            dense = dense + project(level_recon.unsqueeze(1)).transpose(1, 2)
            hidden = mixed + dense
            logits.append(level_logits)
            recon.append(level_recon)

        # Final estimator and its (5-bit) output (§3.5).
        score = self.estimator(hidden.transpose(1, 2)).squeeze(1)
        level_logits, level_recon = self._quantize(score, self.final_bits)
        logits.append(level_logits)
        recon.append(level_recon)
        mean = level_recon.mean(-1, keepdim=True)
        std = level_recon.std(-1, keepdim=True)  # unbiased, torch's default
        rppg = (level_recon - mean) / (std + Z_EPS)
        levels = (*self.stage_bits, self.final_bits)
        if not self.options.hierarchical:  # ablation: the loss sees the final output only
            logits, recon, levels = logits[-1:], recon[-1:], levels[-1:]
        return C2FOutput(rppg=rppg, logits=logits, recon=recon, levels=levels)

    def _quantize(self, score: Tensor, bits: int) -> tuple[Tensor | None, Tensor]:
        """(logits, soft reconstruction) of a head's score with the ``bits``-bit codebook."""
        return soft_quantize(score, self.codebooks()[bits - 1])


@register_model("c2f-continuous")
class C2FContinuous(LQC2F):
    """The C2F backbone on the continuous label (ablation): same layers, no codebooks.

    Every head's raw score is its reconstruction; the supervised outputs (every stage and the
    final estimator, or the final one only) get the hybrid loss against y_bpf.
    """

    label_type = "continuous"
    label_norm = "bandpassed"  # y_bpf: what the quantizers of LQ-rPPG would have quantized
    loss = "c2f_continuous"
    quantized = False

    def _quantize(self, score: Tensor, bits: int) -> tuple[Tensor | None, Tensor]:
        return None, score


def c2f_continuous_loss(
    output: C2FOutput, batch: dict[str, Tensor], fs: float, progress: float = 0.0
) -> tuple[Tensor, dict[str, float]]:
    """Σ over the supervised outputs of hybrid(r_n, y_bpf): the C2F reconstruction loss, unquantized."""
    rec = sum(hybrid_loss(recon, batch["label"], fs) for recon in output.recon)
    return rec, {"rec": float(rec.detach())}


register_objective("c2f_continuous", c2f_continuous_loss)
