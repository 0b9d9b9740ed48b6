"""EfficientPhys (Liu, Hill, Jiang, Patel & McDuff, WACV 2023), convolutional version.

TS-CAN without its preprocessing and without its appearance branch: the network takes plain
standardized frames and differences them itself, a BatchNorm normalises the differences (in
place of DiffNormalized), and the attention masks come from the motion features themselves.
One branch, temporal shift modules (segments of ``frame_depth`` = 10 frames), per-frame output.

    (B, 3, T, H, W) standardized frames
        append a copy of the last frame, difference in time   -> T differences, the last one 0
        -> (B*T, 3, H, W), batch_norm (BatchNorm2d(3))
        TSM_1, motion_conv1 3x3 pad 1, tanh, TSM_2, motion_conv2 3x3 valid, tanh   32 x H-2
            x attn_mask_1(sigmoid(apperance_att_conv1 1x1 on these same features))
        avg_pooling_1 2x2, dropout_1                                            32 x (H-2)/2
        TSM_3, motion_conv3 3x3 pad 1, tanh, TSM_4, motion_conv4 3x3 valid, tanh   64 x h
            x attn_mask_2(sigmoid(apperance_att_conv2 1x1))
        avg_pooling_3 2x2, dropout_3                                            64 x h/2 x w/2
        flatten, final_dense_1 (-> 128), tanh, dropout_4, final_dense_2 (-> 1)
    (B*T, 1) -> (B, T)

Because the network only sees differences, adding a constant to every frame of a clip does not
change its output.

Source: rPPG-Toolbox ``neural_methods/model/EfficientPhys.py`` (ubicomplab/rPPG-Toolbox), layer
for layer and with the same submodule names (the attention convs keep their ``apperance_att``
names although there is no appearance branch; ``avg_pooling_2`` and ``dropout_2`` exist there but
are unused and hold no weights, so they are left out), so the toolbox's released EfficientPhys
weights load (after stripping DataParallel's ``module.`` prefix). One difference in the
plumbing, not the weights: the toolbox's trainer flattens the whole batch to frames, appends one
copy of the batch's last frame and differences the flattened sequence, so the last difference
of each clip but the batch's last is taken against the *next clip's* first frame. Here every
clip is differenced on its own (its own last frame appended), which for a single clip is the
same. Standard toolbox configs: FRAME_DEPTH 10, 180-frame chunks of 72x72 Standardized faces,
MSELoss on the DiffNormalized label.

Size: 2.16 M parameters at 72x72. method.md §10's 1.91 M is RhythmFormer's ``cost_cal.py``
setting, 128x128 with the last pooling widened to 4x4 (``final_pool=4``): 1,909,129 parameters.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from lqrppg.models import register_model
from lqrppg.models.deepphys import (
    DENSE,
    DROPOUT_CONV,
    DROPOUT_DENSE,
    FILTERS1,
    FILTERS2,
    AttentionMask,
    check_image_size,
    dense_features,
    to_frames,
)
from lqrppg.models.tscan import FRAME_DEPTH, TemporalShift, check_frames

__all__ = ["EfficientPhys", "frame_differences"]


def frame_differences(x: Tensor) -> Tensor:
    """(B, C, T, H, W) -> (B, C, T, H, W): x[t+1] - x[t], the last frame repeated (last difference 0)."""
    return torch.diff(torch.cat([x, x[:, :, -1:]], dim=2), dim=2)


@register_model("efficientphys")
class EfficientPhys(nn.Module):
    """EfficientPhys; input (B, 3, T, H, W) standardized frames, T divisible by 10; output (B, T)."""

    input_norm = "standardized"  # the toolbox's DATA_TYPE ['Standardized']: it differences them itself
    label_norm = "diff_normalized"
    label_type = "continuous"
    loss = "mse"  # the toolbox's EfficientPhysTrainer uses torch.nn.MSELoss
    published_input = (180, 72, 72)  # the toolbox's standard configs: CHUNK_LENGTH 180, RESIZE 72x72
    frame_depth = FRAME_DEPTH

    @classmethod
    def check_input(cls, frames: int, height: int, width: int, final_pool: int = 2) -> None:
        """Raise ValueError unless (frames, height, width) is a valid input size."""
        check_frames("EfficientPhys", frames, cls.frame_depth)
        check_image_size("EfficientPhys", height, width, final_pool)

    def __init__(self, frames: int = 180, height: int = 72, width: int = 72, *, final_pool: int = 2) -> None:
        """``final_pool``: size of the last average pooling; 2 in the toolbox (keep it), 4 in
        RhythmFormer's cost script at 128x128 (method.md §10's 1.91 M)."""
        super().__init__()
        self.check_input(frames, height, width, final_pool)
        self.frames, self.height, self.width, self.final_pool = frames, height, width, final_pool

        self.batch_norm = nn.BatchNorm2d(3)  # normalises the raw frame differences
        self.TSM_1 = TemporalShift(self.frame_depth)
        self.TSM_2 = TemporalShift(self.frame_depth)
        self.TSM_3 = TemporalShift(self.frame_depth)
        self.TSM_4 = TemporalShift(self.frame_depth)
        self.motion_conv1 = nn.Conv2d(3, FILTERS1, kernel_size=3, padding=1)
        self.motion_conv2 = nn.Conv2d(FILTERS1, FILTERS1, kernel_size=3)
        self.motion_conv3 = nn.Conv2d(FILTERS1, FILTERS2, kernel_size=3, padding=1)
        self.motion_conv4 = nn.Conv2d(FILTERS2, FILTERS2, kernel_size=3)
        # Self-attention masks: 1x1 convs on the motion features (toolbox names kept)
        self.apperance_att_conv1 = nn.Conv2d(FILTERS1, 1, kernel_size=1)
        self.attn_mask_1 = AttentionMask()
        self.apperance_att_conv2 = nn.Conv2d(FILTERS2, 1, kernel_size=1)
        self.attn_mask_2 = AttentionMask()

        self.avg_pooling_1 = nn.AvgPool2d(2)
        self.avg_pooling_3 = nn.AvgPool2d(final_pool)
        self.dropout_1 = nn.Dropout(DROPOUT_CONV)
        self.dropout_3 = nn.Dropout(DROPOUT_CONV)
        self.dropout_4 = nn.Dropout(DROPOUT_DENSE)

        self.final_dense_1 = nn.Linear(dense_features(height, width, final_pool), DENSE)
        self.final_dense_2 = nn.Linear(DENSE, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"EfficientPhys expects (B, 3, T, H, W) standardized input, got {tuple(x.shape)}")
        batch, _, frames, height, width = x.shape
        self.check_input(frames, height, width, self.final_pool)
        if (height, width) != (self.height, self.width):  # final_dense_1 is sized for them
            raise ValueError(f"EfficientPhys was built for {self.height}x{self.width} frames, got {height}x{width}")
        d = self.batch_norm(to_frames(frame_differences(x)))

        d = torch.tanh(self.motion_conv1(self.TSM_1(d)))
        d = torch.tanh(self.motion_conv2(self.TSM_2(d)))
        d = d * self.attn_mask_1(torch.sigmoid(self.apperance_att_conv1(d)))
        d = self.dropout_1(self.avg_pooling_1(d))

        d = torch.tanh(self.motion_conv3(self.TSM_3(d)))
        d = torch.tanh(self.motion_conv4(self.TSM_4(d)))
        d = d * self.attn_mask_2(torch.sigmoid(self.apperance_att_conv2(d)))
        d = self.dropout_3(self.avg_pooling_3(d))

        d = self.dropout_4(torch.tanh(self.final_dense_1(d.flatten(1))))
        return self.final_dense_2(d).reshape(batch, frames)
