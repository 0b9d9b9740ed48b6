"""DeepPhys (Chen & McDuff, ECCV 2018), the two-branch convolutional attention network.

A per-frame 2D CNN. The motion branch sees the normalised difference of consecutive frames,
the appearance branch the (standardized) frame itself; after each conv pair a 1x1 conv on the
appearance features gives a soft spatial mask that gates the motion features, so the motion
branch looks at skin. The network regresses the *derivative* of the pulse, one value per frame.

    (B, 6, T, H, W) -> (B*T, 6, H, W): channels 0-2 DiffNormalized, 3-5 Standardized

        motion (diff, 3 ch)                        appearance (frame, 3 ch)
        motion_conv1 3x3 pad 1, tanh   32 x H      apperance_conv1 3x3 pad 1, tanh
        motion_conv2 3x3 valid, tanh   32 x H-2    apperance_conv2 3x3 valid, tanh ---.
               x  <--- mask 1 = attn_mask_1(sigmoid(apperance_att_conv1 1x1)) <-------'
        avg_pooling_1 2x2, dropout_1   32 x (H-2)/2   avg_pooling_2 2x2, dropout_2
        motion_conv3 3x3 pad 1, tanh   64              apperance_conv3 3x3 pad 1, tanh
        motion_conv4 3x3 valid, tanh   64 x h          apperance_conv4 3x3 valid, tanh -.
               x  <--- mask 2 = attn_mask_2(sigmoid(apperance_att_conv2 1x1)) <-------'
        avg_pooling_3 2x2, dropout_3   64 x h/2 x w/2
        flatten, final_dense_1 (-> 128), tanh, dropout_4, final_dense_2 (-> 1)
    (B*T, 1) -> (B, T)

The attention mask is the sigmoid map scaled to mean 1/2 over the image:
``mask = g * H*W / (2 * sum(g))``. Dropout 0.25 after the poolings, 0.5 before the last layer.

Source: rPPG-Toolbox ``neural_methods/model/DeepPhys.py`` (ubicomplab/rPPG-Toolbox), layer for
layer and with the same submodule names (including its ``apperance`` spelling), so the toolbox's
released DeepPhys weights load (after stripping DataParallel's ``module.`` prefix). The toolbox
hard-codes the width of ``final_dense_1`` per image size (36 -> 3136, 72 -> 16384, 96 -> 30976,
128 -> 57600); here it is computed from (height, width), which gives the same numbers and works
for any size, square or not. Its trainer flattens the batch to frames, trains with MSELoss on the
DiffNormalized label, and its standard configs use 180-frame chunks of 72x72 faces.

Size: 2.23 M parameters at 72x72, almost all in ``final_dense_1`` (0.53 M at 36x36, 7.50 M at
128x128). The 1.98 M of method.md §10's cost table is RhythmFormer's ``cost_cal.py`` setting:
128x128 with the last pooling widened to 4x4 (``final_pool=4``), 1,974,691 parameters.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from lqrppg.models import register_model

__all__ = [
    "AttentionMask",
    "DeepPhys",
    "check_image_size",
    "dense_features",
    "feature_side",
    "min_image_size",
    "to_frames",
]

FILTERS1, FILTERS2 = 32, 64  # channels of the first and the second conv pair
DENSE = 128  # width of the hidden dense layer
DROPOUT_CONV, DROPOUT_DENSE = 0.25, 0.5


def feature_side(n: int, final_pool: int = 2) -> int:
    """Side of the last feature map for an input side ``n`` (0 when the map is empty).

    Each conv pair keeps the side (3x3, padding 1) and then loses 2 (3x3, no padding); a
    pooling floors the side divided by its size.
    """
    n = n - 2  # motion_conv2
    n = n // 2  # avg_pooling_1
    n = n - 2  # motion_conv4
    return max(n // final_pool, 0)  # avg_pooling_3


def dense_features(height: int, width: int, final_pool: int = 2) -> int:
    """Input width of ``final_dense_1``: FILTERS2 x the last feature map (toolbox 72 -> 16384)."""
    return FILTERS2 * feature_side(height, final_pool) * feature_side(width, final_pool)


def min_image_size(final_pool: int = 2) -> int:
    """Smallest side that leaves a non-empty last feature map (10 with the toolbox's 2x2 pool)."""
    n = 1
    while feature_side(n, final_pool) < 1:
        n += 1
    return n


def check_image_size(model: str, height: int, width: int, final_pool: int = 2) -> None:
    """ValueError unless (height, width) leaves a non-empty feature map for the dense layer."""
    smallest = min_image_size(final_pool)
    if height < smallest or width < smallest:
        raise ValueError(
            f"{model} needs height and width of at least {smallest} (two valid 3x3 convolutions and two "
            f"poolings leave an empty feature map for the dense layer below that), got {height}x{width}"
        )


def to_frames(x: Tensor) -> Tensor:
    """(B, C, T, H, W) -> (B*T, C, H, W), frames of one clip consecutive."""
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


class AttentionMask(nn.Module):
    """Soft attention mask: ``g`` scaled so that its mean over each image is 1/2."""

    def forward(self, g: Tensor) -> Tensor:
        h, w = g.shape[-2:]
        return g / g.sum(dim=(2, 3), keepdim=True) * (h * w * 0.5)


@register_model("deepphys")
class DeepPhys(nn.Module):
    """DeepPhys; input (B, 6, T, H, W) DiffNormalized + Standardized frames, output (B, T)."""

    input_norm = "diff_and_standardized"  # the toolbox's DATA_TYPE ['DiffNormalized', 'Standardized']
    label_norm = "diff_normalized"  # regresses the frame-to-frame difference of the pulse
    label_type = "continuous"
    loss = "mse"  # the toolbox's DeepPhysTrainer uses torch.nn.MSELoss
    published_input = (180, 72, 72)  # the toolbox's standard configs: CHUNK_LENGTH 180, RESIZE 72x72

    @classmethod
    def check_input(cls, frames: int, height: int, width: int, final_pool: int = 2) -> None:
        """Raise ValueError unless (frames, height, width) is a valid input size."""
        if frames < 1:
            raise ValueError(f"DeepPhys needs at least 1 frame, got {frames}")
        check_image_size("DeepPhys", height, width, final_pool)

    def __init__(self, frames: int = 180, height: int = 72, width: int = 72, *, final_pool: int = 2) -> None:
        """``final_pool``: size of the last average pooling; 2 in the toolbox (keep it), 4 in
        RhythmFormer's cost script at 128x128 (method.md §10's 1.98 M)."""
        super().__init__()
        self.check_input(frames, height, width, final_pool)
        self.frames, self.height, self.width, self.final_pool = frames, height, width, final_pool

        # Motion branch (normalised frame differences)
        self.motion_conv1 = nn.Conv2d(3, FILTERS1, kernel_size=3, padding=1)
        self.motion_conv2 = nn.Conv2d(FILTERS1, FILTERS1, kernel_size=3)
        self.motion_conv3 = nn.Conv2d(FILTERS1, FILTERS2, kernel_size=3, padding=1)
        self.motion_conv4 = nn.Conv2d(FILTERS2, FILTERS2, kernel_size=3)
        # Appearance branch (standardized frames)
        self.apperance_conv1 = nn.Conv2d(3, FILTERS1, kernel_size=3, padding=1)
        self.apperance_conv2 = nn.Conv2d(FILTERS1, FILTERS1, kernel_size=3)
        self.apperance_conv3 = nn.Conv2d(FILTERS1, FILTERS2, kernel_size=3, padding=1)
        self.apperance_conv4 = nn.Conv2d(FILTERS2, FILTERS2, kernel_size=3)
        # Attention: a 1x1 conv on the appearance features -> one mask per image
        self.apperance_att_conv1 = nn.Conv2d(FILTERS1, 1, kernel_size=1)
        self.attn_mask_1 = AttentionMask()
        self.apperance_att_conv2 = nn.Conv2d(FILTERS2, 1, kernel_size=1)
        self.attn_mask_2 = AttentionMask()

        self.avg_pooling_1 = nn.AvgPool2d(2)
        self.avg_pooling_2 = nn.AvgPool2d(2)
        self.avg_pooling_3 = nn.AvgPool2d(final_pool)
        self.dropout_1 = nn.Dropout(DROPOUT_CONV)
        self.dropout_2 = nn.Dropout(DROPOUT_CONV)
        self.dropout_3 = nn.Dropout(DROPOUT_CONV)
        self.dropout_4 = nn.Dropout(DROPOUT_DENSE)

        self.final_dense_1 = nn.Linear(dense_features(height, width, final_pool), DENSE)
        self.final_dense_2 = nn.Linear(DENSE, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 5 or x.shape[1] != 6:
            raise ValueError(f"DeepPhys expects (B, 6, T, H, W) input (diff + standardized), got {tuple(x.shape)}")
        batch, _, frames, height, width = x.shape
        self.check_input(frames, height, width, self.final_pool)
        if (height, width) != (self.height, self.width):  # final_dense_1 is sized for them
            raise ValueError(f"DeepPhys was built for {self.height}x{self.width} frames, got {height}x{width}")
        x = to_frames(x)
        diff, raw = x[:, :3], x[:, 3:]

        d = torch.tanh(self.motion_conv2(torch.tanh(self.motion_conv1(diff))))
        r = torch.tanh(self.apperance_conv2(torch.tanh(self.apperance_conv1(raw))))
        d = d * self.attn_mask_1(torch.sigmoid(self.apperance_att_conv1(r)))
        d = self.dropout_1(self.avg_pooling_1(d))
        r = self.dropout_2(self.avg_pooling_2(r))

        d = torch.tanh(self.motion_conv4(torch.tanh(self.motion_conv3(d))))
        r = torch.tanh(self.apperance_conv4(torch.tanh(self.apperance_conv3(r))))
        d = d * self.attn_mask_2(torch.sigmoid(self.apperance_att_conv2(r)))
        d = self.dropout_3(self.avg_pooling_3(d))

        d = self.dropout_4(torch.tanh(self.final_dense_1(d.flatten(1))))
        return self.final_dense_2(d).reshape(batch, frames)
