"""PhysNet (Yu et al., BMVC 2019), the 3D-CNN encoder-decoder baseline.

This is rPPG-Toolbox's ``PhysNet_padding_Encoder_Decoder_MAX``, layer for layer and with
the same submodule names, so the toolbox's released PhysNet weights load (after stripping
DataParallel's ``module.`` prefix). About 0.77 M parameters, independent of the input size.

    (B, 3, T, H, W) --ConvBlock1, pool(1,2,2)-->  16 x T   x H/2
        ConvBlock2, ConvBlock3, pool(2,2,2)   -->  64 x T/2 x H/4
        ConvBlock4, ConvBlock5, pool(2,2,2)   -->  64 x T/4 x H/8
        ConvBlock6, ConvBlock7, pool(1,2,2)   -->  64 x T/4 x H/16
        ConvBlock8, ConvBlock9
        upsample, upsample2 (transposed, x2 each in time) -> 64 x T x H/16
        spatial mean, ConvBlock10 (1x1x1)     -->  (B, T)

The toolbox trains it on DiffNormalized frames with DiffNormalized labels and a negative
Pearson loss; the model class advertises that contract below.
"""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from lqrppg.models import register_model

__all__ = ["PhysNet"]


def _conv_bn_relu(c_in: int, c_out: int, kernel: tuple[int, int, int], padding: tuple[int, int, int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, kernel, stride=1, padding=padding),
        nn.BatchNorm3d(c_out),
        nn.ReLU(inplace=True),
    )


def _upsample_time() -> nn.Sequential:
    """Transposed conv doubling T (kernel 4, stride 2, padding 1), BN, ELU."""
    return nn.Sequential(
        nn.ConvTranspose3d(64, 64, kernel_size=(4, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0)),
        nn.BatchNorm3d(64),
        nn.ELU(),
    )


@register_model("physnet")
class PhysNet(nn.Module):
    """PhysNet; input (B, 3, T, H, W) DiffNormalized frames, output rPPG (B, T)."""

    input_norm = "diff_normalized"  # the toolbox's standard PhysNet configs
    label_norm = "diff_normalized"
    label_type = "continuous"  # regresses the (normalised) contact PPG directly
    loss = "neg_pearson"
    published_input = (128, 128, 128)  # Yu et al. 2019: 128-frame clips of 128x128 faces

    @classmethod
    def check_input(cls, frames: int, height: int, width: int) -> None:
        """Raise ValueError unless (frames, height, width) is a valid input size."""
        if frames < 4 or frames % 4:
            # Two temporal max-pools halve T and two transposed convs double it back; any
            # other T comes back with a different length (the toolbox then silently resamples).
            raise ValueError(f"PhysNet needs a frame count divisible by 4 (two temporal poolings), got {frames}")
        if height < 16 or width < 16:
            raise ValueError(f"PhysNet needs height and width of at least 16 (four 2x poolings), got {height}x{width}")

    def __init__(self, frames: int = 128, height: int = 72, width: int = 72) -> None:
        super().__init__()
        self.check_input(frames, height, width)
        self.frames, self.height, self.width = frames, height, width

        self.ConvBlock1 = _conv_bn_relu(3, 16, (1, 5, 5), (0, 2, 2))
        self.ConvBlock2 = _conv_bn_relu(16, 32, (3, 3, 3), (1, 1, 1))
        self.ConvBlock3 = _conv_bn_relu(32, 64, (3, 3, 3), (1, 1, 1))
        self.ConvBlock4 = _conv_bn_relu(64, 64, (3, 3, 3), (1, 1, 1))
        self.ConvBlock5 = _conv_bn_relu(64, 64, (3, 3, 3), (1, 1, 1))
        self.ConvBlock6 = _conv_bn_relu(64, 64, (3, 3, 3), (1, 1, 1))
        self.ConvBlock7 = _conv_bn_relu(64, 64, (3, 3, 3), (1, 1, 1))
        self.ConvBlock8 = _conv_bn_relu(64, 64, (3, 3, 3), (1, 1, 1))
        self.ConvBlock9 = _conv_bn_relu(64, 64, (3, 3, 3), (1, 1, 1))
        self.upsample = _upsample_time()
        self.upsample2 = _upsample_time()
        self.ConvBlock10 = nn.Conv3d(64, 1, kernel_size=1)

        self.MaxpoolSpa = nn.MaxPool3d((1, 2, 2), stride=(1, 2, 2))
        self.MaxpoolSpaTem = nn.MaxPool3d((2, 2, 2), stride=2)
        # The toolbox pools to (frames, 1, 1); with T divisible by 4 the decoder already
        # restores T, so pooling only space is the same and works for any valid T.
        self.poolspa = nn.AdaptiveAvgPool3d((None, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"PhysNet expects (B, 3, T, H, W) input, got {tuple(x.shape)}")
        self.check_input(*x.shape[2:])
        length = x.shape[2]
        x = self.MaxpoolSpa(self.ConvBlock1(x))
        x = self.MaxpoolSpaTem(self.ConvBlock3(self.ConvBlock2(x)))
        x = self.MaxpoolSpaTem(self.ConvBlock5(self.ConvBlock4(x)))
        x = self.MaxpoolSpa(self.ConvBlock7(self.ConvBlock6(x)))
        x = self.ConvBlock9(self.ConvBlock8(x))
        x = self.upsample2(self.upsample(x))  # T/4 -> T
        x = self.ConvBlock10(self.poolspa(x))  # (B, 1, T, 1, 1)
        return x.reshape(-1, length)
